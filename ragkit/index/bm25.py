"""BM25 over chunk texts with bm25s: jieba words for Chinese runs, lower-cased words for Latin runs.

Scores are also given normalised to [0, 1] by the best score any chunk could reach for the query
(every query word matched with saturated term frequency), so a score means "how much of the query
this chunk matches" and can be compared across queries, fused with cosine similarity, and
thresholded for "not in the documents". Query words absent from the corpus count in that bound: a
question about something the corpus never mentions scores low.

Each document's length in words is saved beside bm25s's arrays (doc_lengths.npy): with it a delta
segment (segments.py) rescores these documents under the statistics of base and delta together.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..lang import tokenize_for_search

DOC_LENGTHS = "doc_lengths.npy"


def bm25_idf(n_docs: int, df: int) -> float:
    """BM25's idf as bm25s computes it (Lucene's variant, never negative): the one formula every
    scorer here uses, so that the FAISS store, its delta segment and the Milvus store agree."""
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


class BM25Index:
    def __init__(self, retriever, doc_lengths: np.ndarray | None = None):
        self._r = retriever
        self.doc_lengths = doc_lengths  # words per document as bm25s counted them; None in older indexes
        indptr = np.asarray(retriever.scores["indptr"])
        self._df = np.diff(indptr)  # chunks containing each vocabulary word
        self.n_docs = int(retriever.scores["num_docs"])

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> BM25Index:
        import bm25s

        retriever = bm25s.BM25(method="lucene")
        # A placeholder word keeps empty chunks (a lone table border, say) from breaking indexing.
        docs = [t or ["\u2400"] for t in token_lists]
        retriever.index(docs, show_progress=False)
        return cls(retriever, np.fromiter(map(len, docs), dtype=np.int32, count=len(docs)))

    @classmethod
    def build_streamed(cls, token_lists) -> BM25Index:
        """The same index from an iterable of token lists, each kept as int32 ids: about half the peak
        memory of lists of strings (evals/perf/ingest_memory.py, docs/scaling.md)."""
        import bm25s
        from bm25s.tokenization import Tokenized

        vocab: dict[str, int] = {}
        ids = []
        for tokens in token_lists:
            ids.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens or ["\u2400"]), dtype=np.int32))
        retriever = bm25s.BM25(method="lucene")
        retriever.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
        return cls(retriever, np.fromiter(map(len, ids), dtype=np.int32, count=len(ids)))

    def save(self, directory: Path) -> None:
        self._r.save(str(directory), show_progress=False)  # .npy and .json files, no pickle
        if self.doc_lengths is not None:
            np.save(Path(directory) / DOC_LENGTHS, self.doc_lengths, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        import bm25s

        lengths = Path(directory) / DOC_LENGTHS
        dl = np.load(lengths, allow_pickle=False) if lengths.is_file() else None
        return cls(bm25s.BM25.load(str(directory), allow_pickle=False), dl)

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(data, indices, indptr): each word's documents and stored scores, column by column."""
        s = self._r.scores
        return s["data"], s["indices"], s["indptr"]

    @property
    def vocab(self) -> dict[str, int]:
        return self._r.vocab_dict

    @property
    def params(self) -> tuple[float, float]:
        return float(self._r.k1), float(self._r.b)

    def _idf(self, df: int) -> float:
        return bm25_idf(self.n_docs, df)

    def scores(self, query: str) -> tuple[np.ndarray, float]:
        """(raw BM25 score of every chunk, the largest score the query could reach)."""
        tokens = tokenize_for_search(query)
        if not tokens:
            return np.zeros(self.n_docs, dtype=np.float32), 0.0
        vocab = self._r.vocab_dict
        bound = sum(self._idf(int(self._df[vocab[t]]) if t in vocab else 0) for t in tokens)
        known = [t for t in tokens if t in vocab]
        if not known:
            return np.zeros(self.n_docs, dtype=np.float32), bound
        return np.asarray(self._r.get_scores(known), dtype=np.float32), bound

    def normalized_scores(self, query: str) -> np.ndarray:
        raw, bound = self.scores(query)
        return raw / bound if bound > 0 else raw
