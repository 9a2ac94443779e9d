"""A file's name in the index (its `source`), unambiguous across ingest roots and repeated arguments.

A file's identity is its absolute path (root + path relative to it), so `ingest A A`, `ingest A
A/x.md` and `ingest data/corpus` then `ingest data/corpus/en` each index a file once. Its name:

- The index's first root names its files by their path relative to it (`en/m3-release-notes-2.1.md`
  for data/corpus), as before: a one-root index, the common case, keeps the names a bench's
  `sources` use.
- Every later root gets a label, its folder's name (`B`, or `B-2` when that is taken), and its files
  are named `label/relative path` (`B/readme.md`). Labels are kept in the manifest's `roots`.
- A name already held by another file is never reused: that file is skipped and named (this can
  happen only when the first root later grows a folder with a label's name).

Ingesting B never drops A's files; files are deleted only when gone from disk under a folder this
ingest walked, or, with sync, when this ingest did not see them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..ingest.discover import Found


def file_key(source: str, info: dict) -> str | None:
    root = info.get("root")
    return f"{root}/{info.get('path', source)}" if root else None


def _label(root: str, roots: dict[str, str], taken: set[str]) -> str:
    if not roots:
        return ""
    base = Path(root).name or "root"
    label, i = base, 1
    while label in roots.values() or label in taken or any(s.startswith(label + "/") for s in taken):
        i += 1
        label = f"{base}-{i}"
    return label


def assign_sources(found: list[Found], old_files: dict[str, dict], old_roots: dict[str, str]):
    """({source: Found}, [(path, reason) skipped], roots {root: label}) for this ingest."""
    roots = dict(old_roots)
    for info in old_files.values():  # indexes from before labels: every root named its files bare
        if info.get("root"):
            roots.setdefault(info["root"], "")
    owner = {k: s for s, info in old_files.items() if (k := file_key(s, info))}
    taken = set(old_files)
    out: dict[str, Found] = {}
    skipped: list[tuple[str, str]] = []
    for f in found:
        if f.key in owner:
            out[owner[f.key]] = f
            continue
        root = f.root.as_posix()
        if root not in roots:
            roots[root] = _label(root, {r: lb for r, lb in roots.items()}, taken)
        name = f"{roots[root]}/{f.rel}" if roots[root] else f.rel
        if name in taken:
            other = old_files.get(name, {}).get("root") or (out[name].root.as_posix() if name in out else "?")
            skipped.append((f.key, f"its name in the index, '{name}', already belongs to a file from {other}; "
                                   "ingest it into another index or rename the folder"))
            continue
        taken.add(name)
        owner[f.key] = name
        out[name] = f
    return out, skipped, roots


def is_gone(source: str, info: dict, walked: list[str], sync: bool) -> bool:
    """Whether an indexed file not seen by this ingest is dropped."""
    if sync:
        return True
    key = file_key(source, info)
    if key is None:
        return False
    return any(key.startswith(w + "/") for w in walked) and not os.path.lexists(key)
