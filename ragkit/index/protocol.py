"""What a store is: the boundary between ragkit and the stores that hold an index.

A store keeps chunks and their vectors and answers `search`. ragkit has two (`faiss/`: FAISS +
bm25s + SQLite on local disk; `milvus/`: a Milvus collection), and each is one package that
exports one `StoreKind`; `registry.py` lists them, and both `Index.open` and `ingest` look the
store up there by the `store` key of the index's manifest. A new store is one package plus one
registry line; tests/unit/test_store_contract.py runs the same contract over every store (a
test-only toy store included).

Every store shares the directory layout of versions.py (CURRENT → v-*/manifest.json, the write
lock, the atomic swap, reaping), the manifest (manifest.py), source names (sources.py), fusion
(fusion.py) and BM25 words (lang.tokenize_for_search, bm25.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..embed import is_registered
from ..errors import IndexIncompatible, UsageError
from ..models import resolve_embedder
from ..settings import SEARCH_MODES
from ..types import Chunk, Hit
from .manifest import local_model_dir

if TYPE_CHECKING:  # types only: ingesting.py imports the registry, which imports every store
    from ..progress import Progress
    from .ingesting import IngestConfig
    from .summary import IngestSummary

MODES = SEARCH_MODES


class Store(Protocol):
    """An open index: what Pipeline, eval, serve and the CLI call, whichever store holds it."""

    directory: Path
    manifest: dict

    @property
    def version(self) -> str: ...

    def search(self, query: str, k: int, mode: str = "hybrid") -> list[Hit]: ...

    def chunks(self) -> Iterator[Chunk]: ...

    def refresh(self) -> bool: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...

    def __len__(self) -> int: ...


class BatchWriter(Protocol):
    """What a streamed ingest needs of a store: rows with their vectors in order, a checkpoint per
    add, and a finish that makes the new version complete (not yet live: ingest swaps CURRENT after it)."""

    dim: int
    rows: int  # rows durably written (after a resume: those a killed ingest wrote)
    chunks: int  # chunks the finished version will hold

    def last_chunk_id(self) -> str | None: ...

    def add(self, items: list[tuple[Chunk, str]], vectors: np.ndarray) -> None: ...

    def finish(self, manifest: dict, version: Path) -> None: ...

    def discard(self) -> None: ...


@dataclass(frozen=True)
class IngestJob:
    """One ingest as the store-independent half (ingesting.py) hands it to a store: under the index's
    write lock, the old version's model and chunking checked, the embedder loaded."""

    roots: list[Path]
    index_dir: Path
    config: IngestConfig
    progress: Progress
    embedder: object
    embedder_passed_in: bool  # the caller gave the embedder (a Ray pool cannot rebuild it by name)
    on_file_error: Callable[[str, str], None] | None
    sync: bool
    old_version: Path | None
    old_manifest: dict | None


@dataclass(frozen=True)
class StoreKind:
    """One store: its manifest name, how to open an index it holds, and how to ingest into one."""

    name: str
    open: Callable[..., Store]  # (directory, version_dir, manifest, embedder, embed_model, auto_refresh)
    ingest: Callable[[IngestJob], IngestSummary]
    check_manifest: Callable[[dict, Path], None]  # the store's own manifest keys; IndexDamaged when wrong
    ray: bool = False  # whether ingest can embed on a Ray actor pool (--ray)
    extra: str | None = None  # the pip extra the store needs (ragkit.extras), checked before any work


def check_search(query: str, k: int, mode: str) -> None:
    """The arguments every store's `search` refuses, with the same sentence."""
    if not query or not query.strip():
        raise UsageError("the query is empty")
    if mode not in MODES:
        raise UsageError(f"unknown search mode '{mode}'; choose one of {', '.join(MODES)}")
    if k < 1:
        raise UsageError("k must be at least 1")


def manifest_summary(m: dict) -> dict:
    """What `describe()` reports of an index's manifest, whichever store holds it."""
    return {"chunks": m["n_chunks"], "files": len(m["files"]), "embedding": m["embedding"],
            "chunking": m["chunking"], "dense_index": m["dense_index"], "updated": m.get("updated"),
            "delta": m.get("delta")}


def check_embedder(manifest: dict, requested: str | None, index_dir: Path) -> None:
    """Refuse to read or extend an index with another embedding model than the one it was built with."""
    emb = manifest["embedding"]
    built = emb["model"]
    if requested is None or requested == built or requested == emb.get("path"):
        return
    local = local_model_dir(requested) if not is_registered(requested) else None
    if local is not None and emb.get("path") is not None:
        if str(local) == emb["path"]:
            return
        name = str(local)
        built = emb["path"]
    else:
        name = requested if is_registered(requested) else resolve_embedder(requested)[0]
    if name != built:
        use = emb.get("path") or built
        raise IndexIncompatible(
            f"index {index_dir} was built with embedding model '{built}', not '{name}'; "
            f"use --embed-model {use} or ingest into a new index"
        )
