"""Reading a version made of a base segment and a delta segment (written by delta.py).

A one-file change used to rewrite the whole version: 16.5 s at 100k chunks, most of it copying
rows and vectors that did not change and rebuilding FAISS and BM25 over them. A delta version
instead holds the base's files as hard links (the same inodes: nothing copied) and beside them

    delta/chunks.sqlite, embeddings.npy, dense.faiss (flat), bm25/   the new and changed chunks
    delta/tombstones.npy                                           base rows deleted or replaced

Rows are numbered globally: base row r is r, delta row r is n_base + r. Searching merges:

- dense: the base's FAISS index searched with the tombstones excluded (an IDSelector, so HNSW and
  IVF still return n live rows), the delta's flat index searched too, the best n of both kept.
- BM25: scores from two separately built bm25s indexes are not on one scale (each has its own
  document count, document frequencies and mean length), and `ask`'s refusal threshold rests on
  the absolute score. So neither segment's stored score is used as it is: each stored score is
  idf_seg * tf / (tf + K_seg(dl)), from which the term frequency tf is recovered exactly (it is an
  integer; doc_lengths.npy gives dl), and rescored with the statistics of the live corpus (base
  minus tombstones plus delta: N, each word's df, the mean length). A chunk then scores what a full
  rebuild of the same corpus gives it, to float32 rounding: on the 25-chunk corpus of
  tests/unit/test_index_delta.py (which checks 1e-4) the largest difference of a normalised score
  is 6e-8 over its ten queries. Scoring each segment with its own statistics instead is 0.039 off
  there, enough to move a chunk across the refusal threshold (0.15-0.20).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...lang import tokenize_for_search
from ..bm25 import BM25Index, bm25_idf

DELTA = "delta"
TOMBSTONES = "tombstones.npy"


class Segment:
    """One bm25s index with what rescoring it needs: its doc lengths, the K it was built with, dead rows."""

    def __init__(self, bm25: BM25Index, offset: int, dead: np.ndarray | None):
        self.bm25, self.offset = bm25, offset
        self.data, self.indices, self.indptr = bm25.arrays
        self.dl = np.asarray(bm25.doc_lengths, dtype=np.float64)
        self.n = len(self.dl)
        k1, b = bm25.params
        self.k_built = k1 * (1 - b + b * self.dl / self.dl.mean())
        self.dead = dead  # bool per row of this segment, or None

    def live_length(self) -> float:
        return float(self.dl.sum() - (self.dl[self.dead].sum() if self.dead is not None else 0.0))

    def postings(self, word: str) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(rows, stored scores, idf it was built with) of a word's live postings."""
        col = self.bm25.vocab.get(word)
        if col is None:
            return None
        lo, hi = int(self.indptr[col]), int(self.indptr[col + 1])
        rows, stored = self.indices[lo:hi], self.data[lo:hi]
        df = hi - lo
        idf = float(np.float32(bm25_idf(self.n, df)))  # as bm25s stored it
        if self.dead is not None:
            keep = ~self.dead[rows]
            rows, stored = rows[keep], stored[keep]
        return rows, stored, idf


class MergedBM25:
    """BM25 over base (minus tombstones) and delta, scored as one index over the live chunks."""

    def __init__(self, base: BM25Index, delta: BM25Index | None, dead: np.ndarray):
        dead = dead[: base.n_docs]  # tombstones are base rows
        self.segments = [Segment(base, 0, dead)] + ([Segment(delta, base.n_docs, None)] if delta else [])
        self.n_docs = base.n_docs + (delta.n_docs if delta else 0)  # the global row space
        self.live = base.n_docs - int(dead.sum()) + (delta.n_docs if delta else 0)
        k1, b = base.params
        avg = sum(s.live_length() for s in self.segments) / max(1, self.live)
        for s in self.segments:
            s.k_live = k1 * (1 - b + b * s.dl / avg)

    def _idf(self, df: int) -> float:
        return bm25_idf(self.live, df)

    def scores(self, query: str) -> tuple[np.ndarray, float]:
        """(raw BM25 score of every global row, the largest score the query could reach): bm25.py's meaning."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        bound = 0.0
        for word in tokenize_for_search(query):  # repeated words count again, as bm25s counts them
            hits = [(s, p) for s in self.segments if (p := s.postings(word)) is not None]
            idf = self._idf(sum(len(p[0]) for _, p in hits))
            bound += idf
            for s, (rows, stored, idf_built) in hits:
                tfc = stored.astype(np.float64) / idf_built
                tf = np.rint(s.k_built[rows] * tfc / (1.0 - tfc))
                out[s.offset + rows] += (idf * tf / (tf + s.k_live[rows])).astype(np.float32)
        return out, bound

    def normalized_scores(self, query: str) -> np.ndarray:
        raw, bound = self.scores(query)
        return raw / bound if bound > 0 else raw


class MergedVectors:
    """Vectors by global row: base rows from the base's embeddings.npy, the rest from the delta's."""

    def __init__(self, base: np.ndarray, delta: np.ndarray):
        self.base, self.delta = base, delta
        self.n_base = len(base)
        self.shape = (len(base) + len(delta), base.shape[1])
        self.dtype = base.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        low = rows < self.n_base
        out[low] = self.base[rows[low]]
        out[~low] = self.delta[rows[~low] - self.n_base]
        return out

    def __array__(self, dtype=None, copy=None):
        whole = np.concatenate([np.asarray(self.base), np.asarray(self.delta)])
        return whole if dtype is None else whole.astype(dtype)


class DeltaSegment:
    """A version's delta/: its rows (SQLite), vectors, tombstones; FAISS and BM25 loaded by the Version."""

    def __init__(self, version: Path, manifest: dict, check):
        info = manifest[DELTA]
        self.path = version / DELTA
        self.n_base, self.n = info["base_chunks"], info["chunks"]
        dim = manifest["embedding"]["dim"]
        self.db = sqlite3.connect(f"file:{self.path / 'chunks.sqlite'}?mode=ro", uri=True, check_same_thread=False)
        try:
            tomb, vecs = self._open(info, dim, check)
        except (OSError, ValueError) as e:  # a file missing, or not an array
            self.db.close()
            check(False, f"its delta segment is unreadable ({type(e).__name__})")
        except BaseException:
            self.db.close()
            raise
        self.tombstones, self.delta_vectors = tomb, vecs
        self.dead = np.zeros(self.n_base + self.n, dtype=bool)  # by global row
        self.dead[tomb] = True
        self.selector = None

    def _open(self, info: dict, dim: int, check):
        n = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        check(n == self.n, f"delta/chunks.sqlite holds {n} chunks, the manifest {self.n}")
        tomb = np.load(self.path / TOMBSTONES, allow_pickle=False)
        check(tomb.dtype == np.int64 and tomb.ndim == 1 and len(tomb) == info["tombstones"]
              and (len(tomb) == 0 or (tomb[0] >= 0 and tomb[-1] < self.n_base and bool(np.all(np.diff(tomb) > 0)))),
              "delta/tombstones.npy does not match the manifest")
        vecs = np.load(self.path / "embeddings.npy", mmap_mode="r", allow_pickle=False)
        check(vecs.shape == (self.n, dim) and vecs.dtype == np.float32,
              f"delta/embeddings.npy has shape {vecs.shape}, not {(self.n, dim)}")
        return tomb, vecs

    def close(self) -> None:
        self.db.close()

    def sources(self) -> set[str]:
        return {s for (s,) in self.db.execute("SELECT DISTINCT source FROM chunks")}

    def exclude(self):
        """A FAISS selector that skips the tombstoned base rows (made once, kept with its ids)."""
        import faiss

        if self.selector is None:
            batch = faiss.IDSelectorBatch(len(self.tombstones), faiss.swig_ptr(self.tombstones))
            self.selector = (faiss.IDSelectorNot(batch), batch)
        return self.selector[0]


@contextmanager
def one_faiss_thread() -> Iterator[None]:
    """FAISS's OpenMP threads cut to one for a single-query search, then put back.

    A single query has little work to split: with FAISS's default (a thread a core) a flat search
    was slower than on one thread, twice as slow while another process held one of the cores
    (OpenMP waits for its descheduled thread); HNSW and IVF were the same either way
    (evals/perf/query_threads.py prints the ratio; docs/scaling.md). The setting belongs to the
    calling thread (OpenMP's nthreads ICV), so serve's threads and an ingest in the same process
    keep their own.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def search_params(index, n: int, selector):
    """FAISS search parameters of the index's kind (HNSW and IVF refuse the plain kind) with a selector."""
    import faiss

    if hasattr(index, "hnsw"):
        return faiss.SearchParametersHNSW(efSearch=max(64, n), sel=selector)
    if hasattr(index, "nprobe"):
        return faiss.SearchParametersIVF(nprobe=max(index.nprobe, 16), sel=selector)
    return faiss.SearchParameters(sel=selector)


def merged_dense_top(base_index, delta_index, seg: DeltaSegment, q: np.ndarray, n: int):
    """(global rows, scores) of the n best live rows of base and delta, best first."""
    q = q[None, :].astype(np.float32)
    live_base = seg.n_base - len(seg.tombstones)
    ids, scores = [], []
    if live_base > 0:
        params = search_params(base_index, n, seg.exclude() if len(seg.tombstones) else None)
        with one_faiss_thread():
            s, i = base_index.search(q, min(n, live_base), params=params)
        keep = i[0] >= 0
        ids.append(i[0][keep])
        scores.append(s[0][keep])
    if seg.n > 0:
        with one_faiss_thread():
            s, i = delta_index.search(q, min(n, seg.n))
        keep = i[0] >= 0
        ids.append(i[0][keep] + seg.n_base)
        scores.append(s[0][keep])
    ids, scores = np.concatenate(ids), np.concatenate(scores)
    order = np.lexsort((ids, -scores))[:n]
    return ids[order], scores[order]
