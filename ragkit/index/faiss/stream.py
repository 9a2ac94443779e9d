"""Ingest as a stream: a plan of every file (hashed, not read), then chunks made file by file and
written batch by batch, so memory holds one batch and the plan, never the corpus.

Unchanged files' chunks and vectors are read back from the old version per file (its SQLite
index by source, its embeddings.npy as a memmap); new and changed files are loaded and chunked
only when the stream reaches them. The order of rows is the plan's order, the same on every run
over the same files, which is what lets a resumed ingest skip the rows a killed one wrote.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import IndexDamaged, RagkitError
from ...ingest.chunking import chunk_id
from ...ingest.discover import Found
from ...ingest.loaders import LoadError
from ...lang import tokenize_for_search
from ...types import Chunk
from ..manifest import check_artifacts
from ..reading import file_digest, read_one, stamp
from ..sources import is_gone
from .segments import DELTA, DeltaSegment, MergedVectors

Item = tuple[Chunk, str, "int | None"]  # chunk, BM25 tokens, row of its vector in the old version (None: embed it)


class StaleStaging(Exception):
    """The staging's rows are not the ones this stream makes: start the staging over."""


class OldVersion:
    """The live version an ingest updates, read a file at a time. Rows are global: a delta version's
    delta rows come after its base rows (segments.py), and its tombstoned base rows are never read."""

    _COLS = "row, chunk_id, source, text, start, end, page, title, metadata, tokens"

    def __init__(self, version: Path, manifest: dict):
        check_artifacts(version, manifest, ("chunks.sqlite", "embeddings.npy") + ((DELTA,) if DELTA in manifest else ()))
        self.path, self.manifest, self.files = version, manifest, manifest["files"]
        self.delta = None
        self.n_base = manifest[DELTA]["base_chunks"] if DELTA in manifest else manifest["n_chunks"]
        try:
            self.db = sqlite3.connect(f"file:{version / 'chunks.sqlite'}?mode=ro", uri=True)
            self.db.execute("SELECT row, chunk_id, source, text, start, end, page, title, metadata, tokens "
                            "FROM chunks LIMIT 1").fetchall()
        except sqlite3.DatabaseError as e:
            raise self._damaged(f"chunks.sqlite is unreadable ({e})") from None
        try:
            self.vectors = np.load(version / "embeddings.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise self._damaged(f"embeddings.npy is unreadable ({e})") from None
        if self.vectors.shape != (self.n_base, manifest["embedding"]["dim"]):
            raise self._damaged(f"embeddings.npy has shape {self.vectors.shape}")
        if DELTA in manifest:
            def check(ok: bool, what: str) -> None:
                if not ok:
                    raise self._damaged(what)

            try:
                self.delta = DeltaSegment(version, manifest, check)
            except sqlite3.DatabaseError as e:
                raise self._damaged(f"delta/chunks.sqlite is unreadable ({e})") from None
            self.vectors = MergedVectors(self.vectors, self.delta.delta_vectors)
        self.delta_sources = self.delta.sources() if self.delta is not None else set()

    def _damaged(self, what: str) -> IndexDamaged:
        return IndexDamaged(f"index {self.path.parent} is damaged: {what}; ingest into a new directory")

    def chunks(self, source: str) -> list[Item]:
        """A file's chunks of its recorded content (an index from an older ragkit that gave two files
        one name held both files' chunks under it; reading it this way repairs it)."""
        info = self.files.get(source)
        if info is None:
            return []
        prefix = chunk_id(source, info["sha256"], 0, 0).split("-")[0] + "-"
        in_delta = source in self.delta_sources
        db, offset = (self.delta.db, self.n_base) if in_delta else (self.db, 0)
        dead = None if in_delta or self.delta is None else self.delta.dead
        try:
            rows = db.execute(f"SELECT {self._COLS} FROM chunks WHERE source = ? ORDER BY row", (source,)).fetchall()
            return [(Chunk(cid, src, text, start, end, page, title, json.loads(meta) if meta else {}), tokens, row + offset)
                    for row, cid, src, text, start, end, page, title, meta, tokens in rows
                    if cid.startswith(prefix) and (dead is None or not dead[row])]
        except (sqlite3.DatabaseError, ValueError, TypeError, AttributeError) as e:
            raise self._damaged(f"chunks.sqlite is unreadable ({e})") from None

    def has_chunks(self, source: str) -> bool:
        """Whether `chunks(source)` is non-empty, without reading the rows (one indexed lookup)."""
        info = self.files.get(source)
        if info is None:
            return False
        if source in self.delta_sources:
            return True  # delta rows are only ever written for a file's recorded content
        prefix = chunk_id(source, info["sha256"], 0, 0).split("-")[0] + "-"
        try:  # one row is enough (0.1 ms a file with them all, 1000 files at 100k chunks): a live file's rows all live
            row = self.db.execute("SELECT row FROM chunks WHERE source = ? AND substr(chunk_id, 1, ?) = ? LIMIT 1",
                                  (source, len(prefix), prefix)).fetchone()
        except sqlite3.DatabaseError as e:
            raise self._damaged(f"chunks.sqlite is unreadable ({e})") from None
        if row is None:
            return False
        return self.delta is None or not self.delta.dead[row[0]] or bool(self.chunks(source))

    def base_rows(self, source: str) -> list[int]:
        """Every base row stored under a source, live or not (what a delta tombstones when the file goes)."""
        try:
            return [r for (r,) in self.db.execute("SELECT row FROM chunks WHERE source = ?", (source,))]
        except sqlite3.DatabaseError as e:
            raise self._damaged(f"chunks.sqlite is unreadable ({e})") from None

    def close(self) -> None:
        self.db.close()
        if self.delta is not None:
            self.delta.close()


@dataclass
class Entry:
    source: str
    found: Found | None  # None: a file from another root, kept as it was
    digest: str | None  # None: it could not be read (error says why)
    prev: dict | None
    have_old: bool
    error: str = ""
    st: os.stat_result | None = None  # the file's stat when hashed (None: not hashed)

    @property
    def size(self) -> int:
        return self.st.st_size if self.st is not None else 0

    @property
    def same(self) -> bool:
        return self.have_old and (self.found is None or self.digest == self.prev["sha256"])


def plan(assigned: dict[str, Found], old: OldVersion | None, roots: list[Path], sync: bool,
         rehash: bool = False) -> tuple[list, int]:
    """(entries in row order, files deleted): every file hashed (or known by its stat), none read yet."""
    old_files = old.files if old else {}
    entries = []
    for source, f in assigned.items():
        prev = old_files.get(source)
        have_old = prev is not None and old.has_chunks(source)
        try:
            (digest, st), error = file_digest(f.path, prev, rehash), ""
        except LoadError as e:
            digest, st, error = None, None, str(e)
        entries.append(Entry(source, f, digest, prev, have_old, error, st))
    walked = sorted({p.resolve().as_posix() for p in roots if p.is_dir()})
    deleted = 0
    for source, info in old_files.items():
        if source in assigned:
            continue
        if is_gone(source, info, walked, sync):
            deleted += 1
        elif old.has_chunks(source):
            entries.append(Entry(source, None, info["sha256"], info, True))
    return entries, deleted


def key(entries: list[Entry], old: OldVersion | None, settings: dict) -> dict:
    """What a staging belongs to: resuming is right only when all of it is the same."""
    return {"old": old.path.name if old else None, "settings": settings,
            "files": [[e.source, e.digest, e.same] for e in entries]}


class Estimate:
    """Chunks left to embed, from the bytes left to read and the chunks a byte has made so far."""

    def __init__(self, entries: list[Entry], chunk_tokens: int):
        self.left = sum(e.size for e in entries if not e.same and e.digest is not None)
        self.read, self.made, self.resumed = 0, 0, 0  # resumed: new chunks a killed ingest embedded
        self.per_byte = 1.0 / max(1, 4 * chunk_tokens)  # about 4 bytes a token before anything is read

    def file_done(self, size: int, chunks: int) -> None:
        self.left -= size
        self.read += size
        self.made += chunks
        if self.read:
            self.per_byte = self.made / self.read

    def total(self) -> int:
        return self.made - self.resumed + int(max(0, self.left) * self.per_byte)


def items(entries: list[Entry], old: OldVersion | None, config, embedder, summary, new_files: dict,
          estimate: Estimate) -> Iterator[Item]:
    """Every chunk in row order; fills new_files and the summary's counts as files are reached."""
    for e in entries:
        if e.same:
            if e.found is not None:
                summary.files_unchanged += 1
            new_files[e.source] = e.prev if e.st is None else {**e.prev, **stamp(e.st)}  # a version is written
            yield from old.chunks(e.source)
            continue
        digest, chunks = (e.digest, None) if e.digest is not None else (None, e.error)
        if digest is not None:
            digest, chunks = read_one(e.found, e.source, digest, config, embedder, summary)
        if digest is None:
            summary.skipped.append((str(e.found.path), chunks + ("; kept its last indexed version" if e.have_old else "")))
            estimate.file_done(e.size, 0)
            if e.have_old:  # unreadable or broken now: keep the last good version rather than lose it
                new_files[e.source] = e.prev
                yield from old.chunks(e.source)
            continue
        if e.prev:
            summary.files_changed += 1
        else:
            summary.files_added += 1
        f = e.found
        new_files[e.source] = {"sha256": digest, "root": f.root.as_posix(), "path": f.rel, "chunks": len(chunks),
                               **stamp(e.st)}
        estimate.file_done(e.size, len(chunks))
        for c in chunks:
            yield c, " ".join(tokenize_for_search(c.text)), None


def write(stream: Iterator[Item], writer, embed: Callable[[list[list[str]]], list[np.ndarray]], old: OldVersion | None,
          batch_rows: int, on_batch: Callable[[int], None] | None = None, estimate: Estimate | None = None,
          window: int = 1) -> int:
    """Write the stream batch by batch, skipping the rows a killed ingest already wrote; returns chunks embedded.

    embed gets the new chunks of `window` batches at once (a Ray pool is worth starting for many),
    grouped by batch: each group is embedded as one embedder.embed call wherever it runs, so the
    padding and, for int8 ONNX, the activation scales are the same, and so are the vectors. The
    writer still gets one batch, one checkpoint, at a time.
    """
    skip, last = writer.rows, writer.last_chunk_id()
    n = embedded = 0
    batch: list[Item] = []

    def flush() -> int:
        vecs = np.empty((len(batch), writer.dim), dtype=np.float32)
        new = [i for i, (_, _, row) in enumerate(batch) if row is None]
        reused = [i for i, (_, _, row) in enumerate(batch) if row is not None]
        if reused:
            vecs[reused] = old.vectors[[batch[i][2] for i in reused]]
        groups = [[i for i in new if s <= i < s + batch_rows] for s in range(0, len(batch), batch_rows)]
        groups = [g for g in groups if g]
        for g, v in zip(groups, embed([[batch[i][0].text for i in g] for g in groups])):
            vecs[g] = v
        for s in range(0, len(batch), batch_rows):
            try:
                writer.add([(c, t) for c, t, _ in batch[s:s + batch_rows]], vecs[s:s + batch_rows])
            except sqlite3.IntegrityError as e:  # cannot happen with unique sources; never write a version that fails
                raise RagkitError(f"internal error: a chunk id would be stored twice ({e}); nothing was changed, "
                                  "please report this") from None
            if on_batch:
                on_batch(min(batch_rows, len(batch) - s))
        done = len(new)
        batch.clear()
        return done

    for item in stream:
        n += 1
        if n <= skip:
            if estimate is not None and item[2] is None:
                estimate.resumed += 1
            if n == skip and item[0].chunk_id != last:
                raise StaleStaging
            continue
        batch.append(item)
        if len(batch) >= batch_rows * window:
            embedded += flush()
    if n < skip:
        raise StaleStaging
    if batch:
        embedded += flush()
    return embedded
