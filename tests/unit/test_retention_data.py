"""data/general/retention.jsonl, the general bench of issue 13: its shape, its halves, the base
model's record for every closed-book item, and no overlap (ragkit's own leakage guard, both ways)
with the domain bench or the mix data it is shipped beside."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ragkit.eval.bench import REQUIRED, validate_bench
from ragkit.sftdata.filters import BenchGuard

ROOT = Path(__file__).resolve().parents[2]
GENERAL = ROOT / "data" / "general"


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def lang(text: str) -> str:
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"


ITEMS = rows(GENERAL / "retention.jsonl")


def test_shape_half_english_half_chinese():
    assert len(ITEMS) == 100 and len({r["id"] for r in ITEMS}) == 100
    for r in ITEMS:
        assert set(REQUIRED) <= set(r) <= set(REQUIRED) | {"notes", "context"}, r["id"]
        assert r["answers"] and all(isinstance(a, str) and a.strip() for a in r["answers"]) and r["sources"]
    parts = {}
    for r in ITEMS:
        parts.setdefault((lang(r["question"]), r["category"]), []).append(r)
    assert {k: len(v) for k, v in parts.items()} == {("zh", "reading"): 25, ("en", "reading"): 25,
                                                     ("en", "general"): 25, ("zh", "general"): 25}


def test_reading_items_carry_a_short_context_holding_the_answer():
    for r in ITEMS:
        if r["category"] != "reading":
            assert "context" not in r
            continue
        assert isinstance(r["context"], list) and len(r["context"]) == 1, r["id"]
        ctx = r["context"][0]
        assert 40 <= len(ctx) <= 400 and any(a.lower() in ctx.lower() for a in r["answers"]), r["id"]
        if r["id"].startswith("read-zh-"):
            assert r["sources"][0].startswith("cmrc2018/") and "CC BY-SA 4.0" in r["notes"]


def test_closed_book_items_are_ones_the_base_model_answered_right():
    sel = json.loads((GENERAL / "retention.selection.json").read_text(encoding="utf-8"))
    assert sel["base_model"] == "qwen2.5-coder-0.5b"
    general = [r for r in ITEMS if r["category"] == "general"]
    assert [r["id"] for r in general] == sel["general_en"] + sel["general_zh"]
    for r in general:
        assert sel["base_answers"][r["id"]]["correct"] is True
        assert r["sources"] == ["general"]
    # and the ones it got wrong were left out, with the reason
    wrong = [k for k, v in sel["base_answers"].items() if not v["correct"]]
    assert wrong and all(sel["dropped"][k].startswith("the base model got it wrong") for k in wrong)


def test_language_halves_and_english_mix_file():
    for code in ("en", "zh"):
        half = rows(GENERAL / f"retention-{code}.jsonl")
        assert half == [r for r in ITEMS if lang(r["question"]) == code] and len(half) == 50
    general = rows(GENERAL / "general.jsonl")
    assert rows(GENERAL / "general-en.jsonl") == [r for r in general if lang(r["instruction"]) == "en"]


@pytest.mark.parametrize("other", ["data/bench/sample.jsonl", "data/general/general.jsonl"])
def test_no_overlap_with_the_domain_bench_or_the_mix_data(other):
    theirs = BenchGuard.from_file(ROOT / other)
    mine = BenchGuard([r["question"] for r in ITEMS])
    assert [r["id"] for r in ITEMS if theirs.leak(r["question"])] == []
    assert [q for q in theirs.questions if mine.leak(q)] == []
    # the guard does catch a near-copy, so an empty list above means something
    assert theirs.leak(theirs.questions[0] + " Please answer.") == theirs.questions[0]


def test_bench_validate():
    for name, n_items in (("retention.jsonl", 100), ("retention-en.jsonl", 50), ("retention-zh.jsonl", 50)):
        assert validate_bench(GENERAL / name) == (n_items, [])
