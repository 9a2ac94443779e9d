"""The bench review page in Debian's headless chromium (Playwright, as test_page.py): the passage
with its evidence highlighted, keyboard accept / edit / reject written back to the file, untrusted
text shown as text."""

from __future__ import annotations

import json

import pytest

from ragkit.benchset.review import create_review_app, evidence_marks

from .conftest import LiveServer
from .test_page import browser, expect  # noqa: F401  (the module's chromium fixture)

pytestmark = pytest.mark.browser
TEXT = "Falcon X2 <b>warranty</b>: the drone is covered for 24 months; batteries for 12 months."
ITEMS = [
    {"id": "d1", "question": "How long is the Falcon X2 drone covered?", "answers": ["24 months"],
     "sources": ["warranty.md"], "category": "knowledge", "difficulty": "easy", "status": "draft",
     "chunk_ids": ["c1"], "evidence": ["24 months"]},
    {"id": "d2", "question": "How long are Falcon X2 batteries covered?", "answers": ["12 months"],
     "sources": ["warranty.md"], "category": "knowledge", "difficulty": "medium", "status": "draft",
     "chunk_ids": ["c1"], "evidence": ["12 months"]},
    {"id": "d3", "question": "Which city?", "answers": ["Brightwater"], "sources": ["warranty.md"],
     "category": "knowledge", "difficulty": "easy", "status": "draft"},
]


def rows(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_review_with_the_keyboard(browser, tmp_path):  # noqa: F811
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in ITEMS), encoding="utf-8")
    passages = {it["id"]: [{"chunk_id": "c1", "source": "warranty.md", "text": TEXT,
                            "marks": evidence_marks(TEXT, it["evidence"])}] for it in ITEMS[:2]}
    srv = LiveServer(create_review_app(bench, passages))
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(srv.url + "/")
        expect(page.locator("#id")).to_have_text("d1")
        assert page.text_content(".text mark") == "24 months"
        assert "<b>warranty</b>" in page.text_content(".text")  # document text stays text
        page.keyboard.press("a")  # accept d1, move on to d2
        expect(page.locator("#id")).to_have_text("d2")
        assert rows(bench)[0]["status"] == "accepted"
        expect(page.locator("#c-accepted")).to_have_text("accepted 1")
        page.keyboard.press("e")  # edit d2's question, save with Ctrl+Enter (accepted)
        page.fill("#question", "For how many months are Falcon X2 batteries covered?")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#id")).to_have_text("d3")
        r = rows(bench)[1]
        assert r["status"] == "accepted" and r["question"].startswith("For how many months")
        assert "how long are falcon x2 batteries covered?" in r["fingerprints"]
        page.keyboard.press("r")
        expect(page.locator("#c-rejected")).to_have_text("rejected 1")
        assert rows(bench)[2]["status"] == "rejected"
        assert page.text_content("#passages").startswith("No passage")
        page.keyboard.press("k")
        expect(page.locator("#id")).to_have_text("d2")
        assert errors == []
    finally:
        srv.stop()
