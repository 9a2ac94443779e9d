"""`ragkit eval`, `ragkit report` and `ragkit run` through CliRunner, with a fake generator and embedder."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from ragkit.cli import main
from ragkit.types import Completion

FACTS = {"warranty": "24 months", "flight": "38 minutes", "续航": "三十八分钟"}


class ReadingGenerator:
    """Answers a question's fact when the prompt's last context block holds it; else "I don't know"."""

    backend = "fake"
    prompt_style = "fewshot"
    max_passages = None
    context_length = 4096

    def __init__(self, model):
        self.model = model
        self.calls = 0

    def count_tokens(self, text):
        return len(text.split())

    def render_chat(self, messages):
        return "\n".join(m["content"] for m in messages)

    def generate(self, prompt, decoding, on_token=None):
        self.calls += 1
        prompt = prompt.replace("：", ":")  # Chinese prompts use full-width labels (问题：)
        label = "资料:" if "问题:" in prompt else "Context:"
        last = prompt.rsplit(label, 1)[-1] if label in prompt else ""
        question = last.rsplit("Question:", 1)[-1].rsplit("问题:", 1)[-1]
        text = next((f for k, f in FACTS.items() if k in question and f in last), "I don't know")
        return Completion(text=text, prompt_tokens=10, completion_tokens=2, total_ms=1.0)


@pytest.fixture
def fake_llm(monkeypatch):
    gens = {}

    def load(model, backend=None, *, adapter=None, base_url=None, lang="en", n_ctx=None, **kw):
        return gens.setdefault((model, adapter), ReadingGenerator(model or "default"))

    import ragkit.generate

    monkeypatch.setattr(ragkit.generate, "load_generator", load)
    return gens


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


BENCH = [
    {"id": "1", "question": "How long is the Falcon X2 warranty?", "answers": ["24 months"],
     "sources": ["warranty.md"], "category": "warranty", "difficulty": "easy"},
    {"id": "2", "question": "What is the flight time of the Falcon X2?", "answers": ["38 minutes"],
     "sources": ["specs.txt"], "category": "specs", "difficulty": "easy"},
    {"id": "3", "question": "猎鹰 X2 的续航时间是多少？", "answers": ["三十八分钟"],
     "sources": ["zh/参数.txt"], "category": "specs", "difficulty": "hard"},
]


@pytest.fixture
def indexed(tmp_path, mini_corpus, fake_embedder):
    idx = tmp_path / "idx"
    assert run("ingest", mini_corpus, "--index", idx, "--embed-model", "fake-embedder").exit_code == 0
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(b, ensure_ascii=False) + "\n" for b in BENCH), encoding="utf-8")
    return bench, idx


def test_eval_arms_writes_report_and_skips_sft(indexed, tmp_path, fake_llm):
    bench, idx = indexed
    out = tmp_path / "out"
    r = run("eval", "--bench", bench, "--index", idx, "--out", out, "--mode", "bm25", "--min-score", "0",
            "--model", "fake")
    assert r.exit_code == 0, r.output
    assert "| closed_book | 3 | 0.0" in r.output and "| rag | 3 | 100.0" in r.output
    assert "Skipped sft: no tuned model" in r.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["arms"]) == {"closed_book", "rag"} and set(report["skipped_arms"]) == {"sft", "sft_rag"}
    assert report["config"]["models"] == {"*": "fake"} and report["config"]["arms"][0] == "closed_book"
    assert report["pairwise"]["rag_vs_closed_book"]["diff"] == 1.0
    md = (out / "report.md").read_text()
    assert "## Accuracy % by category" in md and "![accuracy](accuracy.png)" in md
    # Re-running resumes: nothing is generated again.
    before = sum(g.calls for g in fake_llm.values())
    r = run("eval", "--bench", bench, "--index", idx, "--out", out, "--mode", "bm25", "--min-score", "0",
            "--model", "fake", "--json")
    assert r.exit_code == 0 and sum(g.calls for g in fake_llm.values()) == before
    assert "Reused 6 finished item(s)" in r.output
    assert json.loads(r.output[r.output.index("{"):])["arms"]["rag"]["accuracy"] == 1.0


def test_eval_retrieval_only_keeps_its_report_keys(indexed, tmp_path):
    bench, idx = indexed
    out = tmp_path / "out"
    r = run("eval", "--bench", bench, "--index", idx, "--retrieval-only", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["arms"] == {} and rep["config"]["mode"] == "hybrid" and rep["config"]["bench"] == str(bench)
    assert set(rep["retrieval"]) >= {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "n",
                                     "answer_in_context"}
    assert (out / "recall.png").is_file() and not (out / "accuracy.png").exists()


def test_eval_usage_errors(indexed, tmp_path):
    bench, idx = indexed
    r = run("eval", "--bench", bench, "--index", idx, "--out", tmp_path / "o", "--arms", "rag,oops")
    assert r.exit_code == 2 and "unknown arm" in r.output
    r = run("eval", "--bench", bench, "--out", tmp_path / "o", "--arms", "rag")
    assert r.exit_code == 2 and "need an index" in r.output
    r = run("eval", "--bench", bench, "--index", idx, "--out", tmp_path / "o", "--arms", "sft",
            "--adapter", tmp_path / "none")
    assert r.exit_code == 2 and r.output.startswith("Error:") and "does not exist" in r.output
    r = run("eval", "--bench", tmp_path / "missing.jsonl", "--index", idx, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output  # a missing input: 2


def test_eval_general_bench_and_oracle_on_the_cli(indexed, tmp_path, fake_llm):
    bench, idx = indexed
    general = tmp_path / "general.jsonl"
    general.write_text(json.dumps({"id": "g1", "question": "What is the flight time?", "answers": ["38 minutes"],
                                   "sources": ["general"], "category": "reading", "difficulty": "easy",
                                   "context": ["The flight time is 38 minutes."]}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    r = run("eval", "--bench", bench, "--index", idx, "--out", out, "--mode", "bm25", "--min-score", "0",
            "--model", "fake", "--arms", "closed_book,rag,oracle", "--general-bench", general)
    assert r.exit_code == 0, r.output
    assert "## Retention (general bench)" in r.output and "| oracle | 1 | 100.0" in r.output
    rep = json.loads((out / "report.json").read_text())
    cb = rep["retention"]["closed_book"]
    assert {k: cb[k] for k in ("accuracy", "em", "f1", "n", "ci95")} == {"accuracy": 1.0, "em": 1.0, "f1": 1.0, "n": 1,
                                                                      "ci95": [1.0, 1.0]}
    assert set(cb["by_category"]) == {json.loads(open(general).readline())["category"]}
    assert rep["forgetting"] == {} and rep["config"]["general_bench"] == str(general)
    assert rep["pairwise"]["oracle_vs_rag"]["n"] == 3 and (out / "retention_items.jsonl").is_file()
    r = run("report", out)
    assert r.exit_code == 0 and "## Retention (general bench)" in r.output
    r = run("eval", "--bench", bench, "--index", idx, "--out", out, "--general-bench", tmp_path / "nope.jsonl")
    assert r.exit_code == 2 and "nope.jsonl" in r.output and "does not exist" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_report_show_and_compare(indexed, tmp_path, fake_llm):
    bench, idx = indexed
    a, b = tmp_path / "a", tmp_path / "b"
    common = ("--bench", bench, "--index", idx, "--mode", "bm25", "--min-score", "0", "--model", "fake")
    assert run("eval", *common, "--out", a, "--arms", "closed_book,rag").exit_code == 0
    assert run("eval", *common, "--out", b, "--arms", "rag", "-k", "1").exit_code == 0
    r = run("report", a)
    assert r.exit_code == 0 and "| rag | 3 | 100.0" in r.output
    r = run("report", a, b)
    assert r.exit_code == 0, r.output
    assert f"A = {a}" in r.output and "| rag | accuracy | 100.0 | 100.0 | +0.0 |" in r.output
    assert "| closed_book | accuracy | 0.0 | – | – |" in r.output
    r = run("report", a, b, "--json")
    data = json.loads(r.output)
    assert data["a"] == str(a) and data["arms"]["rag"]["accuracy"] == {"a": 1.0, "b": 1.0, "diff": 0.0}
    assert "recall@5" in data["retrieval"]
    r = run("report", tmp_path / "nothing")
    assert r.exit_code == 2 and "does not exist" in r.output
    (tmp_path / "empty").mkdir()
    r = run("report", tmp_path / "empty")
    assert r.exit_code == 2 and "no report.json" in r.output
    r = run("report", a, b, a)
    assert r.exit_code == 2


def pipeline_file(tmp_path, mini_corpus, bench):
    p = tmp_path / "mini.yaml"
    p.write_text(yaml.safe_dump({
        "name": "mini", "corpus": str(mini_corpus), "bench": str(bench),
        "index": {"embed_model": "fake-embedder", "chunk_size": 64, "chunk_overlap": 8},
        "sft_data": {"enabled": False}, "train": {"enabled": False},
        "eval": {"arms": ["closed_book", "rag"], "models": {"*": "fake"}, "mode": "bm25", "min_score": 0.0},
    }))
    return p


def test_run_pipeline_then_resume_then_new_settings(indexed, tmp_path, mini_corpus, fake_llm):
    bench, _ = indexed
    p = pipeline_file(tmp_path, mini_corpus, bench)
    runs = tmp_path / "runs"
    r = run("run", p, "--runs-dir", runs)
    assert r.exit_code == 0, r.output
    assert "[ingest] running" in r.output and "[eval] running" in r.output
    assert "| rag | 3 | 100.0" in r.output and "| arm | specs (n=2) | warranty (n=1) |" in r.output
    (run_dir,) = list(runs.iterdir())
    for f in ("config.yaml", "state.json", "report.md", "eval/report.json", "eval/items.jsonl", "index/CURRENT"):
        assert (run_dir / f).exists(), f
    state = json.loads((run_dir / "state.json").read_text())
    assert set(state["steps"]) == {"ingest", "eval"}
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["eval"]["mode"] == "bm25"

    # The same pipeline again: the same run directory, every step up to date, nothing generated.
    calls = sum(g.calls for g in fake_llm.values())
    r = run("run", p, "--runs-dir", runs)
    assert r.exit_code == 0 and f"Continuing run {run_dir}" in r.output
    assert "[ingest] up to date" in r.output and "[eval] up to date" in r.output
    assert sum(g.calls for g in fake_llm.values()) == calls

    # An interrupted eval (state not marked done) continues with its finished items.
    state["steps"].pop("eval")
    (run_dir / "state.json").write_text(json.dumps(state))
    r = run("run", p, "--runs-dir", runs)
    assert "[eval] running" in r.output and "Reused 6" in r.output

    # A changed setting starts a new run; --resume applies it to the latest run instead.
    r = run("run", p, "--runs-dir", runs, "--set", "eval.arms=[rag]", "--json")
    assert r.exit_code == 0
    assert len(list(runs.iterdir())) == 2
    r = run("run", p, "--runs-dir", runs, "--set", "eval.k=2", "--resume")
    assert r.exit_code == 0 and "[ingest] up to date" in r.output and "[eval] running" in r.output


def test_run_pipeline_with_a_general_bench(indexed, tmp_path, mini_corpus, fake_llm):
    bench, _ = indexed
    p = pipeline_file(tmp_path, mini_corpus, bench)
    general = tmp_path / "general.jsonl"
    line = {"id": "g1", "question": "What is the flight time?", "answers": ["38 minutes"], "sources": ["general"],
            "category": "reading", "difficulty": "easy", "context": ["The flight time is 38 minutes."]}
    general.write_text(json.dumps(line) + "\n", encoding="utf-8")
    runs = tmp_path / "runs"
    r = run("run", p, "--runs-dir", runs, "--set", f"eval.general_bench={general}")
    assert r.exit_code == 0, r.output
    (run_dir,) = list(runs.iterdir())
    md = (run_dir / "report.md").read_text()
    assert "## Retention (general bench)" in md and "![retention](eval/retention.png)" in md
    # The general bench's contents are part of the eval step's hash.
    general.write_text(json.dumps(line) + "\n" + json.dumps(dict(line, id="g2")) + "\n", encoding="utf-8")
    r = run("run", p, "--runs-dir", runs, "--set", f"eval.general_bench={general}", "--resume")
    assert r.exit_code == 0 and "[ingest] up to date" in r.output and "[eval] running" in r.output
    assert json.loads((run_dir / "eval" / "report.json").read_text())["retention"]["rag"]["n"] == 2


def test_run_check_and_errors(tmp_path, mini_corpus, indexed):
    bench, _ = indexed
    p = pipeline_file(tmp_path, mini_corpus, bench)
    r = run("run", p, "--check", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["eval"]["arms"] == ["closed_book", "rag"]
    r = run("run", p, "--check", "--set", "eval.k=0")
    assert r.exit_code == 2 and "eval.k: must be at least 1, got 0" in r.output
    r = run("run", p, "--set", "nonsense")
    assert r.exit_code == 2 and "KEY=VALUE" in r.output


def test_run_full_pipeline_with_training_steps(indexed, tmp_path, mini_corpus, fake_llm, monkeypatch):
    """ingest → sft_data → train (per language) → export → eval with all four arms, with the SFT
    library functions replaced by fakes that write files shaped like theirs."""
    import ragkit.sftdata.qa
    import ragkit.train.export
    import ragkit.train.train

    bench, _ = indexed
    calls = {"sft": 0, "train": [], "export": []}

    def fake_build(index_dir, out, config, *, fmt, mix, mix_ratio, exclude_bench, progress=None, **kw):
        calls["sft"] += 1
        assert exclude_bench == bench and config.per_chunk == 2
        rows = [{"instruction": "How long is the Falcon X2 warranty?", "input": "", "output": "24 months"},
                {"instruction": "猎鹰 X2 续航多久？", "input": "", "output": "三十八分钟"}]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return ragkit.sftdata.qa.Summary(index=str(index_dir), out=str(out), rows={"direct": 2})

    def fake_train(config, progress=None):
        from pathlib import Path

        calls["train"].append((config.base, config.epochs, len(Path(config.data).read_text().splitlines())))
        out = Path(config.out)
        out.mkdir(parents=True)
        (out / "adapter_config.json").write_text("{}")
        (out / "ragkit_adapter.json").write_text(json.dumps({"base": config.base}))
        (out / "train_summary.json").write_text("{}")
        return {}

    def fake_export(adapter_dir, out_file, base_gguf=None, outtype="f32"):
        import gguf

        calls["export"].append(str(adapter_dir))
        base = json.loads((adapter_dir / "ragkit_adapter.json").read_text())["base"]
        w = gguf.GGUFWriter(str(out_file), "llama")
        w.add_string("general.type", "adapter")
        w.add_string("ragkit.base", base)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return {}

    monkeypatch.setattr(ragkit.sftdata.qa, "build_sft_data", fake_build)
    monkeypatch.setattr(ragkit.train.train, "train", fake_train)
    monkeypatch.setattr(ragkit.train.export, "export_gguf_adapter", fake_export)
    p = tmp_path / "full.yaml"
    p.write_text(yaml.safe_dump({
        "name": "full", "corpus": str(mini_corpus), "bench": str(bench),
        "index": {"embed_model": "fake-embedder", "chunk_size": 64, "chunk_overlap": 8},
        "sft_data": {"options": {"per_chunk": 2}},
        "train": {"languages": ["en", "zh"], "base": {"en": "base-en", "zh": "base-zh"}, "options": {"epochs": 1}},
        "eval": {"arms": ["closed_book", "rag", "sft", "sft_rag"], "models": {"*": "fake"}, "mode": "bm25",
                 "min_score": 0.0},
    }, allow_unicode=True))
    runs = tmp_path / "runs"
    r = run("run", p, "--runs-dir", runs)
    assert r.exit_code == 0, r.output
    assert calls["sft"] == 1 and sorted(calls["train"]) == [("base-en", 1, 1), ("base-zh", 1, 1)]
    (run_dir,) = list(runs.iterdir())
    assert (run_dir / "adapters" / "en.gguf").is_file() and (run_dir / "sft" / "qa-zh.jsonl").is_file()
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    assert list(report["arms"]) == ["closed_book", "rag", "sft", "sft_rag"] and report["skipped_arms"] == {}
    # Each language's tuned arm loaded its own base with its own exported adapter.
    assert ("base-en", str(run_dir / "adapters" / "en.gguf")) in fake_llm
    assert ("base-zh", str(run_dir / "adapters" / "zh.gguf")) in fake_llm
    assert set(json.loads((run_dir / "state.json").read_text())["steps"]) == {"ingest", "sft_data", "train", "eval"}
    # Re-run: nothing is rebuilt or retrained. A changed training setting with --resume retrains
    # (and re-evaluates) but keeps the index and the SFT data.
    r = run("run", p, "--runs-dir", runs)
    assert r.exit_code == 0 and calls["sft"] == 1 and len(calls["train"]) == 2
    r = run("run", p, "--runs-dir", runs, "--resume", "--set", "train.options.epochs=2")
    assert r.exit_code == 0, r.output
    assert calls["sft"] == 1 and [c[1] for c in calls["train"][2:]] == [2, 2]
    assert "[sft_data] up to date" in r.output and "[eval] running" in r.output


def test_eval_raft_adapter_on_the_cli(indexed, tmp_path, fake_llm):
    """--raft-adapter LANG=DIR runs the raft_rag arm with that adapter; without it the arm is skipped
    with the option that runs it."""
    bench, idx = indexed
    adapter = tmp_path / "raft-en"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "ragkit_adapter.json").write_text(json.dumps({"base": "fake"}))
    common = ("--bench", bench, "--index", idx, "--mode", "bm25", "--min-score", "0", "--model", "fake",
              "--arms", "rag,raft_rag")
    r = run("eval", *common, "--out", tmp_path / "a", "--raft-adapter", f"en={adapter}", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    assert report["arms"]["raft_rag"]["n"] == 2  # the English items: no RAFT adapter for zh
    assert ("fake", str(adapter)) in fake_llm
    assert report["config"]["tuned_arms"] == {"raft_rag": {"recipe": "raft", "adapters": {"en": str(adapter)}}}
    r = run("eval", *common, "--out", tmp_path / "b")
    assert r.exit_code == 0 and "Skipped raft_rag: no RAFT adapter: pass --raft-adapter DIR" in r.output
