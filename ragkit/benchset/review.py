"""`ragkit bench review FILE`: a person accepts, edits or rejects each drafted item, reading the
passage it came from with its evidence highlighted.

Two front ends over the same functions: a page served on 127.0.0.1 by FastAPI (review.html; keys
a accept, r reject, e edit, d back to draft, j/k or arrows to move) and plain terminal prompts
(`--tui`). Every decision re-reads the file, changes one record and writes the whole file back
atomically (records.py), so a hand edit made meanwhile is kept and a crash never tears the file.
An edited question is accepted, and its earlier wording stays in `fingerprints`, held out of SFT
data like the new one.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from ..errors import UsageError
from ..eval.bench import STATUSES
from ..sftdata.filters import plain_text, strip_anchor
from .records import read_records, write_records

_LOCK = threading.Lock()  # one decision at a time within a process


class Decision(BaseModel):
    """The page's request: a status, and for an edit the new question or answers."""

    status: str
    question: str | None = None
    answers: list[str] | None = None


def update_item(path: str | Path, item_id: str, status: str, question: str | None = None,
                answers: list[str] | None = None) -> dict:
    """Set one item's status (and, for an edit, its question or answers); returns the record."""
    if status not in STATUSES:
        raise UsageError(f"status must be one of {', '.join(STATUSES)}, not '{status}'")
    if answers is not None and not [a for a in answers if a.strip()]:
        raise UsageError("an item needs at least one answer")
    if question is not None and not question.strip():
        raise UsageError("the question must not be empty")
    with _LOCK:
        records = read_records(path)
        rec = next((r for r in records if r.get("id") == item_id), None)
        if rec is None:
            raise UsageError(f"no item '{item_id}' in {path}")
        if question is not None and question.strip() != rec.get("question"):
            old = plain_text(strip_anchor(rec.get("question", "")))
            rec["fingerprints"] = list(dict.fromkeys([*(rec.get("fingerprints") or []), old]))
            rec["question"] = question.strip()
        if answers is not None:
            rec["answers"] = [a.strip() for a in answers if a.strip()]
        rec["status"] = status
        write_records(path, records)
        return rec


def evidence_marks(text: str, strings: list[str]) -> list[list[int]]:
    """[start, end] of every occurrence of each evidence string in a passage (merged, in order);
    spaces and thousands separators may differ ("1,500 m²" finds "1500 m²")."""
    spans = []
    for s in {s for s in strings if s and s.strip()}:
        body = re.sub(r"(?<=\d)(?=\d)", ",?", re.escape(s.strip().replace(",", ""))).replace(r"\ ", r"\s*")
        spans += [[m.start(), m.end()] for m in re.finditer(body, text)]
    spans.sort()
    merged: list[list[int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return merged


def load_passages(records: list[dict], index) -> dict[str, list[dict]]:
    """Per item id: its chunks [{chunk_id, source, text, marks}], from the index it was drafted
    from (`index` may be None: items then show without passages)."""
    wanted = {cid for r in records for cid in (r.get("chunk_ids") or [])}
    chunks = {}
    if index is not None and wanted:
        for c in index.chunks():
            if c.chunk_id in wanted:
                chunks[c.chunk_id] = c
    out = {}
    for r in records:
        evidence = [*(r.get("evidence") or []), *r.get("answers", [])]
        out[r["id"]] = [{"chunk_id": cid, "source": chunks[cid].source, "text": chunks[cid].text,
                         "marks": evidence_marks(chunks[cid].text, evidence)}
                        for cid in (r.get("chunk_ids") or []) if cid in chunks]
    return out


def counts(records: list[dict]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for r in records:
        out[r.get("status") or "draft"] = out.get(r.get("status") or "draft", 0) + 1
    return out


# ------------------------------------------------------------------------------------------ the page
def create_review_app(path: str | Path, passages: dict[str, list[dict]], on_request: Callable[[], None] | None = None):
    """The review page's FastAPI app: GET / (the page), GET /api/items, POST /api/items/{id}."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="ragkit bench review", docs_url=None, redoc_url=None, openapi_url=None)
    page = (Path(__file__).parent / "review.html").read_text(encoding="utf-8")
    touch = on_request or (lambda: None)

    @app.get("/", response_class=HTMLResponse)
    def index_page():
        touch()
        return page

    @app.get("/api/items")
    def items():
        touch()
        records = read_records(path)
        return {"file": str(path), "counts": counts(records),
                "items": [{**r, "passages": passages.get(r.get("id"), [])} for r in records]}

    @app.post("/api/items/{item_id}")
    def decide(item_id: str, d: Decision):
        touch()
        try:
            rec = update_item(path, item_id, d.status, d.question, d.answers)
        except UsageError as e:
            raise HTTPException(400, str(e)) from None
        return {"item": rec, "counts": counts(read_records(path))}

    return app


def serve_review(path: str | Path, passages: dict[str, list[dict]], host: str = "127.0.0.1", port: int = 8765,
                 idle_minutes: float = 60.0, on_start: Callable[[str], None] | None = None) -> None:
    """Serve the page until Ctrl+C or `idle_minutes` without a request (it stops by itself)."""
    import uvicorn

    last = [time.monotonic()]
    app = create_review_app(path, passages, on_request=lambda: last.__setitem__(0, time.monotonic()))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

    def watchdog():
        while not server.should_exit:
            if time.monotonic() - last[0] > idle_minutes * 60:
                server.should_exit = True
            time.sleep(1.0)

    threading.Thread(target=watchdog, daemon=True).start()
    if on_start:
        on_start(f"http://{host}:{port}/")
    server.run()


# ------------------------------------------------------------------------------------------ the terminal
def review_in_terminal(path: str | Path, passages: dict[str, list[dict]], ask: Callable[..., str],
                       echo: Callable[[str], None], all_items: bool = False) -> dict[str, int]:
    """Prompt for each draft item (every item with `all_items`): a accept, r reject, e edit,
    s skip, q quit. Returns the counts by status."""
    for r in read_records(path):
        if not all_items and (r.get("status") or "draft") != "draft":
            continue
        echo(f"\n[{r['id']}] {r['category']}/{r['difficulty']}  ({r.get('status') or 'draft'})")
        echo(f"Q: {r['question']}")
        echo(f"A: {' | '.join(r['answers'])}")
        if r.get("notes"):
            echo(f"notes: {r['notes']}")
        for p in passages.get(r["id"], []):
            echo(f"--- {p['source']}\n{highlight(p['text'], p['marks'])}")
        choice = ask("[a]ccept [r]eject [e]dit [s]kip [q]uit", default="s").strip().lower()[:1]
        if choice == "q":
            break
        if choice == "a":
            update_item(path, r["id"], "accepted")
        elif choice == "r":
            update_item(path, r["id"], "rejected")
        elif choice == "e":
            q = ask("question", default=r["question"])
            a = ask("answers (separated by |)", default=" | ".join(r["answers"]))
            update_item(path, r["id"], "accepted", q, [x.strip() for x in a.split("|")])
    return counts(read_records(path))


def highlight(text: str, marks: list[list[int]]) -> str:
    """The passage with its evidence in >>double angle brackets<<, for a terminal."""
    out, pos = [], 0
    for s, e in marks:
        out += [text[pos:s], ">>", text[s:e], "<<"]
        pos = e
    return "".join(out + [text[pos:]])
