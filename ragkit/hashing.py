"""The two hashes ragkit keys its caches with: of a file's bytes, and of a group of settings.

A step of an experiment, a chunk's SFT work and an eval item are redone exactly when the hash of
what decided them changes, so these two functions are the whole of "is it up to date". Settings
hash as sorted-key JSON (UTF-8, non-ASCII kept as is; values JSON cannot write, such as paths, as
their str), cut to `length` hex digits: 16 (64 bits) is far beyond the few thousand keys a run holds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

READ_BLOCK = 1 << 20  # 1 MiB reads: whole-file hashing without holding a large PDF in memory


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(READ_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def bytes_hash(data: bytes) -> str:
    """SHA-256 of bytes already read (ingest reads each file once, without following links)."""
    return hashlib.sha256(data).hexdigest()


def settings_hash(obj, length: int = 16) -> str:
    """A short, stable hash of JSON-like settings (dict order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]
