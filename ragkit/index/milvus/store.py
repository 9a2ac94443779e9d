"""The Milvus store: the same search interface as the FAISS store (faiss/store.py), on milvus-lite or a server.

One collection per index holds every chunk row: text, BM25 words (Milvus computes BM25 over them),
metadata, the dense vector, and `ver`, the ingest that wrote the row. The words are ragkit's own
by default (recall equal to the FAISS store's; Milvus's jieba analyzer lost recall on the sample
bench and let far more Chinese off-domain questions past the refusal threshold: evals/milvus_fusion.py,
docs/scaling.md). The index directory keeps the FAISS store's CURRENT → v-*/manifest.json layout; the
manifest names the URI, the collection and the live ingest version. A reader sees only rows
with ver <= live version, minus the rows of sources that the live ingest replaced (until the
ingest deletes them), so a crashed ingest's rows are never visible (see build.py).

Hybrid search is ragkit's own convex fusion (fusion.fuse), not a Milvus ranker: Milvus gives the
dense and BM25 candidates, ragkit puts BM25 on the same absolute [0, 1] scale as the FAISS store
(raw score over the best score the query could reach, from per-word document frequencies that
ingest keeps beside the manifest, df.py), so `ask`'s refusal threshold keeps its meaning
(recalibrated: the same 0.20 / 0.15). RRF and WeightedRanker were measured against it
(evals/milvus_fusion.py, docs/scaling.md): WeightedRanker min-max normalises each query's scores, and RRF
scores are ranks, so neither can be thresholded for "not in the documents".

milvus-lite lets one process open a .db at a time: opening one that an ingest or another reader
holds fails at once with IndexLocked, never waits.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ... import embed
from ...errors import IndexLocked, RagkitError
from ...extras import require
from ...lang import EN_STOPWORDS, ZH_STOPWORDS, detect_language, tokenize_for_search
from ...settings import RETRIEVAL
from ...types import Chunk, Hit
from ..bm25 import bm25_idf
from ..fusion import FusionWeights, fuse, top_k
from ..manifest import bad_manifest, embedder_source, read_current, read_manifest
from ..protocol import check_search, manifest_summary
from ..versions import current_stamp
from .df import DocFreq

DEFAULT_DB = "milvus.db"  # milvus-lite database inside the index directory
BM25_K1 = 1.5  # set explicitly (lite defaults to 1.5, the server docs use 1.2): bm25s' k1, so scores match the FAISS store
BM25_B = 0.75
DENSE_INDEX = {"flat": ("FLAT", {}), "hnsw": ("HNSW", {"M": 32, "efConstruction": 80}), "ivf": ("IVF_FLAT", {"nlist": 1024})}
# BM25 analyzers. jieba: Milvus tokenises the chunk text itself (jieba, ragkit's stop words; any
# client can write rows). ragkit: the client writes ragkit's own BM25 words (lang.tokenize_for_search,
# as the FAISS store indexes them) into a `words` field, each word as a 64-bit hex code, because
# milvus-lite has only the standard and jieba tokenizers and the standard one keeps `w` + hex whole.
ANALYZERS = {
    "jieba": {"tokenizer": "jieba", "filter": [{"type": "stop", "stop_words": sorted(EN_STOPWORDS | ZH_STOPWORDS)}]},
    "ragkit": {"tokenizer": "standard"},
}


def word_code(word: str) -> str:
    return "w" + hashlib.blake2b(word.encode("utf-8"), digest_size=8).hexdigest()


def bm25_words(text: str, words: list[str] | None = None) -> str:
    """The `words` field for the ragkit analyzer: ragkit's BM25 words (of the text, unless given), coded."""
    return " ".join(word_code(w) for w in (tokenize_for_search(text) if words is None else words))
FIELDS = ["chunk_id", "source", "text", "start", "end", "page", "title", "metadata"]


class MilvusError(RagkitError):
    """Milvus refused or failed an operation (server down, bad URI, schema mismatch)."""


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def resolve_uri(directory: Path, uri: str | None) -> str:
    """A server URI as given; a lite path relative to the index directory (so the index can move)."""
    uri = uri or DEFAULT_DB
    if is_server(uri):
        return uri
    path = Path(uri)
    return str(path if path.is_absolute() else Path(directory) / path)


def collection_name(directory: Path) -> str:
    """One collection per index: letters, digits, underscores, from the directory name and path hash."""
    resolved = str(Path(directory).resolve())
    slug = re.sub(r"[^A-Za-z0-9_]", "_", Path(resolved).name)[:40] or "index"
    return f"ragkit_{slug}_{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


LITE_ONE_PROCESS = ("milvus-lite lets one process use its database at a time: run again when it finishes, "
                    "or keep the index on a Milvus server (ragkit ingest --store milvus --milvus-uri http://HOST:19530)")


def lock_held(path: Path) -> bool:
    """Whether another open file holds an flock on path (milvus-lite's LOCK, ragkit's .lock)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def check_no_ingest(directory: Path) -> None:
    """Readers of a milvus-lite index fail at once while an ingest holds it (lite: one process per .db)."""
    lock = Path(directory) / ".lock"
    if lock.is_file() and lock_held(lock):
        raise IndexLocked(
            f"index {directory} is being updated by ragkit ingest (pid {lock.read_text().strip() or '?'}); "
            f"{LITE_ONE_PROCESS}"
        )


_LITE_USERS: dict[str, int] = {}  # open clients per lite database in this process


def connect(uri: str, token: str | None = None, directory: Path | None = None):
    """A MilvusClient for a lite path or a server URI: the same code path, the URI is the only difference."""
    require("milvus", "the Milvus store")
    from pymilvus import MilvusClient

    for name in ("pymilvus", "milvus_lite"):  # both log every failure with a traceback; ragkit reports it once
        logging.getLogger(name).setLevel(logging.CRITICAL)
    token = token if token is not None else os.environ.get("RAGKIT_MILVUS_TOKEN", "")
    try:
        client = MilvusClient(uri=uri, token=token)
        if not is_server(uri):
            _LITE_USERS[uri] = _LITE_USERS.get(uri, 0) + 1
        return client
    except Exception as e:  # pymilvus raises its own exception types; report them as one sentence
        if not is_server(uri) and (Path(uri) / "LOCK").is_file() and lock_held(Path(uri) / "LOCK"):
            raise IndexLocked(f"index {directory or uri} is open in another process (a search, ask, serve or "
                              f"ingest); {LITE_ONE_PROCESS}") from None
        raise MilvusError(f"cannot open Milvus at {uri}: {getattr(e, 'message', None) or e}") from None


def disconnect(client, uri: str) -> None:
    """Close a client; the last one on a lite database stops its embedded server, freeing the .db for
    other processes (milvus-lite otherwise holds it until this process exits)."""
    client.close()
    if is_server(uri) or uri not in _LITE_USERS:
        return
    _LITE_USERS[uri] -= 1
    if _LITE_USERS[uri] <= 0:
        del _LITE_USERS[uri]
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def live_filter(milvus: dict) -> str:
    """Rows a reader of this manifest may see: its ingest and earlier ones, minus sources it replaced."""
    ver = int(milvus["version"])
    expr = f"ver <= {ver}"
    replaced = milvus.get("replaced", [])
    if replaced:
        expr += f" and not (ver < {ver} and source in {json.dumps(replaced, ensure_ascii=False)})"
    return expr


def bm25_score(distance: float) -> float:
    # milvus-lite returns BM25 hits with a negative distance (-4.1 for a good match); the server a
    # positive score. A BM25 score is never negative, so its magnitude is the score on both.
    return abs(float(distance))


def check_manifest(m: dict, d: Path) -> None:
    """A Milvus index's `milvus` object: where its rows live (build.py writes it)."""
    mv = m.get("milvus")
    ok = (isinstance(mv, dict) and isinstance(mv.get("uri"), str) and isinstance(mv.get("collection"), str)
          and isinstance(mv.get("version"), int) and not isinstance(mv.get("version"), bool)
          and isinstance(mv.get("replaced", []), list) and all(isinstance(s, str) for s in mv.get("replaced", []))
          and isinstance(mv.get("bm25"), dict) and mv["bm25"].get("analyzer") in ANALYZERS)
    if not ok:
        raise bad_manifest(d, "has no valid 'milvus' object (uri, collection, version, replaced, bm25)")
    if "delta" in m:
        raise bad_manifest(d, "has a delta segment on a store other than faiss")


class MilvusIndex:
    """A read-only view of the live version of a Milvus-backed index directory."""

    @classmethod
    def open(cls, directory: Path, version_dir: Path | None, manifest: dict, embedder=None,
             embed_model: str | None = None, auto_refresh: bool = True) -> MilvusIndex:
        """The store's opener (registry.py); `Index.open` is the way in for users."""
        return cls(directory, version_dir, manifest, embedder, auto_refresh)

    def __init__(self, directory: Path, version_dir: Path, manifest: dict, embedder=None, auto_refresh: bool = True):
        self.directory = Path(directory)
        self.auto_refresh = auto_refresh
        self._stamp = current_stamp(self.directory)
        self.version_dir = version_dir
        self.manifest = manifest
        self._embedder = embedder
        m = manifest["milvus"]
        self.uri = resolve_uri(self.directory, m["uri"])
        self.collection = m["collection"]
        self.filter = live_filter(m)
        fw = manifest.get("fusion", {})
        self.fusion = FusionWeights(**fw) if fw else FusionWeights()
        if not is_server(self.uri):
            check_no_ingest(self.directory)
        self.client = connect(self.uri, directory=self.directory)
        if not self.client.has_collection(self.collection):
            raise MilvusError(f"Milvus at {self.uri} has no collection {self.collection}; re-ingest the index")
        self.client.load_collection(self.collection)
        self.analyzer = m["bm25"]["analyzer"]
        self.df = DocFreq.load(version_dir)

    embedder = property(lambda self: self._load_embedder())

    @property
    def version(self) -> str:
        return self.version_dir.name

    def refresh(self) -> bool:
        """Move to the live version if an ingest swapped in a new one (its rows are already in the
        collection: only the manifest's filter and the BM25 counts change); True when it did."""
        stamp = current_stamp(self.directory)
        if stamp == self._stamp:
            return False
        version = read_current(self.directory)
        manifest = read_manifest(version) if version is not None else None
        if manifest is None or manifest.get("milvus", {}).get("collection") != self.collection:
            return False
        self.df, self.filter = DocFreq.load(version), live_filter(manifest["milvus"])
        self.version_dir, self.manifest, self._stamp = version, manifest, stamp
        return True

    def _load_embedder(self):
        if self._embedder is None:
            emb = self.manifest["embedding"]
            self._embedder = embed.load_embedder(embedder_source(self.manifest, self.directory),
                                           backend=emb.get("backend") or "torch")
        return self._embedder

    def __len__(self) -> int:
        return int(self.manifest["n_chunks"])

    # -- reading chunks ------------------------------------------------------------------------
    @staticmethod
    def _chunk(e: dict) -> Chunk:
        page = int(e["page"])
        meta = json.loads(e["metadata"]) if e.get("metadata") else {}
        return Chunk(e["chunk_id"], e["source"], e["text"], int(e["start"]), int(e["end"]),
                     page if page >= 0 else None, e["title"] or None, meta)

    def chunks(self) -> Iterator[Chunk]:
        """Every live chunk, by source then offset (the FAISS store's order within a source)."""
        it = self.client.query_iterator(self.collection, batch_size=1000, filter=self.filter, output_fields=FIELDS)
        rows = []
        while batch := it.next():
            rows.extend(batch)
        it.close()
        for e in sorted(rows, key=lambda e: (e["source"], int(e["start"]), e["chunk_id"])):
            yield self._chunk(e)

    def _fetch(self, pks: list[int]) -> dict[int, Chunk]:
        if not pks:
            return {}
        rows = self.client.get(self.collection, ids=[int(p) for p in pks], output_fields=FIELDS)
        return {int(r["pk"]): self._chunk(r) for r in rows}

    # -- BM25 on an absolute scale -------------------------------------------------------------
    def bm25_bound(self, query: str) -> float:
        """The largest BM25 score the query could reach: every word matched with saturated frequency.

        Milvus's BM25 is idf(w) * (k1 + 1) * tf / (tf + k1 * (1 - b + b * dl / avgdl)) summed over
        query words; tf → ∞ leaves idf(w) * (k1 + 1). Words come from ragkit's tokenizer (jieba
        search mode, ragkit's stop words), document frequencies from the counts ingest keeps
        (df.py) over the live chunks; a word the corpus lacks counts with df = 0.
        """
        n = len(self)
        idf = [bm25_idf(n, df) for df in self.df.lookup(tokenize_for_search(query))]
        return (BM25_K1 + 1) * sum(idf)

    # -- search --------------------------------------------------------------------------------
    def _search(self, data, field: str, n: int, extra: str | None = None, fields: list[str] | None = None):
        """{pk: score} of the n best rows by one field (with the requested output fields, if any)."""
        expr = self.filter if extra is None else f"({self.filter}) and {extra}"
        ann = {"ef": max(64, n), "nprobe": 16}  # HNSW / IVF_FLAT, as the FAISS store searches them
        params = {"metric_type": "BM25"} if field == "sparse" else {"metric_type": "IP", "params": ann}
        res = self.client.search(self.collection, data=[data], anns_field=field, limit=n, filter=expr,
                                 search_params=params, output_fields=fields or [])
        conv = bm25_score if field == "sparse" else float
        hits = {int(h["pk"] if "pk" in h else h["id"]): (conv(h["distance"]), h.get("entity", {})) for h in res[0]}
        return hits if fields else {p: s for p, (s, _) in hits.items()}

    def _bm25(self, query: str, n: int, extra: str | None = None, fields: list[str] | None = None) -> dict:
        bound = self.bm25_bound(query)
        if bound <= 0:
            return {}
        data = bm25_words(query) if self.analyzer == "ragkit" else query
        raw = self._search(data, "sparse", n, extra, fields)
        if fields:
            return {p: (min(1.0, s / bound), e) for p, (s, e) in raw.items()}
        return {p: min(1.0, s / bound) for p, s in raw.items()}

    def search(self, query: str, k: int = RETRIEVAL.k, mode: str = RETRIEVAL.mode) -> list[Hit]:
        """The k best chunks for a query. Hybrid scores lie in [0, 1] and are comparable across queries."""
        check_search(query, k, mode)
        if self.auto_refresh:
            self.refresh()
        if len(self) == 0:
            return []
        k = min(k, len(self))
        if mode == "bm25":
            ranked = sorted(self._bm25(query, k).items(), key=lambda x: (-x[1], x[0]))[:k]
        elif mode == "dense":
            q = embed.embed_queries(self.embedder, [query])[0]
            ranked = sorted(self._search(q.tolist(), "dense", k).items(), key=lambda x: (-x[1], x[0]))[:k]
        else:
            ranked = self._hybrid(query, k)
        chunks = self._fetch([p for p, _ in ranked])
        return [
            Hit(rank=i + 1, chunk_id=c.chunk_id, source=c.source, score=round(s, 6), text=c.text,
                page=c.page, start=c.start, end=c.end, title=c.title)
            for i, (p, s) in enumerate(ranked)
            if (c := chunks.get(p)) is not None
        ]

    def _hybrid(self, query: str, k: int) -> list[tuple[int, float]]:
        """Convex fusion over the union of the dense and BM25 top n, each candidate scored by both.

        The BM25 search brings its candidates' vectors, so their cosine is computed here. A dense
        candidate outside the BM25 top n scores at most the n-th BM25 score there; only those whose
        fused score could still reach the top k are looked up (one filtered BM25 search), so the
        top k is the same as scoring every candidate exactly.
        """
        n = min(max(50, 4 * k), len(self))
        qv = embed.embed_queries(self.embedder, [query])[0]
        weight = self.fusion.for_language(detect_language(query), self.manifest["embedding"].get("languages"))
        dense = self._search(qv.tolist(), "dense", n)
        found = self._bm25(query, n, fields=["dense"])
        sparse = {p: s for p, (s, _) in found.items()}
        for p, (_, e) in found.items():
            if p not in dense:
                dense[p] = float(np.dot(np.asarray(e["dense"], dtype=np.float32), qv))
        nth = min(sparse.values()) if len(sparse) >= n else 0.0  # fewer than n BM25 hits: the rest score 0
        known = sorted((fuse(np.array([dense[p]]), np.array([s]), weight)[0] for p, s in sparse.items()), reverse=True)
        floor = known[k - 1] if len(known) >= k else -1.0
        unsure = [p for p, d in dense.items() if p not in sparse
                  and fuse(np.array([d]), np.array([nth]), weight)[0] >= floor]
        if unsure and nth > 0:
            sparse.update(self._bm25(query, len(unsure), f"pk in {unsure}"))
        cand = np.array(sorted(dense), dtype=np.int64)
        d = np.array([dense[int(p)] for p in cand], dtype=np.float32)
        s = np.array([sparse.get(int(p), 0.0) for p in cand], dtype=np.float32)
        fused = fuse(d, s, weight)
        return [(int(cand[i]), float(fused[i])) for i in top_k(fused, k)]

    def close(self) -> None:
        if self.client is not None:
            disconnect(self.client, self.uri)
            self.client = None

    def describe(self) -> dict:
        m = self.manifest
        return {
            "index": str(self.directory),
            "store": "milvus",
            "milvus": {"uri": m["milvus"]["uri"], "collection": self.collection, "version": m["milvus"]["version"]},
            **manifest_summary(m),
        }
