"""Primary keys of each source's rows in a Milvus index, kept beside the manifest.

On milvus-lite every delete or query *by filter* scans the collection, whether the filter is
`source in [...]` or `ver > N` (with an INVERTED index on `ver`), and a one-file change made four
of them (its start-up cleanup, reading the replaced rows' texts back for the document frequencies,
the delete after the swap): a cost that grows with the collection, where by primary key the same
delete and read take milliseconds (evals/perf/scale.py, docs/scaling.md). So ingest keeps the keys
Milvus assigned (insert returns them): a sorted array of 64-bit source codes and one of row keys,
written into each version directory with the manifest, so they name exactly the live version's rows.

A version written before this file existed has none: the next ingest reads the live rows' (key,
source) once with a query iterator (seconds at 100k chunks on milvus-lite) and keeps them from
then on.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .df import code

SOURCES, KEYS = "row_sources.npy", "row_keys.npy"


class RowKeys:
    def __init__(self, sources: np.ndarray | None = None, keys: np.ndarray | None = None):
        self.sources = np.zeros(0, dtype=np.uint64) if sources is None else sources  # sorted source codes
        self.keys = np.zeros(0, dtype=np.int64) if keys is None else keys

    @classmethod
    def load(cls, version_dir: Path | None) -> RowKeys | None:
        """The keys saved with a version; None when it has none (written before keys were kept)."""
        if version_dir is None or not (version_dir / KEYS).is_file():
            return None
        return cls(np.load(version_dir / SOURCES, allow_pickle=False), np.load(version_dir / KEYS, allow_pickle=False))

    @classmethod
    def scan(cls, client, collection: str, live: str) -> RowKeys:
        """The keys of the rows a reader of the live manifest sees, read from Milvus (one pass)."""
        it = client.query_iterator(collection, batch_size=4000, output_fields=["source"], filter=live)
        pairs = []
        while batch := it.next():
            pairs.extend((r["source"], int(r["pk"])) for r in batch)
        it.close()
        return cls().updated((), pairs)

    def save(self, version_dir: Path) -> None:
        np.save(version_dir / SOURCES, self.sources, allow_pickle=False)
        np.save(version_dir / KEYS, self.keys, allow_pickle=False)

    def __len__(self) -> int:
        return len(self.keys)

    def of(self, sources: Iterable[str]) -> list[int]:
        """The keys of every row of these sources."""
        out: list[int] = []
        for s in sources:
            c = np.uint64(code(s))
            lo, hi = np.searchsorted(self.sources, c, "left"), np.searchsorted(self.sources, c, "right")
            out.extend(int(k) for k in self.keys[lo:hi])
        return out

    def updated(self, dropped: Iterable[str], added: Iterable[tuple[str, int]]) -> RowKeys:
        """Keys after the rows of the `dropped` sources went and the (source, key) rows `added` came."""
        gone = np.array(sorted({code(s) for s in dropped}), dtype=np.uint64)
        keep = ~np.isin(self.sources, gone) if len(gone) else np.ones(len(self.sources), dtype=bool)
        added = list(added)
        sources = np.concatenate([self.sources[keep], np.array([code(s) for s, _ in added], dtype=np.uint64)])
        keys = np.concatenate([self.keys[keep], np.array([k for _, k in added], dtype=np.int64)])
        order = np.lexsort((keys, sources))
        return RowKeys(sources[order], keys[order])
