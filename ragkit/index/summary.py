"""What every store's ingest shares: the summary it returns, the name of a new version, and the
refusal when no file could be read."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UsageError


@dataclass
class IngestSummary:
    index: str
    files_seen: int = 0
    files_added: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (path, what was guessed or warned) for read files
    chunks: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    version: str | None = None  # the live version after this ingest
    version_written: bool = False  # False when nothing changed and the old version stays live
    delta: dict | None = None  # the written version's delta segment (faiss/delta.py), None for a whole one

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        d["notes"] = [{"path": p, "note": n} for p, n in self.notes]
        return d


def new_version_dir(index_dir: Path) -> Path:
    """A fresh v-* name for the version an ingest is about to write (unique per process and moment)."""
    return index_dir / f"v-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{int(time.time_ns() % 10**6)}"


def no_documents(summary: IngestSummary, roots: list[Path]) -> UsageError:
    reasons = "; ".join(f"{p}: {r}" for p, r in summary.skipped[:3])
    return UsageError(
        "no readable documents found" + (f" ({reasons})" if reasons else f" in {', '.join(map(str, roots))}")
        + "; supported types: .txt .md .html .pdf .docx .csv .jsonl"
    )


def used_roots(root_labels: dict, new_files: dict) -> dict:
    """The roots (and their labels) that at least one indexed file still comes from."""
    used = {info.get("root") for info in new_files.values()}
    return {r: lb for r, lb in sorted(root_labels.items()) if r in used}
