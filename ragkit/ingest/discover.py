"""Which files an ingest reads: the walk over the given folders, with links and special files named.

A folder handed to ingest is its root, and nothing outside a root is read: a symbolic link whose
target lies outside the root (to /etc/passwd, say) is skipped and named, as are dangling and
looping links, links to folders (never followed: a walk cannot loop or leave the root), FIFOs,
sockets and device files (reading a FIFO would block the ingest for ever). A link to a file
inside the root is read through its resolved target. Hidden files and folders are skipped
silently, as are types no loader reads.

A file given by name has its folder as root, so the same rule applies to it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .loaders import SUPPORTED


@dataclass(frozen=True)
class Found:
    root: Path  # the folder given (resolved), or a given file's folder
    path: Path  # what to read: the file itself, or a link's resolved target inside the root
    rel: str  # path relative to root, '/'-separated: the file's name in the index (see sources.py)
    walked: bool  # True when found by walking a folder, False when named on the command line

    @property
    def key(self) -> str:
        """The file's identity: where it lies, not what it points to."""
        return f"{self.root.as_posix()}/{self.rel}"


_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def classify(entry: Path, root: Path) -> tuple[Path | None, str | None]:
    """(path to read, None) for a regular file or a link to one inside root; (None, reason) to skip
    and name it; (None, None) for anything silently ignored (unsupported type)."""
    try:
        st = os.lstat(entry)
    except OSError as e:
        return None, f"cannot read ({e.strerror or e})"
    if stat.S_ISLNK(st.st_mode):
        try:
            target = Path(os.path.realpath(entry, strict=True))
        except FileNotFoundError:
            return None, "dangling symbolic link (its target does not exist)"
        except OSError as e:  # ELOOP, or a permission problem on the way
            return None, "symbolic link loop" if "loop" in str(e).lower() else f"unreadable link ({e.strerror or e})"
        if not _inside(target, root):
            return None, f"symbolic link to {target}, outside the ingest root {root}; not followed"
        if target.is_dir():
            return None, "symbolic link to a folder; not followed"
        entry, st = target, os.stat(target)
    for test, what in _SPECIAL:
        if test(st.st_mode):
            return None, f"{what}, not a regular file"
    if not stat.S_ISREG(st.st_mode) or entry.suffix.lower() not in SUPPORTED:
        return None, None
    return entry, None


def scan(paths: list[Path]) -> tuple[list[Found], list[tuple[str, str]]]:
    """(files to read, [(path, reason) skipped]) for the given files and folders, each file once."""
    found: dict[str, Found] = {}
    seen_real: set[Path] = set()  # regular files already found (`ingest A A/sub`); links stay their own entry
    skipped: list[tuple[str, str]] = []

    def add(root: Path, entry: Path, walked: bool) -> None:
        real, reason = classify(entry, root)
        if reason:
            skipped.append((str(entry), reason))
        elif real is not None:
            item = Found(root, real, entry.relative_to(root).as_posix(), walked)
            is_link = real != entry
            if item.key not in found and (is_link or real not in seen_real):  # `ingest A A`, `ingest A A/x.md`
                found[item.key] = item
                if not is_link:
                    seen_real.add(real)

    for p in paths:
        before = len(found)
        p = Path(os.path.abspath(p))
        if p.is_dir():
            root = p.resolve()  # the root itself may be a link: the user named it
            for dirpath, dirnames, filenames in os.walk(root):  # never follows links to folders
                here = Path(dirpath)
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for d in dirnames[:]:
                    if (here / d).is_symlink():
                        dirnames.remove(d)
                        add(root, here / d, True)
                for name in sorted(filenames):
                    if not name.startswith("."):
                        add(root, here / name, True)
        else:
            add(p.parent.resolve(), p.parent.resolve() / p.name, False)
        items = list(found.items())
        found = dict(items[:before] + sorted(items[before:], key=lambda kv: kv[1].rel))
    return list(found.values()), skipped  # in argument order: the first root given names its files bare


def discover(paths: list[Path]) -> list[tuple[Path, Path, str]]:
    """(root, file, source) for every supported file under the given paths (see scan).

    `source` is the path relative to the root: the directory given, or a file's own folder.
    Hidden files and folders are skipped, and so are links out of the root and special files.
    """
    return [(f.root, f.path, f.rel) for f in scan(paths)[0]]
