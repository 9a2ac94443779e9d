"""Reading a file for ingest, the same for every store: its content hash (trusting a recorded size
and mtime), the stat fields a files entry keeps, and its chunks."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..hashing import bytes_hash
from ..ingest.chunking import chunk_documents
from ..ingest.discover import Found
from ..ingest.loaders import LoadError, load_file_noted, read_file_bytes


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, read once and without following a link (ingest/loaders.py)."""
    return bytes_hash(read_file_bytes(path))


# A files entry records the size and mtime its hash was taken at, so the next ingest reads only
# files whose size or mtime moved: hashing every file was most of a one-file change at 1M chunks
# (10,000 files, 453 MB; evals/perf/scale.py), and would be minutes of disk reads on a cold cache
# of gigabytes of PDFs. rsync and make trust mtime the same way; like git, ragkit does not record
# an mtime younger than STAMP_MARGIN_NS at hashing (a coarse clock could give a later write the
# same mtime), so such a file is hashed again next time. Only a file rewritten with its size kept
# and its mtime set back by hand goes unseen; `ragkit ingest --compact` rehashes every file.
STAMP_MARGIN_NS = 2_000_000_000


def file_digest(path: Path, prev: dict | None, rehash: bool = False) -> tuple[str, os.stat_result | None]:
    """(SHA-256, stat) of a file: the recorded hash, the file unread, when its size and mtime are the
    ones recorded with it. The stat comes first, so a write during the hashing shows next time."""
    try:
        st = path.stat()
    except OSError:
        return file_hash(path), None  # file_hash says why, as a LoadError
    if not rehash and prev and prev.get("mtime_ns") == st.st_mtime_ns and prev.get("size") == st.st_size:
        return prev["sha256"], st
    return file_hash(path), st


def stamp(st: os.stat_result | None) -> dict:
    """The stat fields a files entry keeps: its size, and its mtime once it is old enough to trust."""
    if st is None or time.time_ns() - st.st_mtime_ns < STAMP_MARGIN_NS:
        return {"size": st.st_size if st is not None else 0}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_one(f: Found, source: str, digest: str, config, embedder, summary):
    """(digest, chunks) of a file, or (None, reason) when it cannot be read or parsed."""
    try:
        docs, notes = load_file_noted(f.path, source)
        chunks = chunk_documents(docs, digest, config.chunking, embedder.count_tokens)
        if not chunks:
            raise LoadError("no text after chunking")
    except LoadError as e:
        return None, str(e)
    summary.notes.extend((str(f.path), n) for n in notes)
    if len(chunks) > config.max_chunks_per_file:
        summary.notes.append((str(f.path), f"{len(chunks)} chunks, over the per-file cap of "
                                           f"{config.max_chunks_per_file}: only the first ones are indexed"))
        chunks = chunks[: config.max_chunks_per_file]
    return digest, chunks
