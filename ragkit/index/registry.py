"""The stores ragkit knows, by the name an index's manifest gives (`store`, absent: faiss), and
the one way to open an index: `Index.open` looks its store up here, and so does ingest.

Adding a store: a package exporting a `StoreKind` (protocol.py) and one line in STORES.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import IndexIncompatible, IndexMissing
from ..extras import require
from . import faiss, milvus
from .manifest import damaged, read_current, read_manifest
from .protocol import Store, StoreKind, check_embedder

STORES: dict[str, StoreKind] = {
    "faiss": faiss.STORE,
    "milvus": milvus.STORE,
}


def kind_of(manifest: dict, directory: Path) -> StoreKind:
    """The store an index's manifest names, its own keys checked; IndexDamaged for an unknown one."""
    name = manifest.get("store", "faiss")
    kind = STORES.get(name)
    if kind is None:
        raise damaged(directory, f"manifest.json names an unknown store {name!r}",
                      "re-run 'ragkit ingest' into a new directory")
    kind.check_manifest(manifest, directory)
    if kind.extra:
        require(kind.extra, f"the {name} store")
    return kind


def store_of(index_dir: Path, requested: str | None, manifest: dict | None = None) -> str:
    """The store an ingest writes: the existing index's own; for a new index the requested one, else FAISS."""
    if manifest is None:
        version = read_current(index_dir) if index_dir.is_dir() else None
        manifest = read_manifest(version) if version else None
    built = kind_of(manifest, index_dir).name if manifest else None
    if requested and built and requested != built:
        raise IndexIncompatible(f"index {index_dir} is a {built} store, not {requested}; ingest into a new directory")
    name = built or requested or "faiss"
    if STORES[name].extra:
        require(STORES[name].extra, f"the {name} store")
    return name


class Index:
    """The way in: `Index.open(dir)` opens an index directory with the store its manifest names and
    returns that store's open index (a `Store`: search, chunks, describe, refresh, close)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("open an index with Index.open(directory)")

    @staticmethod
    def open(directory: str | Path, embed_model: str | None = None, embedder=None,
             auto_refresh: bool = True) -> Store:
        directory = Path(directory)
        if not directory.exists():
            raise IndexMissing(f"no index at {directory}; build one with 'ragkit ingest PATH --index {directory}'")
        version = read_current(directory)
        manifest = read_manifest(version) if version is not None else {}
        kind = kind_of(manifest, directory)
        requested = embed_model or (embedder.name if embedder is not None else None)
        if manifest:
            check_embedder(manifest, requested, directory)
        return kind.open(directory, version, manifest, embedder=embedder, embed_model=embed_model,
                         auto_refresh=auto_refresh)
