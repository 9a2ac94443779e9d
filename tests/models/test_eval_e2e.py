"""A real `ragkit eval` on a five-item bench: bundled embedder and SmolLM2 on llama.cpp, short answers."""

import json

import pytest
from click.testing import CliRunner

from ragkit.cli import main

pytestmark = pytest.mark.models

BENCH = [
    {"id": "1", "question": "How many months is the Falcon X2 drone warranty?", "answers": ["24 months", "24"],
     "sources": ["warranty.md"], "category": "warranty", "difficulty": "easy"},
    {"id": "2", "question": "How many months are Falcon X2 batteries covered?", "answers": ["12 months", "12"],
     "sources": ["warranty.md"], "category": "warranty", "difficulty": "medium"},
    {"id": "3", "question": "What is the flight time of the Falcon X2?", "answers": ["38 minutes", "38"],
     "sources": ["specs.txt"], "category": "specs", "difficulty": "easy"},
    {"id": "4", "question": "In which town is the Falcon X2 service centre?", "answers": ["Brightwater"],
     "sources": ["warranty.md"], "category": "service", "difficulty": "easy"},
    {"id": "5", "question": "猎鹰 X2 的续航时间是多少？", "answers": ["三十八分钟", "38分钟"],
     "sources": ["zh/参数.txt"], "category": "specs", "difficulty": "hard"},
]


def test_real_eval_closed_book_vs_rag_and_resume(mini_corpus, tmp_path):
    runner = CliRunner()
    idx, out = tmp_path / "idx", tmp_path / "out"
    assert runner.invoke(main, ["ingest", str(mini_corpus), "--index", str(idx)]).exit_code == 0
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(b, ensure_ascii=False) + "\n" for b in BENCH), encoding="utf-8")
    args = ["eval", "--bench", str(bench), "--index", str(idx), "--out", str(out), "--arms", "closed_book,rag",
            "--model", "smollm2-135m", "--max-tokens", "16", "-k", "2"]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["retrieval"]["recall@5"] == 1.0
    cb, rag = report["arms"]["closed_book"], report["arms"]["rag"]
    assert cb["n"] == rag["n"] == 5
    # The facts are invented: without retrieval the model cannot know them; with it, it reads them.
    assert rag["accuracy"] >= 0.4 and rag["accuracy"] > cb["accuracy"]
    assert rag["latency"]["p50_ms"] > 0 and rag["tokens_per_s"] > 0
    rows = [json.loads(x) for x in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 10 and all(r["model"] == "smollm2-135m" for r in rows)
    rag_row = next(r for r in rows if r["arm"] == "rag" and r["id"] == "3")
    assert "Flight time is 38 minutes" in rag_row["prompt"] and rag_row["sources"][0]["source"] == "specs.txt"
    assert (out / "accuracy.png").is_file() and "| rag | 5 |" in (out / "report.md").read_text(encoding="utf-8")

    # Same settings again: every item is reused, and the report is the same.
    r = runner.invoke(main, args)
    assert r.exit_code == 0 and "Reused 10 finished item(s)" in r.output
    again = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert again["arms"]["rag"]["accuracy"] == rag["accuracy"]
