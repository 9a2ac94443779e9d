"""The FAISS store: FAISS (flat, HNSW or IVF) + bm25s + SQLite in versioned directories on local disk.

store.py reads (FaissIndex), build.py ingests through a BatchWriter (writer.py; delta.py for a few
changed files), stream.py streams files into it, version.py and segments.py read a version.
"""

from ..protocol import StoreKind
from .build import ingest_faiss
from .store import FaissIndex


def check_manifest(manifest: dict, directory) -> None:
    """The FAISS store's keys are checked as the shared schema (manifest.py: dense_index, delta)."""


STORE = StoreKind("faiss", open=FaissIndex.open, ingest=ingest_faiss, check_manifest=check_manifest, ray=True)
