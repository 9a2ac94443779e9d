"""The bench format: JSONL, one question per line, shared by every arm of `ragkit eval`.

Fields: id, question, answers (acceptable answer strings; any one counts), sources (paths relative
to the ingested root that hold the answer), category (knowledge, logic, common, ...), difficulty
(easy, medium, hard, simple, complex), optional notes, optional context; and, from the bench draft
and review commands (ragkit.benchset), optional status (draft, accepted, rejected), chunk_ids (the chunks
the item was drafted from), evidence (the strings in those chunks its gold rests on: the answer, or
a computation's operands; the review page highlights them) and fingerprints (the normalised forms of every question written for the
item, held out of SFT data by `build-sft-data --exclude-bench`).

`sources` may be an empty list for an item that carries its own `context`, or for any item of a
general bench (`general=True`: closed-book questions about the world, whose answers come from no
document). Everywhere else it names at least one file, so retrieval metrics and the oracle have
something to look for.

`status`: once any item is "accepted", eval answers the accepted items only; "rejected" items are
never answered (`reviewed_items`).

`context` is a list of passage strings the item brings with it (reading comprehension): every arm
answers from those passages, in the prompt format of retrieved ones, and nothing is retrieved for it
(ragkit.eval.passages). Answer metrics treat such items like any other; retrieval metrics skip them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import BenchFormatError
from ..types import BenchItem

DIFFICULTIES = ("easy", "medium", "hard", "simple", "complex")
REQUIRED = ("id", "question", "answers", "sources", "category", "difficulty")
OPTIONAL = ("notes", "context", "status", "chunk_ids", "evidence", "fingerprints")
STATUSES = ("draft", "accepted", "rejected")


def check_record(record: object, general: bool = False) -> list[str]:
    """Problems with one parsed line, as short phrases (empty when the line is valid). In a general
    bench (`general`), or for an item with its own `context`, `sources` may be empty."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems = [f"missing field '{f}'" for f in REQUIRED if f not in record]
    unknown = set(record) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        problems.append(f"unknown field(s) {', '.join(sorted(unknown))}")
    for f in ("id", "question", "category"):
        if f in record and (not isinstance(record[f], str) or not record[f].strip()):
            problems.append(f"'{f}' must be a non-empty string")
    for f in ("answers", "sources"):
        if f in record:
            v = record[f]
            may_be_empty = f == "sources" and (general or record.get("context") is not None)
            if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v):
                problems.append(f"'{f}' must be a list of non-empty strings")
            elif not v and not may_be_empty:
                problems.append(f"'{f}' must not be empty" + ("" if f == "answers" else
                                " (only an item with its own 'context', or in a general bench, may have no sources)"))
    if record.get("status") is not None and record["status"] not in STATUSES:
        problems.append(f"'status' must be one of {', '.join(STATUSES)}")
    for f in ("chunk_ids", "evidence", "fingerprints"):
        v = record.get(f)
        if v is not None and (not isinstance(v, list) or not all(isinstance(s, str) for s in v)):
            problems.append(f"'{f}' must be a list of strings")
    if "difficulty" in record and record["difficulty"] not in DIFFICULTIES:
        problems.append(f"'difficulty' must be one of {', '.join(DIFFICULTIES)}")
    if "notes" in record and record["notes"] is not None and not isinstance(record["notes"], str):
        problems.append("'notes' must be a string")
    if record.get("context") is not None:
        problems += check_context(record["context"])
    return problems


def check_context(value: object) -> list[str]:
    """The problem with an item's `context`, as one phrase (empty when it is valid)."""
    if not isinstance(value, list):
        return ["'context' must be a list of passage strings"]
    if not value:
        return ["'context' must hold at least one passage"]
    if not all(isinstance(p, str) for p in value):
        return ["'context' passages must be strings"]
    if not all(p.strip() for p in value):
        return ["'context' passages must not be empty"]
    return []


def bench_lines(path: Path) -> list[tuple[int, str | None, str]]:
    """(line number, text or None, problem) per line; a line that is not UTF-8 is named, not fatal."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BenchFormatError(f"cannot read bench file {path} ({e.strerror or e})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out = []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            out.append((lineno, raw.decode("utf-8"), ""))
        except UnicodeDecodeError as e:
            out.append((lineno, None, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                      "save the file as UTF-8"))
    return out


def validate_bench(path: str | Path, general: bool = False) -> tuple[int, list[tuple[int, str]]]:
    """Return (number of valid items, [(line number, problem), ...]) for a bench file."""
    path = Path(path)
    if not path.is_file():
        raise BenchFormatError(f"bench file {path} does not exist")
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    valid = 0
    for lineno, line, problem in bench_lines(path):
        if line is None:
            errors.append((lineno, problem))
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as e:
            msg = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else "nested too deeply"
            errors.append((lineno, f"invalid JSON ({msg})"))
            continue
        problems = check_record(record, general)
        if not problems and record["id"] in seen:
            problems.append(f"duplicate id '{record['id']}' (first on line {seen[record['id']]})")
        if problems:
            errors.extend((lineno, p) for p in problems)
        else:
            seen[record["id"]] = lineno
            valid += 1
    if valid == 0 and not errors:
        errors.append((0, "the file holds no items"))
    return valid, errors


def load_bench(path: str | Path, general: bool = False) -> list[BenchItem]:
    """Load a bench file, refusing it whole if any line is malformed."""
    valid, errors = validate_bench(path, general)
    if errors:
        lineno, problem = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise BenchFormatError(
            f"{path} line {lineno}: {problem}{more}; run 'ragkit bench validate {'--general ' if general else ''}{path}' "
            "for the full list"
        )
    items = []
    for _, line, _ in bench_lines(Path(path)):
        if line and line.strip():
            r = json.loads(line)
            items.append(BenchItem(**{k: r.get(k) for k in REQUIRED + OPTIONAL}))
    return items


def status_counts(path: str | Path) -> dict[str, int]:
    """Items per review status ("draft" for items without one), over the valid lines of a bench."""
    counts: dict[str, int] = {}
    for _, line, _ in bench_lines(Path(path)):
        if not line or not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(record, dict):
            s = record.get("status") or "draft"
            counts[s] = counts.get(s, 0) + 1
    return counts


def reviewed_items(items: list[BenchItem]) -> tuple[list[BenchItem], str | None]:
    """The items eval answers, and a sentence saying so when review left some out: only the
    accepted ones once any item is accepted; never the rejected ones."""
    accepted = [it for it in items if it.status == "accepted"]
    rejected = sum(1 for it in items if it.status == "rejected")
    if accepted:
        left = len(items) - len(accepted)
        return accepted, (f"bench: {len(accepted)} accepted item(s) of {len(items)} answered; {left} not accepted "
                          "(draft or rejected) left out")
    if rejected:
        return [it for it in items if it.status != "rejected"], (
            f"bench: {rejected} rejected item(s) of {len(items)} left out (none accepted yet)")
    return items, None
