"""Version directories of an index on disk, the same for every store: a reader's lease on one,
the writer's lock, the atomic swap, and reaping.

A version stays on disk after a newer one goes live: readers (an `Index` in this or another
process, `ragkit serve`) may still be answering from it. Ingest marks it retired (`.retired`,
whose mtime is the moment it stopped being live) and reaps it on a later ingest once both hold:
the grace period has passed since it retired, and no reader holds its lease (a shared flock on
its manifest.json, `Lease`; the reaper must get the lock exclusively, without waiting).
A reaped version is first renamed out of the `v-*` namespace, so it vanishes at once for readers.
A version directory without a manifest is a killed ingest's leftover and goes at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

from ..errors import IndexLocked
from .manifest import damaged

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


class Lease:
    """A reader's lease on a version: a shared flock on its manifest.json, which reap() must take
    exclusively before it may remove the version. FileNotFoundError when the version was reaped
    between reading CURRENT and taking the lease (read CURRENT again)."""

    def __init__(self, path: Path):
        self.fd: int | None = None
        try:
            self.fd = os.open(path / "manifest.json", os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            raise FileNotFoundError(path) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            if not _same_file(self.fd, path / "manifest.json"):
                raise FileNotFoundError(path)  # reaped while we waited for the lock
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the shared lock
            self.fd = None


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
