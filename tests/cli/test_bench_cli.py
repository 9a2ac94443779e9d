"""`ragkit bench draft | review --tui | validate | check-leakage` through the CLI, with the rules
writer (no model) on the mini corpus and the fake embedder."""

import json

from click.testing import CliRunner

from ragkit.cli import main


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, input=input)


def test_draft_review_validate_and_leakage(mini_corpus, tmp_path, fake_embedder):
    idx, out = tmp_path / "idx", tmp_path / "bench" / "draft.jsonl"
    assert run("ingest", mini_corpus, "--index", idx, "--embed-model", "fake-embedder").exit_code == 0
    r = run("bench", "draft", "--index", idx, "--out", out, "-n", "4", "--writer", "rules", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    items = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert s["items"] == len(items) > 0 and s["model_calls"] == 0 and s["by_writer"] == {"rules": len(items)}
    # review in the terminal: the passages come from the index recorded in OUT.draft.json
    r = run("bench", "review", out, "--tui", input="a\n" + "r\n" * (len(items) - 1))
    assert r.exit_code == 0 and ">>" in r.output, r.output
    r = run("bench", "validate", out, "--json")
    assert json.loads(r.output)["statuses"] == {"accepted": 1, "rejected": len(items) - 1}
    # a training set holding the accepted question reworded: check-leakage names it and exits 1
    q, a = items[0]["question"], items[0]["answers"][0]
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"instruction": f"Please tell me: {q}", "output": a}) + "\n"
                   + json.dumps({"instruction": "Who makes the Falcon X2?", "output": "Falcon Works"}) + "\n",
                   encoding="utf-8")
    r = run("bench", "check-leakage", out, sft)
    assert r.exit_code == 1 and f"LEAK {items[0]['id']}" in r.output


def test_bad_input_is_one_sentence(tmp_path, mini_corpus, fake_embedder):
    idx = tmp_path / "idx"
    run("ingest", mini_corpus, "--index", idx, "--embed-model", "fake-embedder")
    r = run("bench", "draft", "--index", idx, "--out", tmp_path / "b.jsonl", "--mix", "hard=1")
    assert r.exit_code == 2 and "--mix" in r.output and "CELL=WEIGHT" in r.output
