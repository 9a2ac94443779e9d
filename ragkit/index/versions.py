"""Version directories of an index on disk: a reader's view of one, the writer's lock, the
atomic swap, and reaping.

A version stays on disk after a newer one goes live: readers (an `Index` in this or another
process, `ragkit serve`) may still be answering from it. Ingest marks it retired (`.retired`,
whose mtime is the moment it stopped being live) and reaps it on a later ingest once both hold:
the grace period has passed since it retired, and no reader holds its lease (a shared flock on
its manifest.json, see store.py; the reaper must get the lock exclusively, without waiting).
A reaped version is first renamed out of the `v-*` namespace, so it vanishes at once for readers.
A version directory without a manifest is a killed ingest's leftover and goes at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import IndexLocked, IndexMissing
from .bm25 import BM25Index
from .manifest import check_artifacts, damaged, read_current, read_manifest
from .segments import DELTA, DeltaSegment, MergedBM25, MergedVectors

REAP_GRACE_S = 60.0  # covers the microseconds between a reader reading CURRENT and taking its lease, with room


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def current_stamp(directory: Path) -> tuple | None:
    """What changes when ingest swaps CURRENT (os.replace gives the file a new inode)."""
    try:
        st = os.stat(directory / "CURRENT")
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class Version:
    """One version of an index opened for reading, with its lease and lazily loaded parts."""

    def __init__(self, directory: Path, path: Path):
        self.directory, self.path = directory, path
        self.db = self.delta = None
        try:
            self._lease = os.open(path / "manifest.json", os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            raise FileNotFoundError(path) from None  # reaped between reading CURRENT and here: retry
        try:
            fcntl.flock(self._lease, fcntl.LOCK_SH)
            if not _same_file(self._lease, path / "manifest.json"):
                raise FileNotFoundError(path)  # reaped while we waited for the lock: retry
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
        if self._lease is not None:
            os.close(self._lease)  # closing the descriptor drops the shared lock
            self._lease = None

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


class WriteLock:
    """`DIR/.lock`, held by a running ingest (released by the kernel if the process dies)."""

    def __init__(self, directory: Path):
        self.path = directory / ".lock"
        self.fd: int | None = None

    def __enter__(self):
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:  # a symbolic link planted as .lock, or a read-only index
            raise damaged(self.path.parent, f".lock cannot be opened ({e.strerror or e})",
                          "remove it, or ingest into a new directory") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            holder = self.path.read_text().strip() or "another process"
            raise IndexLocked(
                f"index {self.path.parent} is being written by another ragkit ingest (pid {holder}); "
                "wait for it to finish and run again"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc):
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def fsync_dir(directory: Path) -> None:
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def swap(directory: Path, version: Path) -> None:
    tmp = directory / "CURRENT.tmp"
    tmp.write_text(version.name, encoding="utf-8")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, directory / "CURRENT")  # the atomic step: readers see old or new, never half
    fsync_dir(directory)


def retire(version: Path) -> None:
    marker = version / ".retired"
    if not marker.exists():
        marker.write_text(str(time.time()), encoding="utf-8")


def _unused(version: Path) -> bool:
    """True when no reader holds the version's lease; then nobody can take one (the dir is renamed next)."""
    try:
        fd = os.open(version / "manifest.json", os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _HELD.append(fd)  # keep the exclusive lock until the directory is renamed away
    return True


_HELD: list[int] = []


def reap(directory: Path, live: Path, grace_s: float | None = None) -> list[str]:
    """Remove versions no reader can still be using; returns the names removed."""
    grace = REAP_GRACE_S if grace_s is None else grace_s
    removed = []
    for d in directory.glob(".reaped-v-*"):  # a reap killed half-way
        shutil.rmtree(d, ignore_errors=True)
    for d in sorted(directory.glob("v-*")):
        if d == live or d.is_symlink() or not d.is_dir():
            continue
        if (d / "manifest.json").exists():
            retire(d)  # a version that was live (or a complete one a killed ingest never swapped in)
            try:
                age = time.time() - (d / ".retired").stat().st_mtime
            except OSError:
                continue
            if age < grace or not _unused(d):
                continue
        gone = directory / f".reaped-{d.name}"
        try:
            os.replace(d, gone)
        except OSError:
            continue
        finally:
            while _HELD:
                os.close(_HELD.pop())
        shutil.rmtree(gone, ignore_errors=True)
        removed.append(d.name)
    return removed
