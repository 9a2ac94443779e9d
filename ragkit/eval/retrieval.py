"""Retrieval metrics against a bench's gold sources.

A retrieved chunk is relevant when its source is one of the item's `sources`.
- recall@k: share of items with a relevant chunk among the top k chunks.
- mrr@10: mean reciprocal rank of the first relevant chunk (0 when none in the top 10).
- ndcg@10: binary-gain nDCG over the ranked *sources* (each source counted at its first
  appearance, so several chunks of one gold file do not inflate the gain), ideal = all gold sources first.
- answer_in_context: share of items where an acceptable answer appears in the top-k retrieved text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from ..settings import RETRIEVAL
from ..types import BenchItem, Hit

KS = (1, 5, 10)


def item_metrics(item: BenchItem, hits: list[Hit]) -> dict[str, float]:
    gold = set(item.sources)
    first = next((i for i, h in enumerate(hits[:10], 1) if h.source in gold), None)
    out = {f"recall@{k}": float(first is not None and first <= k) for k in KS}
    out["mrr@10"] = 1.0 / first if first else 0.0
    ranked_sources: list[str] = []
    for h in hits[:10]:
        if h.source not in ranked_sources:
            ranked_sources.append(h.source)
    dcg = sum(1.0 / math.log2(i + 1) for i, s in enumerate(ranked_sources, 1) if s in gold)
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(gold), 10) + 1))
    out["ndcg@10"] = dcg / idcg if idcg else 0.0
    return out


def aggregate(per_item: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(per_item)
    keys = [f"recall@{k}" for k in KS] + ["mrr@10", "ndcg@10"]
    out = {k: round(sum(r[k] for r in rows) / len(rows), 4) if rows else 0.0 for k in keys}
    if rows and all("answer_in_context" in r for r in rows):
        out["answer_in_context"] = round(sum(r["answer_in_context"] for r in rows) / len(rows), 4)
    out["n"] = len(rows)
    return out


def evaluate_retrieval(
    items: list[BenchItem],
    search: Callable[[str], list[Hit]],
    answer_in: Callable[[list[str], str], bool] | None = None,
    context_k: int = RETRIEVAL.k,
    on_item: Callable[[], None] | None = None,
) -> tuple[dict[str, float], list[dict]]:
    """Run every bench question through `search` (top 10); return (aggregate, per-item rows)."""
    rows = []
    for item in items:
        hits = search(item.question)
        m = item_metrics(item, hits)
        if answer_in is not None:
            context = "\n".join(h.text for h in hits[:context_k])
            m["answer_in_context"] = float(answer_in(item.answers, context))
        rows.append({"id": item.id, "category": item.category, "difficulty": item.difficulty,
                     "retrieved": [h.source for h in hits[:10]], **m})
        if on_item:
            on_item()
    return aggregate(rows), rows
