"""Indexes: what every store shares (this folder), one package per store (faiss/, milvus/).

The public names: `Index.open(dir)` opens an index with the store its manifest names (a `Store`),
`ingest(paths, dir, IngestConfig(...))` builds or updates one, `STORES` lists the stores.
"""

from .ingesting import IngestConfig, ingest
from .protocol import MODES, BatchWriter, Store, StoreKind
from .registry import STORES, Index
from .summary import IngestSummary

__all__ = ["MODES", "STORES", "BatchWriter", "Index", "IngestConfig", "IngestSummary", "Store", "StoreKind", "ingest"]
