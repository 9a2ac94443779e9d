import json

import pytest

from ragkit.errors import BenchFormatError
from ragkit.eval.bench import load_bench, validate_bench

GOOD = {"id": "q1", "question": "What?", "answers": ["a"], "sources": ["a.md"], "category": "knowledge",
        "difficulty": "easy"}


def write(tmp_path, lines):
    p = tmp_path / "bench.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_valid_bench_loads(tmp_path):
    p = write(tmp_path, [json.dumps(GOOD), json.dumps({**GOOD, "id": "q2", "notes": "why"})])
    assert validate_bench(p) == (2, [])
    items = load_bench(p)
    assert [i.id for i in items] == ["q1", "q2"] and items[1].notes == "why"


def test_problems_are_reported_with_line_numbers(tmp_path):
    p = write(tmp_path, [
        json.dumps(GOOD),
        "{not json",
        json.dumps({**GOOD, "id": "q3", "answers": []}),
        json.dumps({**GOOD, "id": "q4", "difficulty": "trivial"}),
        json.dumps(GOOD),
        json.dumps({k: v for k, v in GOOD.items() if k != "sources"} | {"id": "q6", "extra": 1}),
    ])
    valid, errors = validate_bench(p)
    assert valid == 1
    lines = sorted({n for n, _ in errors})
    assert lines == [2, 3, 4, 5, 6]
    text = dict(errors)
    assert "invalid JSON" in text[2] and "answers" in text[3] and "difficulty" in text[4] and "duplicate" in text[5]
    with pytest.raises(BenchFormatError, match="line 2"):
        load_bench(p)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(BenchFormatError, match="does not exist"):
        validate_bench(tmp_path / "none.jsonl")
    assert validate_bench(write(tmp_path, [""]))[1] == [(0, "the file holds no items")]
