"""Conventions every command keeps: help on each option, one sentence for bad input, the same exit
code for a missing input, JSON errors on stdout with --json, RAGKIT_INDEX for search as for ask."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from ragkit.cli import main


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def commands():
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                yield f"{name} {sub}", cmd.get_command(ctx, sub)
        else:
            yield name, cmd


@pytest.mark.parametrize("name, cmd", list(commands()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_option_has_help(name, cmd):
    missing = [p.opts[0] for p in cmd.params if isinstance(p, click.Option) and not p.help]
    assert not missing, f"ragkit {name}: {missing}"


MISSING = [
    ("eval", "--bench", "{missing}", "--out", "{tmp}/o"),
    ("train", "--data", "{missing}", "--base", "smollm2-135m", "--out", "{tmp}/o"),
    ("run", "{missing}"),
    ("bench", "validate", "{missing}"),
    ("ingest", "{missing}", "--index", "{tmp}/idx"),
    ("export-gguf", "--adapter", "{missing}", "--out", "{tmp}/a.gguf"),
    ("report", "{missing}"),
]


@pytest.mark.parametrize("argv", MISSING, ids=lambda a: " ".join(a[:2]))
def test_a_missing_input_is_one_sentence_and_exit_code_2(tmp_path, argv):
    args = [a.format(missing=tmp_path / "nope.jsonl", tmp=tmp_path) for a in argv]
    r = run(*args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "does not exist" in lines[0], r.output
    assert "Traceback" not in r.output and "Usage:" not in r.output


def test_settings_errors_are_one_sentence_naming_the_option(tmp_path, mini_corpus):
    r = run("ingest", mini_corpus, "--index", tmp_path / "i", "--chunk-size", "10")
    assert r.exit_code == 2 and r.output.strip() == "Error: chunk_size must be at least 16 tokens"
    bench = tmp_path / "b.jsonl"
    bench.write_text("{}\n")
    r = run("eval", "--bench", bench, "--out", tmp_path / "o", "-k", "0", "--arms", "closed_book")
    assert r.exit_code == 2 and r.output.strip() == "Error: -k: must be at least 1, got 0"
    r = run("eval", "--bench", bench, "--out", tmp_path / "o", "--arms", "closed_book,nope")
    assert r.exit_code == 2 and r.output.strip() == ("Error: --arms: unknown arm(s) nope; choose from closed_book, "
                                                     "rag, sft, sft_rag, oracle, raft_rag")
    r = run("eval", "--bench", bench, "--out", tmp_path / "o", "-k", "five")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "'five' is not a valid integer" in r.output


def test_with_json_errors_are_json_on_stdout_with_the_same_exit_code(tmp_path):
    plain = run("search", "warranty?", "--index", tmp_path / "none")
    r = run("search", "warranty?", "--index", tmp_path / "none", "--json")
    assert r.exit_code == plain.exit_code == 1
    err = json.loads(r.stdout)["error"]
    assert err["type"] == "IndexMissing" and err["exit_code"] == 1 and "no index at" in err["message"]
    r = run("eval", "--bench", tmp_path / "nope.jsonl", "--out", tmp_path / "o", "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["error"]["type"] == "UsageError"
    p = tmp_path / "p.yaml"
    p.write_text("name: x\n")
    r = run("run", p, "--check", "--json")
    assert r.exit_code == 2
    assert json.loads(r.stdout) == {"error": {"message": f"{p}: corpus: required, but not given",
                                              "type": "SettingsError", "exit_code": 2}}


def test_search_reads_ragkit_index_like_ask(tmp_path, mini_corpus, fake_embedder):
    idx = tmp_path / "idx"
    assert run("ingest", mini_corpus, "--index", idx, "--embed-model", "fake-embedder").exit_code == 0
    r = run("search", "How long is the battery warranty?", "-k", "1", "--json", env={"RAGKIT_INDEX": str(idx)})
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) == {"query", "hits"} and out["hits"][0]["source"] == "warranty.md"


@pytest.mark.parametrize("name, cmd", list(commands()), ids=lambda x: x if isinstance(x, str) else "")
def test_defaults_are_shown_one_way(name, cmd):
    """A fixed default is click's "[default: X]"; one that depends on the input is written the same
    way at the end of the help, never as "Default: ..." or "(default ...)" inside the sentence."""
    for p in cmd.params:
        if isinstance(p, click.Option) and p.help:
            assert "Default:" not in p.help and "(default" not in p.help, f"ragkit {name} {p.opts[0]}: {p.help}"
            assert "[default" not in p.help or p.help.rstrip().endswith("]"), f"ragkit {name} {p.opts[0]}"
