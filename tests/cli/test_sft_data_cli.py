"""`ragkit build-sft-data` through click's CliRunner (rule-written questions: no model needed)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ragkit.cli import main
from ragkit.index import IngestConfig, ingest

DOC = """# Falcon X2 Drone Manual

The Falcon X2 flies for 38 minutes per charge. The battery takes 75 minutes to recharge.

| Item | Falcon X2 |
|---|---|
| Weight | 895 g |

**Can the Falcon X2 fly in the rain?**
No. The Falcon X2 is rated IP43 and must not fly in rain.
"""


@pytest.fixture
def index(tmp_path, fake_embedder):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "manual.md").write_text(DOC, encoding="utf-8")
    (root / "保修.md").write_text("# 猎鹰 X2 保修政策\n\n猎鹰 X2 整机保修 24 个月，电池保修 12 个月。\n", encoding="utf-8")
    ingest([root], tmp_path / "idx", IngestConfig(embed_model="fake-embedder"))
    return tmp_path / "idx"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_json_summary_counts_and_files(index, tmp_path):
    out = tmp_path / "data" / "sft.jsonl"
    r = run("build-sft-data", "--index", index, "--out", out, "--method", "template", "--format", "sharegpt", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["kept"] >= 4 and s["chunks_seen"] == s["chunks_total"] == 2
    assert set(s["dropped"]) >= {"unsupported", "contains_answer", "needs_context", "length", "duplicate",
                                 "near_duplicate", "bench_leak"}
    assert s["rows"]["direct"] >= s["kept"] - s["rows"].get("list", 0)
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert all(r["conversations"][0]["from"] == "human" for r in rows)
    info = json.loads((out.parent / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["sft"]["formatting"] == "sharegpt"
    assert (out.parent / "sft.provenance.jsonl").is_file()


def test_human_summary_reports_drops_and_resumes(index, tmp_path):
    args = ("build-sft-data", "--index", index, "--out", tmp_path / "sft.jsonl", "--method", "template")
    first = run(*args)
    assert first.exit_code == 0
    assert "QA pairs kept from 2/2 chunks" in first.output and "dropped:" in first.output
    again = run(*args)
    assert "(2 from an earlier run)" in again.output


def test_exclude_bench_and_mix(index, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "b", "question": "Can the Falcon X2 fly in the rain?", "answers": ["No"],
                                 "sources": ["manual.md"], "category": "common", "difficulty": "easy"}) + "\n")
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"instruction": f"Q{i}?", "input": "", "output": "A"}) + "\n"
                               for i in range(20)))
    r = run("build-sft-data", "--index", index, "--out", tmp_path / "sft.jsonl", "--method", "template",
            "--exclude-bench", bench, "--mix", general, "--mix-ratio", "0.5", "--json")
    s = json.loads(r.output)
    assert s["dropped"]["bench_leak"] >= 1
    assert s["rows"]["general"] == sum(v for k, v in s["rows"].items() if k != "general")


@pytest.mark.parametrize("args,message", [
    (("--per-chunk", "0"), "--per-chunk: must be at least 1, got 0"),
    (("--mix-ratio", "0.3"), "--mix-ratio needs --mix"),
    (("--tasks", "direct,poems"), "tasks must be among"),
])
def test_bad_flags_are_usage_errors(index, tmp_path, args, message):
    r = run("build-sft-data", "--index", index, "--out", tmp_path / "o.jsonl", *args)
    assert r.exit_code == 2 and message in r.output


def test_missing_index_is_a_one_line_error(tmp_path):
    r = run("build-sft-data", "--index", tmp_path / "nope", "--out", tmp_path / "o.jsonl")
    assert r.exit_code == 1
    assert "no index at" in r.output and "Traceback" not in r.output
