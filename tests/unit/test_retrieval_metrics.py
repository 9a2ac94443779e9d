import math

import pytest

from ragkit.eval.retrieval import aggregate, item_metrics
from ragkit.types import BenchItem, Hit


def hit(rank, source):
    return Hit(rank=rank, chunk_id=f"c{rank}", source=source, score=1.0, text="", page=None, start=0, end=0)


ITEM = BenchItem("q", "?", ["a"], ["gold.md", "gold2.md"], "knowledge", "easy")


def test_first_relevant_at_rank_three():
    hits = [hit(1, "x"), hit(2, "y"), hit(3, "gold.md"), hit(4, "gold.md"), hit(5, "gold2.md")]
    m = item_metrics(ITEM, hits)
    assert (m["recall@1"], m["recall@5"], m["recall@10"]) == (0.0, 1.0, 1.0)
    assert m["mrr@10"] == pytest.approx(1 / 3)
    # ranked sources: x, y, gold, gold2 → gains at positions 3 and 4; ideal at 1 and 2
    dcg = 1 / math.log2(4) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert m["ndcg@10"] == pytest.approx(dcg / idcg)


def test_miss_and_aggregate():
    m0 = item_metrics(ITEM, [hit(1, "x")])
    m1 = item_metrics(ITEM, [hit(1, "gold2.md")])
    assert m0["recall@10"] == 0.0 and m0["ndcg@10"] == 0.0
    agg = aggregate([m0, m1])
    assert agg["recall@1"] == 0.5 and agg["n"] == 2
