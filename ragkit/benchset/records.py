"""A bench file as a list of JSON records, read whole and written atomically: the new text goes to a
file beside it, is flushed to disk, and replaces the old one in one rename, so a run killed while
writing leaves the previous version intact, never a torn file. `bench draft` writes its output this
way after every item, and `bench review` after every decision.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import BenchFormatError


def read_records(path: str | Path) -> list[dict]:
    """Every JSON object of a bench file, in order (blank lines skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BenchFormatError(f"bench file {path} does not exist") from None
    except UnicodeDecodeError:
        raise BenchFormatError(f"bench file {path} is not UTF-8 text") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchFormatError(f"{path} line {n}: invalid JSON ({e.msg}); run 'ragkit bench validate {path}'") from None
        if not isinstance(rec, dict):
            raise BenchFormatError(f"{path} line {n}: not a JSON object")
        out.append(rec)
    return out


def write_atomic(path: str | Path, text: str) -> None:
    """Replace `path` with `text` in one rename (never a half-written file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_records(path: str | Path, records: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
