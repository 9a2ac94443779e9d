"""The Milvus store: one collection per index, on milvus-lite (a .db file) or a Milvus server.

store.py reads (MilvusIndex), build.py ingests; df.py keeps ragkit's BM25 document frequencies,
keys.py the row keys by source. pymilvus is imported only when a Milvus index is used (extra
`ragkit[milvus]`).
"""

from ..protocol import StoreKind
from .build import ingest_milvus
from .store import MilvusIndex, check_manifest

STORE = StoreKind("milvus", open=MilvusIndex.open, ingest=ingest_milvus, check_manifest=check_manifest, extra="milvus")
