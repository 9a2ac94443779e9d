"""An index on disk, and searching it.

Layout of an index directory:

    DIR/CURRENT            name of the live version (replaced atomically by ingest)
    DIR/.lock              held by a running ingest
    DIR/v-*/manifest.json  embedding model, dimension, chunking, ragkit version, per-file hashes, artifact sizes
    DIR/v-*/chunks.sqlite  chunk text and metadata, row i = vector i = BM25 document i
    DIR/v-*/embeddings.npy float32 vectors (kept so an incremental ingest never re-embeds)
    DIR/v-*/dense.faiss    FAISS index (flat inner product, HNSW or IVF)
    DIR/v-*/bm25/          bm25s arrays (.npy/.json) and doc_lengths.npy
    DIR/v-*/delta/         a delta version only: the new and changed chunks, and tombstones (segments.py)

Nothing here is a pickle: opening an index never executes code from it. Everything read from the
directory is checked first (manifest.py): a damaged or crafted index gives one sentence, not a
traceback, and CURRENT cannot point outside the index.

Readers and a writer share the directory. An open Index holds a shared flock on its version's
manifest.json (a lease: ingest reaps a retired version only once it can lock that file
exclusively, and only after a grace period, so readers in other processes are safe too). Before
each query an open Index stats CURRENT (one os.stat) and moves to a new version when ingest
swapped one in; a query in flight finishes on the version it started with.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ... import embed
from ...errors import IndexIncompatible
from ...lang import detect_language
from ...settings import RETRIEVAL
from ...types import Chunk, Hit
from ..bm25 import BM25Index
from ..fusion import FusionWeights, fuse, sparse_candidates, top_k
from ..manifest import damaged, embedder_source
from ..protocol import check_embedder, check_search, manifest_summary
from ..versions import current_stamp
from .segments import merged_dense_top, one_faiss_thread
from .version import Version, open_version


class FaissIndex:
    """A read-only view of the live version of a FAISS-store index directory.

    Long-lived: between queries it moves to the version a later ingest made live (auto_refresh),
    while a query in flight, in this thread or another, keeps the version it started on.
    """

    def __init__(self, directory: Path, embedder=None, embed_model: str | None = None, auto_refresh: bool = True):
        self.directory = Path(directory)
        self.auto_refresh = auto_refresh
        self._embedder = embedder
        self._requested = embed_model or (embedder.name if embedder is not None else None)
        self._switch = threading.Lock()
        self._stamp = current_stamp(self.directory)
        self._current = self._checked(open_version(self.directory))

    @classmethod
    def open(cls, directory: Path, version_dir: Path | None, manifest: dict, embedder=None,
             embed_model: str | None = None, auto_refresh: bool = True) -> FaissIndex:
        """The store's opener (registry.py); `Index.open` is the way in for users."""
        return cls(directory, embedder=embedder, embed_model=embed_model, auto_refresh=auto_refresh)

    def _checked(self, v: Version) -> Version:
        try:
            check_embedder(v.manifest, self._requested, self.directory)
            if self._embedder is None:
                embedder_source(v.manifest, self.directory)  # refuse a bad model before any query
        except BaseException:
            v.release()
            raise
        return v

    # -- versions ------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """Name of the version this Index reads (changes when a re-ingest is picked up)."""
        return self._current.path.name

    @property
    def version_dir(self) -> Path:
        return self._current.path

    @property
    def manifest(self) -> dict:
        return self._current.manifest

    def refresh(self) -> bool:
        """Move to the live version if ingest swapped in a new one; True when it did."""
        stamp = current_stamp(self.directory)
        if stamp == self._stamp:
            return False
        with self._switch:
            if stamp == self._stamp:
                return False
            new = open_version(self.directory)
            if new.path == self._current.path:
                new.release()
                self._stamp = stamp
                return False
            new = self._checked(new)
            if new.manifest["embedding"]["model"] != self._current.manifest["embedding"]["model"] \
                    and self._requested is None:
                self._embedder = None
            old, self._current, self._stamp = self._current, new, stamp
            old.retired = True
            if old.users == 0:
                old.release()
            return True

    def _acquire(self) -> Version:
        if self.auto_refresh:
            self.refresh()
        with self._switch:
            v = self._current
            v.users += 1
            return v

    def _done(self, v: Version) -> None:
        with self._switch:
            v.users -= 1
            if v.retired and v.users == 0:
                v.release()

    # -- lazily loaded parts (of the current version) -----------------------------------------
    @property
    def embedder(self):
        if self._embedder is None:
            emb = self.manifest["embedding"]  # the backend the chunks were embedded with (older indexes: torch)
            self._embedder = embed.load_embedder(embedder_source(self.manifest, self.directory),
                                           backend=emb.get("backend") or "torch")
        return self._embedder

    @property
    def fusion(self) -> FusionWeights:
        fw = self.manifest.get("fusion") or {}
        return FusionWeights(**fw) if fw else FusionWeights()

    @property
    def bm25(self) -> BM25Index:
        return self._current.bm25

    @property
    def vectors(self) -> np.ndarray:
        return self._current.vectors

    @property
    def faiss_index(self):
        return self._current.faiss_index

    def __len__(self) -> int:
        return int(self.manifest["n_chunks"])

    # -- reading chunks ------------------------------------------------------------------------
    _COLS = "chunk_id, source, text, start, end, page, title, metadata"

    @staticmethod
    def _chunk(row) -> Chunk:
        cid, source, text, start, end, page, title, meta = row
        return Chunk(cid, source, text, start, end, page, title, json.loads(meta) if meta else {})

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk in row order, streamed from the version current when iteration starts."""
        v = self._acquire()
        try:
            dead = v.dead
            for db, offset in [(v.db, 0)] + ([(v.delta.db, v.n_base)] if v.delta is not None else []):
                cur = db.execute(f"SELECT row, {self._COLS} FROM chunks ORDER BY row")
                while True:
                    try:
                        rows = cur.fetchmany(512)
                        if not rows:
                            break
                        batch = [self._chunk(r[1:]) for r in rows if dead is None or not dead[r[0] + offset]]
                    except (sqlite3.DatabaseError, ValueError, TypeError) as e:
                        raise damaged(self.directory, f"chunks.sqlite is unreadable ({e})") from None
                    yield from batch
        finally:
            self._done(v)

    def _query(self, db, sql: str, args=()) -> list:
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise damaged(self.directory, f"chunks.sqlite is unreadable ({e})") from None

    def _rows(self, v: Version, rows: list[int]) -> dict[int, Chunk]:
        """Chunks by global row (a delta version's rows from n_base on live in delta/chunks.sqlite)."""
        out = {}
        parts = [(v.db, 0, [r for r in rows if r < v.n_base])]
        if v.delta is not None:
            parts.append((v.delta.db, v.n_base, [r - v.n_base for r in rows if r >= v.n_base]))
        for db, offset, part in parts:
            if not part:
                continue
            marks = ",".join("?" * len(part))
            cur = self._query(db, f"SELECT row, {self._COLS} FROM chunks WHERE row IN ({marks})", [int(r) for r in part])
            try:
                out.update({r[0] + offset: self._chunk(r[1:]) for r in cur})
            except (ValueError, TypeError) as e:
                raise damaged(self.directory, f"chunks.sqlite holds a malformed row ({e})") from None
        return out

    # -- search --------------------------------------------------------------------------------
    def _dense_query(self, query: str) -> np.ndarray:
        q = embed.embed_queries(self.embedder, [query])[0]
        if q.shape != (self.manifest["embedding"]["dim"],):
            raise IndexIncompatible(f"index {self.directory} holds vectors of {self.manifest['embedding']['dim']} "
                                    f"dimensions, its embedding model gives {q.shape[-1]}; re-ingest it")
        return q

    def _dense_top(self, v: Version, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        if v.delta is not None:
            return merged_dense_top(v.faiss_index, v.delta_faiss if v.delta.n else None, v.delta, q, n)
        index = v.faiss_index
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = max(64, n)
        if hasattr(index, "nprobe"):
            index.nprobe = max(index.nprobe, 16)
        with one_faiss_thread():
            scores, ids = index.search(q[None, :].astype(np.float32), min(n, v.manifest["n_chunks"]))
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def search(self, query: str, k: int = RETRIEVAL.k, mode: str = RETRIEVAL.mode) -> list[Hit]:
        """The k best chunks for a query. Hybrid scores lie in [0, 1] and are comparable across queries.

        BM25 mode returns only chunks that share a word with the query (no 0-score padding).
        """
        check_search(query, k, mode)
        v = self._acquire()
        try:
            return self._search(v, query, k, mode)
        finally:
            self._done(v)

    def _search(self, v: Version, query: str, k: int, mode: str) -> list[Hit]:
        if v.manifest["n_chunks"] == 0:
            return []
        if mode == "bm25":
            scores = v.bm25.normalized_scores(query)
            rows = top_k(scores, k)
            ranked = [(int(r), float(scores[r])) for r in rows if scores[r] > 0]
        elif mode == "dense":
            ids, scores = self._dense_top(v, self._dense_query(query), k)
            ranked = list(zip(ids.tolist(), scores.tolist()))
        else:
            ranked = self._hybrid(v, query, k)
        chunks = self._rows(v, [r for r, _ in ranked])
        return [
            Hit(rank=i + 1, chunk_id=c.chunk_id, source=c.source, score=round(s, 6), text=c.text,
                page=c.page, start=c.start, end=c.end, title=c.title)
            for i, (r, s) in enumerate(ranked)
            if (c := chunks.get(r)) is not None
        ]

    def _hybrid(self, v: Version, query: str, k: int) -> list[tuple[int, float]]:
        # Fuse only each retriever's top n, not every chunk: a fused top-k chunk ranks high in at least
        # one of them. Measured on the sample corpus (317 chunks, 177 bench questions, k = 1, 5, 10):
        # the top k equals fusing every chunk on all 177 questions.
        n = max(50, 4 * k)
        sparse_all = v.bm25.normalized_scores(query)
        q = self._dense_query(query)
        dense_ids, _ = self._dense_top(v, q, n)
        cand = np.union1d(dense_ids, sparse_candidates(sparse_all, n)).astype(np.int64)  # sorted: cheap mmap reads
        if v.dead is not None:
            cand = cand[~v.dead[cand]]  # a tombstoned row can be BM25's zero-score padding
        dense = np.asarray(v.vectors[cand] @ q, dtype=np.float32)
        fw = v.manifest.get("fusion") or {}
        weights = FusionWeights(**fw) if fw else FusionWeights()
        weight = weights.for_language(detect_language(query), v.manifest["embedding"].get("languages"))
        fused = fuse(dense, sparse_all[cand], weight)
        best = top_k(fused, k)
        return [(int(cand[i]), float(fused[i])) for i in best]

    def close(self) -> None:
        with self._switch:
            self._current.retired = True
            if self._current.users == 0:
                self._current.release()

    def describe(self) -> dict:
        return {"index": str(self.directory), "version": self.version, **manifest_summary(self.manifest)}

