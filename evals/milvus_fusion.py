"""Which hybrid fusion for the Milvus store: ragkit's convex fusion, Milvus RRFRanker, or WeightedRanker.

For one Milvus-backed index, a bench of answerable questions and a file of off-domain ones, each
method's recall@1/5 and how its best score separates the two: `ask` refuses a question whose best
chunk scores below a threshold, so a usable score must put off-domain questions below answerable
ones on one scale for every query. Printed per method: median best score of each group, and the
share of off-domain questions scoring at or above the 5th percentile of answerable ones (the
share a threshold refusing 5% of answerable questions would still answer; lower is better).

    python evals/milvus_fusion.py --index .ragkit/sample-milvus --bench data/bench/sample.jsonl \
        --off data/bench/off_domain.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ragkit.eval.bench import load_bench
from ragkit.eval.retrieval import aggregate, item_metrics
from ragkit.index import Index
from ragkit.index.milvus.store import FIELDS
from ragkit.lang import detect_language
from ragkit.types import Hit


def milvus_ranker(index, query: str, k: int, ranker) -> list[Hit]:
    from pymilvus import AnnSearchRequest

    q = index.embedder.embed([query])[0].tolist()
    reqs = [AnnSearchRequest([q], "dense", {"metric_type": "IP"}, 50, expr=index.filter),
            AnnSearchRequest([query], "sparse", {"metric_type": "BM25"}, 50, expr=index.filter)]
    res = index.client.hybrid_search(index.collection, reqs, ranker, limit=k, output_fields=FIELDS)
    out = []
    for i, h in enumerate(res[0]):
        c = index._chunk(h["entity"])
        out.append(Hit(rank=i + 1, chunk_id=c.chunk_id, source=c.source, score=float(h["distance"]), text=c.text,
                       page=c.page, start=c.start, end=c.end, title=c.title))
    return out


def methods(index):
    from pymilvus import RRFRanker, WeightedRanker

    def weighted(q, k):  # the weight ragkit's convex fusion would give this query's language
        w = index.fusion.for_language(detect_language(q), index.manifest["embedding"].get("languages"))
        return milvus_ranker(index, q, k, WeightedRanker(w, 1 - w))

    return {
        "ragkit convex (default)": lambda q, k: index.search(q, k=k, mode="hybrid"),
        "Milvus RRFRanker(60)": lambda q, k: milvus_ranker(index, q, k, RRFRanker(60)),
        "Milvus WeightedRanker": weighted,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--off", help="off-domain questions, JSON lines with a 'question' field")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    index = Index.open(args.index)
    items = load_bench(args.bench)
    off = [json.loads(x)["question"] for x in Path(args.off).read_text(encoding="utf-8").splitlines()
           if x.strip()] if args.off else []
    result = {}
    for name, fn in methods(index).items():
        hits = [fn(i.question, 10) for i in items]
        r = aggregate(item_metrics(i, h) for i, h in zip(items, hits))
        best = np.array([h[0].score if h else 0.0 for h in hits])
        row = {"recall@1": round(r["recall@1"], 3), "recall@5": round(r["recall@5"], 3),
               "answerable_median_best": round(float(np.median(best)), 3)}
        if off:
            off_best = np.array([(fn(q, 1) or [Hit(1, "", "", 0.0, "", None, 0, 0)])[0].score for q in off])
            p5 = float(np.percentile(best, 5))
            row.update({"off_domain_median_best": round(float(np.median(off_best)), 3),
                        "off_domain_answered_at_p5": round(float(np.mean(off_best >= p5)), 3)})
        result[name] = row
        if not args.json:
            print(f"{name:26s} " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    index.close()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
