"""One version of a FAISS-store index opened for reading: its lease (versions.Lease) and its parts
(chunks.sqlite, embeddings.npy, dense.faiss, bm25/, a delta segment), each loaded when first used
and checked against the manifest."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from ...errors import IndexMissing
from ..bm25 import BM25Index
from ..manifest import check_artifacts, damaged, read_current, read_manifest
from ..versions import Lease
from .segments import DELTA, DeltaSegment, MergedBM25, MergedVectors


class Version:
    """One version of an index opened for reading, with its lease and lazily loaded parts."""

    def __init__(self, directory: Path, path: Path):
        self.directory, self.path = directory, path
        self.db = self.delta = None
        self._lease = Lease(path)  # FileNotFoundError: reaped between reading CURRENT and here, retry
        try:
            self.manifest = read_manifest(path)
            self.n_base = base_chunks(self.manifest)
            check_artifacts(path, self.manifest, ("chunks.sqlite",) + ((DELTA,) if DELTA in self.manifest else ()))
            self.db = sqlite3.connect(f"file:{path / 'chunks.sqlite'}?mode=ro", uri=True, check_same_thread=False)
            n = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            if n != self.n_base:
                raise damaged(directory, f"chunks.sqlite holds {n} chunks, the manifest {self.n_base}")
            if DELTA in self.manifest:
                self.delta = DeltaSegment(path, self.manifest, lambda ok, what: _expect(ok, directory, what))
        except sqlite3.DatabaseError as e:
            self.release()
            raise damaged(directory, f"chunks.sqlite is unreadable ({e})") from None
        except BaseException:
            self.release()
            raise
        self.users = 0
        self.retired = False
        self._load = threading.Lock()
        self._bm25 = self._faiss = self._vectors = self._delta_faiss = None

    @property
    def dead(self) -> np.ndarray | None:
        """Tombstoned rows (bool per global row) of a delta version; None for a plain one."""
        return self.delta.dead if self.delta is not None else None

    def release(self) -> None:
        if getattr(self, "db", None) is not None:
            self.db.close()
            self.db = None
        if getattr(self, "delta", None) is not None:
            self.delta.close()
            self.delta = None
        self._lease.release()

    def _part(self, attr: str, name: str, loader, check):
        with self._load:
            value = getattr(self, attr)
            if value is None:
                check_artifacts(self.path, self.manifest, (name,))
                try:
                    value = loader()
                except Exception as e:  # faiss, numpy and bm25s each fail their own way on a bad file
                    raise damaged(self.directory, f"{name} is unreadable ({type(e).__name__})") from None
                problem = check(value)
                if problem:
                    raise damaged(self.directory, f"{name} {problem}")
                setattr(self, attr, value)
            return value

    def _base_bm25(self) -> BM25Index:
        b = BM25Index.load(self.path / "bm25")
        if self.delta is None:
            return b
        if b.n_docs != self.n_base or b.doc_lengths is None or len(b.doc_lengths) != b.n_docs:
            raise ValueError("base bm25 does not match the manifest")
        d = BM25Index.load(self.path / DELTA / "bm25") if self.delta.n else None
        if d is not None and (d.n_docs != self.delta.n or d.doc_lengths is None or len(d.doc_lengths) != d.n_docs):
            raise ValueError("delta bm25 does not match the manifest")
        return MergedBM25(b, d, self.delta.dead)

    @property
    def bm25(self) -> BM25Index | MergedBM25:
        n = self.n_base + (self.delta.n if self.delta is not None else 0)
        return self._part("_bm25", "bm25", self._base_bm25,
                          lambda b: None if b.n_docs == n else f"holds {b.n_docs} documents, not {n}")

    @property
    def vectors(self) -> np.ndarray | MergedVectors:
        """Vectors by row (a delta version: by global row, tombstoned rows included)."""
        shape = (self.n_base, self.manifest["embedding"]["dim"])

        def load():
            base = np.load(self.path / "embeddings.npy", mmap_mode="r", allow_pickle=False)
            if self.delta is None or base.shape != shape:
                return base
            return MergedVectors(base, self.delta.delta_vectors)

        n = shape[0] + (self.delta.n if self.delta is not None else 0)
        return self._part("_vectors", "embeddings.npy", load,
                          lambda v: None if v.shape == (n, shape[1]) and v.dtype == np.float32
                          else f"has shape {v.shape}, not {shape}")

    def _faiss_of(self, attr: str, name: str, n: int):
        def load():
            import faiss

            return faiss.read_index(str(self.path / name))

        dim = self.manifest["embedding"]["dim"]
        return self._part(attr, name, load,
                          lambda f: None if (f.ntotal, f.d) == (n, dim) else f"holds {f.ntotal} vectors of {f.d}")

    @property
    def faiss_index(self):
        """The base segment's FAISS index (the whole index of a plain version)."""
        return self._faiss_of("_faiss", "dense.faiss", self.n_base)

    @property
    def delta_faiss(self):
        return self._faiss_of("_delta_faiss", f"{DELTA}/dense.faiss", self.delta.n)


def base_chunks(manifest: dict) -> int:
    """Rows of a version's base segment: all its chunks, or for a delta version those before the delta."""
    return manifest[DELTA]["base_chunks"] if DELTA in manifest else manifest["n_chunks"]


def _expect(ok: bool, directory: Path, what: str) -> None:
    if not ok:
        raise damaged(directory, what)


def open_version(directory: Path) -> Version:
    for _ in range(5):  # a version reaped between reading CURRENT and taking its lease: read CURRENT again
        version = read_current(directory)
        if version is None:
            raise IndexMissing(f"{directory} is not a ragkit index (no CURRENT version); run 'ragkit ingest' first")
        try:
            return Version(directory, version)
        except FileNotFoundError:
            time.sleep(0.01)
    raise damaged(directory, "CURRENT keeps naming versions that do not exist")
