"""Fusion of dense (cosine) and BM25 scores into one ranking.

Both scores are on an absolute [0, 1] scale before they meet: cosine clipped at 0, and BM25
divided by the best score the query could reach (see bm25.py). The fused score is their convex
combination, weighted by how much the embedding model can be trusted for the query's language:
all-MiniLM-L6-v2 is an English model whose Chinese vectors are close to noise, so a Chinese query
leans on BM25. Reciprocal-rank fusion was measured and rejected: it gives a noise ranking the same
vote as a good one (docs/findings.md, "Retrieval"; evals/fusion_sweep.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FusionWeights:
    # Weight of the dense score when the embedder covers the query's language, and when it does not.
    # Chosen with evals/fusion_sweep.py: the largest weights that keep recall@5 within a point of
    # the better single retriever on the sample bench (English) and CMRC 2018 (Chinese).
    dense: float = 0.2
    dense_foreign: float = 0.1

    def __post_init__(self) -> None:
        for v in (self.dense, self.dense_foreign):
            if not 0.0 <= v <= 1.0:
                raise ValueError("fusion weights must lie in [0, 1]")

    def for_language(self, lang: str, embedder_languages: list[str] | None) -> float:
        if embedder_languages is None or lang in embedder_languages:
            return self.dense
        return self.dense_foreign


# Per embedder, where the defaults above do not hold: chosen by the same rule with
# evals/embedder_recall.py (evals/results/embedders/recall.json). An index records the weights it
# was built with in its manifest (`fusion`), so changing these never changes an existing index.
# multilingual-e5-small: the rule gives 0.8 for English (sample bench) and 1.0 for Chinese (CMRC),
# where dense alone is within a point; 0.8 is the largest weight below 1 that meets it there, and it
# keeps BM25 in the fusion (CMRC recall@1 0.986 at 0.8, 0.957 dense alone). e5 covers both
# languages; other languages (never detected today) get the same weight, unmeasured.
EMBEDDER_FUSION: dict[str, FusionWeights] = {"multilingual-e5-small": FusionWeights(dense=0.8, dense_foreign=0.8)}


def default_fusion(model: str) -> FusionWeights:
    """The fusion weights a new index embedded with `model` starts with."""
    return EMBEDDER_FUSION.get(model.lower(), FusionWeights())


def fuse(dense: np.ndarray, sparse: np.ndarray, dense_weight: float) -> np.ndarray:
    """Convex combination of clipped cosine and normalised BM25 for the same candidates."""
    d = np.clip(np.asarray(dense, dtype=np.float32), 0.0, 1.0)
    s = np.clip(np.asarray(sparse, dtype=np.float32), 0.0, 1.0)
    return dense_weight * d + (1.0 - dense_weight) * s


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first; ties keep index order so results are stable."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]


TIE_CAP = 8  # a tie at the n-th BM25 score is taken whole up to this many times n candidates


def sparse_candidates(scores: np.ndarray, n: int) -> np.ndarray:
    """The n best BM25 rows, and every row tied with the n-th: the same set whatever order the rows
    are stored in, so a delta version (segments.py) fuses the same candidates as a full rebuild.
    Measured at 100k chunks (evals/perf/one_file_change.py): with the plain top n, 2 of 100 queries
    had 5 or 9 chunks tied at the 50th score and a different chunk reached the top 5 of each."""
    best = top_k(scores, n)
    if len(best) < n or scores[best[-1]] <= 0:
        return best
    tied = np.flatnonzero(scores >= scores[best[-1]] * (1 - 1e-6))
    return tied if len(tied) <= TIE_CAP * n else best
