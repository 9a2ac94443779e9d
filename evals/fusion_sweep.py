"""Sweep the dense weight of hybrid fusion on a bench and print recall@1/5 for each weight.

Embeds every question once, scores every chunk with cosine and with normalised BM25, then ranks
with fuse() at each weight, so the sweep costs one pass of the embedding model. This is how the
default weights in ragkit/index/hybrid.py were chosen (see README, results).

    python evals/fusion_sweep.py --index .ragkit/cmrc-index --bench .ragkit/cmrc/bench.jsonl
"""

from __future__ import annotations

import argparse

import numpy as np

from ragkit.eval.bench import load_bench
from ragkit.index import Index
from ragkit.index.fusion import fuse, top_k

WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--bench", required=True)
    args = ap.parse_args()
    index = Index.open(args.index)
    items = load_bench(args.bench)
    sources = np.array([c.source for c in index.chunks()])
    q = index.embedder.embed([i.question for i in items])
    dense = np.asarray(index.vectors) @ q.T  # chunks × questions
    sparse = np.stack([index.bm25.normalized_scores(i.question) for i in items], axis=1)
    langs = {}
    from ragkit.lang import detect_language

    for i in items:
        langs[detect_language(i.question)] = langs.get(detect_language(i.question), 0) + 1
    print(f"{len(items)} questions ({langs}), {len(sources)} chunks")
    print("dense_weight  recall@1  recall@5  recall@10")
    for w in WEIGHTS:
        r = {1: 0, 5: 0, 10: 0}
        for j, item in enumerate(items):
            ranked = sources[top_k(fuse(dense[:, j], sparse[:, j], w), 10)]
            gold = set(item.sources)
            first = next((n for n, s in enumerate(ranked, 1) if s in gold), None)
            for k in r:
                r[k] += first is not None and first <= k
        n = len(items)
        print(f"{w:>12.2f}  {r[1] / n:8.3f}  {r[5] / n:8.3f}  {r[10] / n:9.3f}")


if __name__ == "__main__":
    main()
