"""Reviewing a drafted bench: status written back atomically, the page's API, the terminal review,
eval taking the accepted items only; the relaxed `sources` rule; the leakage check and guard."""

from __future__ import annotations

import json
import os

import pytest

from ragkit.benchset import records as records_mod
from ragkit.benchset.leakage import check_leakage
from ragkit.benchset.review import create_review_app, evidence_marks, review_in_terminal, update_item
from ragkit.errors import UsageError
from ragkit.eval.bench import load_bench, reviewed_items, status_counts, validate_bench
from ragkit.sftdata.filters import BenchGuard

ITEMS = [
    {"id": "d1", "question": "How long does the Falcon X2 battery take to recharge?", "answers": ["75 minutes"],
     "sources": ["manual.md"], "category": "knowledge", "difficulty": "easy", "status": "draft",
     "chunk_ids": ["c1"], "evidence": ["75 minutes"], "fingerprints": []},
    {"id": "d2", "question": "What is the top speed of the Falcon X2?", "answers": ["68 km/h"],
     "sources": ["manual.md"], "category": "knowledge", "difficulty": "easy", "status": "draft"},
    {"id": "d3", "question": "Which city hosts the Falcon service centre?", "answers": ["Brightwater"],
     "sources": ["warranty.md"], "category": "knowledge", "difficulty": "medium", "status": "draft"},
]


@pytest.fixture
def bench(tmp_path):
    p = tmp_path / "bench.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in ITEMS), encoding="utf-8")
    return p


def test_status_is_written_back_and_an_edit_keeps_the_old_wording(bench):
    update_item(bench, "d2", "rejected")
    rec = update_item(bench, "d1", "accepted", question="How many minutes does a Falcon X2 recharge take?",
                      answers=["75 minutes", "75 min", " "])
    rows = [json.loads(x) for x in bench.read_text(encoding="utf-8").splitlines()]
    assert [r["status"] for r in rows] == ["accepted", "rejected", "draft"] and rows[0] == rec
    assert rows[0]["answers"] == ["75 minutes", "75 min"]
    assert "how long does the falcon x2 battery take to recharge?" in rows[0]["fingerprints"]
    assert rows[2] == ITEMS[2]  # the other records are left as they were
    assert status_counts(bench) == {"accepted": 1, "rejected": 1, "draft": 1}
    with pytest.raises(UsageError, match="status must be"):
        update_item(bench, "d3", "maybe")
    with pytest.raises(UsageError, match="no item"):
        update_item(bench, "zz", "accepted")


def test_a_crash_while_writing_the_status_leaves_the_file_whole(bench, monkeypatch):
    before = bench.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(records_mod.os, "replace", crash)
    with pytest.raises(OSError):
        update_item(bench, "d1", "accepted")
    assert bench.read_bytes() == before  # the old file intact, not half-written
    monkeypatch.undo()
    leftovers = [p for p in bench.parent.iterdir() if p.name.endswith(".tmp")]
    for p in leftovers:
        os.unlink(p)
    update_item(bench, "d1", "accepted")
    assert json.loads(bench.read_text(encoding="utf-8").splitlines()[0])["status"] == "accepted"


def test_eval_answers_accepted_items_only_once_any_are_marked(bench):
    items = load_bench(bench)
    assert reviewed_items(items) == (items, None)
    update_item(bench, "d3", "rejected")
    kept, note = reviewed_items(load_bench(bench))
    assert [i.id for i in kept] == ["d1", "d2"] and "1 rejected" in note
    update_item(bench, "d1", "accepted")
    kept, note = reviewed_items(load_bench(bench))
    assert [i.id for i in kept] == ["d1"] and note.startswith("bench: 1 accepted item(s) of 3")


def test_sources_may_be_empty_with_context_or_in_a_general_bench(tmp_path):
    base = {"id": "g1", "question": "Paris is the capital of which country?", "answers": ["France"], "sources": [],
            "category": "general", "difficulty": "easy"}
    p = tmp_path / "general.jsonl"
    p.write_text(json.dumps(base) + "\n", encoding="utf-8")
    valid, errors = validate_bench(p)
    assert valid == 0 and "may have no sources" in errors[0][1]
    assert validate_bench(p, general=True) == (1, [])
    p.write_text(json.dumps({**base, "context": ["Paris is the capital of France."]}) + "\n", encoding="utf-8")
    assert validate_bench(p) == (1, [])
    p.write_text(json.dumps({**base, "status": "done"}) + "\n", encoding="utf-8")
    assert "'status' must be one of" in validate_bench(p, general=True)[1][0][1]


def test_the_page_api_lists_items_with_passages_and_records_decisions(bench):
    from fastapi.testclient import TestClient

    passages = {"d1": [{"chunk_id": "c1", "source": "manual.md", "text": "Recharge takes 75 minutes.",
                        "marks": evidence_marks("Recharge takes 75 minutes.", ["75 minutes"])}]}
    client = TestClient(create_review_app(bench, passages))
    assert "Bench review" in client.get("/").text
    data = client.get("/api/items").json()
    assert data["counts"] == {"draft": 3, "accepted": 0, "rejected": 0}
    assert data["items"][0]["passages"][0]["marks"] == [[15, 25]]
    r = client.post("/api/items/d2", json={"status": "accepted", "question": "How fast can a Falcon X2 fly?",
                                            "answers": ["68 km/h"]})
    assert r.status_code == 200 and r.json()["counts"]["accepted"] == 1
    assert load_bench(bench)[1].question == "How fast can a Falcon X2 fly?"
    assert client.post("/api/items/d2", json={"status": "bogus"}).status_code == 400


def test_evidence_marks_allow_spacing_and_separators():
    assert evidence_marks("a lawn of 1500 m² and 3,000 m²", ["1,500 m²", "3000 m²"]) == [[10, 17], [22, 30]]


def test_terminal_review_accepts_edits_and_rejects(bench):
    answers = iter(["a", "e", "What is the Falcon X2's top speed?", "68 km/h | 68 kmh", "r"])
    shown = []
    counts = review_in_terminal(bench, {}, ask=lambda *a, **k: next(answers), echo=shown.append)
    assert counts == {"draft": 0, "accepted": 2, "rejected": 1}
    assert load_bench(bench)[1].answers == ["68 km/h", "68 kmh"]
    assert any("Falcon X2 battery" in s for s in shown)


def test_leakage_check_catches_a_planted_paraphrase(bench, tmp_path):
    planted = "Can you tell me how long the battery of the Falcon X2 takes to recharge?"  # reworded, reordered
    sft = tmp_path / "sft.jsonl"
    rows = [{"instruction": 'According to "Falcon X2 Manual", what is the weight of the Falcon X2?', "output": "895 g"},
            {"instruction": planted, "output": "75 minutes"},
            {"instruction": "Who founded Falcon Robotics?", "output": "Ada Lind"}]
    sft.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = check_leakage(bench, sft)
    by_id = {r["id"]: r for r in report["items"]}
    assert report["training_questions"] == 3 and report["leaks"] == 1
    assert by_id["d1"]["leak"] and by_id["d1"]["nearest"] == planted
    assert not by_id["d2"]["leak"] and not by_id["d3"]["leak"]


def test_the_sft_guard_holds_out_every_recorded_wording(bench):
    update_item(bench, "d1", "accepted", question="Recharge duration of a Falcon X2, in minutes?")
    guard = BenchGuard.from_file(bench)
    assert guard.leak('According to "Falcon X2 Manual", how long does the Falcon X2 battery take to recharge?')
    assert guard.leak("Recharge duration of a Falcon X2, in minutes?")
    assert guard.leak("Who founded Falcon Robotics?") is None
