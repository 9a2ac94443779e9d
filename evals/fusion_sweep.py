"""Sweep the dense weight of hybrid fusion on a bench and print recall@1/5/10 and MRR for each weight.

Embeds every question once (as a query: e5's "query: " prefix where the embedder has one), scores
every chunk with cosine and with normalised BM25, then ranks with fuse() at each weight, so the
sweep costs one pass of the embedding model. This is how the default weights in
ragkit/index/hybrid.py were chosen (see README, results), and how multilingual-e5-small's were
(evals/embedder_recall.py, evals/results/embedders/).

The rule: per language, the largest weight whose recall@5 stays within a point of the better
single retriever (weight 0 = BM25 only, 1 = dense only) — `choose_weight`.

    python evals/fusion_sweep.py --index .ragkit/cmrc-index --bench .ragkit/cmrc/bench.jsonl
"""

from __future__ import annotations

import argparse

import numpy as np

WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
DEPTH = 10  # ranks looked at: recall@10 and MRR@10


def score_matrices(index, questions: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chunk sources, cosine chunks × questions, normalised BM25 chunks × questions)."""
    from ragkit.embed import embed_queries

    sources = np.array([c.source for c in index.chunks()])
    q = embed_queries(index.embedder, questions)
    dense = np.asarray(index.vectors) @ q.T
    sparse = np.stack([index.bm25.normalized_scores(x) for x in questions], axis=1)
    return sources, dense, sparse


def first_gold_ranks(sources, dense, sparse, golds: list[set[str]], weight: float, rows=None) -> list[int | None]:
    """Per question, the rank (1-based, within DEPTH) of the first chunk from a gold source.

    `rows`: only these chunk rows compete (e.g. one language's half of a corpus)."""
    from ragkit.index.fusion import fuse, top_k

    rows = np.arange(len(sources)) if rows is None else np.asarray(rows)
    out = []
    for j, gold in enumerate(golds):
        ranked = sources[rows[top_k(fuse(dense[rows, j], sparse[rows, j], weight), DEPTH)]]
        out.append(next((n for n, s in enumerate(ranked, 1) if s in gold), None))
    return out


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    out = {f"recall@{k}": round(sum(r is not None and r <= k for r in ranks) / n, 4) for k in (1, 5, 10)}
    out["mrr"] = round(sum(1.0 / r for r in ranks if r is not None) / n, 4)
    return out


def sweep(sources, dense, sparse, golds, rows=None) -> dict[float, dict[str, float]]:
    return {w: metrics(first_gold_ranks(sources, dense, sparse, golds, w, rows)) for w in WEIGHTS}


def choose_weight(table: dict[float, dict[str, float]]) -> float:
    """The largest weight whose recall@5 is within a point of the better single retriever."""
    best_single = max(table[0.0]["recall@5"], table[1.0]["recall@5"])
    return max(w for w, m in table.items() if m["recall@5"] >= best_single - 0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--bench", required=True)
    args = ap.parse_args()
    from ragkit.eval.bench import load_bench
    from ragkit.index import Index
    from ragkit.lang import detect_language

    index = Index.open(args.index)
    items = load_bench(args.bench)
    sources, dense, sparse = score_matrices(index, [i.question for i in items])
    langs: dict[str, int] = {}
    for i in items:
        langs[detect_language(i.question)] = langs.get(detect_language(i.question), 0) + 1
    print(f"{len(items)} questions ({langs}), {len(sources)} chunks, embedder {index.manifest['embedding']['model']}")
    table = sweep(sources, dense, sparse, [set(i.sources) for i in items])
    print("dense_weight  recall@1  recall@5  recall@10    mrr")
    for w, m in table.items():
        print(f"{w:>12.2f}  {m['recall@1']:8.3f}  {m['recall@5']:8.3f}  {m['recall@10']:9.3f}  {m['mrr']:6.3f}")
    print(f"chosen (largest weight with recall@5 within a point of the better single retriever): {choose_weight(table)}")


if __name__ == "__main__":
    main()
