"""Recall of dense, BM25 and hybrid retrieval for two embedders, side by side, on four checks.

The checks: the CMRC 2018 trial set (Chinese; evals/convert_cmrc2018.py), the sample bench's
Chinese and English questions over the whole sample corpus, and a cross-language check: the
sample bench's parallel questions (PAIRS: a Chinese and an English question asking the same
thing, paired by hand from data/bench/zh.jsonl and en.jsonl) asked in one language against the
other language's half of the corpus, the gold being the documents the other question cites.

For each embedder every corpus is ingested once (ragkit's own ingest, the embedder's backend),
every question embedded once as a query, and every chunk scored by cosine and normalised BM25;
dense = weight 1, bm25 = weight 0, hybrid = the embedder's weight for the question's language,
all ranked over every chunk (evals/fusion_sweep.py). A hit at k: one of the top k chunks comes
from a gold source; MRR counts the first such chunk within the top 10. The fusion sweep of each
check is kept too, with the weight today's rule picks (fusion_sweep.choose_weight).

    python evals/embedder_recall.py --cmrc .ragkit/cmrc --out evals/results/embedders/recall.json
    python evals/embedder_recall.py --embedders multilingual-e5-small --work /tmp/er   # one embedder

Indexes are kept under --work and reused when present, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "evals"))

EMBEDDERS = ("all-minilm-l6-v2", "multilingual-e5-small")
# (zh id, en id): the same question in both languages (answers agree; checked by hand).
PAIRS = (
    ("zh-001", "en-002"), ("zh-002", "en-001"), ("zh-007", "en-005"), ("zh-008", "en-006"), ("zh-009", "en-008"),
    ("zh-015", "en-009"), ("zh-016", "en-007"), ("zh-018", "en-004"), ("zh-027", "en-082"), ("zh-028", "en-028"),
    ("zh-032", "en-032"), ("zh-037", "en-039"), ("zh-038", "en-040"), ("zh-039", "en-041"), ("zh-040", "en-042"),
    ("zh-041", "en-043"), ("zh-042", "en-047"), ("zh-044", "en-046"), ("zh-045", "en-050"), ("zh-047", "en-044"),
    ("zh-048", "en-051"), ("zh-053", "en-054"), ("zh-055", "en-053"), ("zh-056", "en-063"), ("zh-058", "en-056"),
    ("zh-062", "en-068"), ("zh-071", "en-078"), ("zh-072", "en-072"), ("zh-073", "en-077"), ("zh-074", "en-085"),
    ("zh-075", "en-084"), ("zh-076", "en-074"), ("zh-082", "en-073"), ("zh-084", "en-016"), ("zh-085", "en-075"),
    ("zh-087", "en-081"),
)


def build(corpus: Path, target: Path, model: str, backend: str, embedder) -> float:
    """Ingest `corpus` into `target` unless it is there already; seconds spent (0 when reused)."""
    from ragkit.index import IngestConfig, ingest

    if (target / "CURRENT").is_file():
        return 0.0
    t = time.perf_counter()
    ingest([corpus], target, IngestConfig(embed_model=model, embed_backend=backend), embedder=embedder)
    return time.perf_counter() - t


def checks(cmrc: Path | None) -> list[dict]:
    """(name, corpus key, questions, gold source sets, chunk-source prefix that competes)."""
    from ragkit.eval.bench import load_bench

    zh = {i.id: i for i in load_bench(ROOT / "data" / "bench" / "zh.jsonl")}
    en = {i.id: i for i in load_bench(ROOT / "data" / "bench" / "en.jsonl")}
    out = [
        {"name": "sample zh", "corpus": "sample", "items": list(zh.values()), "lang": "zh", "half": None},
        {"name": "sample en", "corpus": "sample", "items": list(en.values()), "lang": "en", "half": None},
        {"name": "cross zh→en", "corpus": "sample", "lang": "zh", "half": "en/",
         "items": [zh[z] for z, _ in PAIRS], "golds": [set(en[e].sources) for _, e in PAIRS]},
        {"name": "cross en→zh", "corpus": "sample", "lang": "en", "half": "zh/",
         "items": [en[e] for _, e in PAIRS], "golds": [set(zh[z].sources) for z, _ in PAIRS]},
    ]
    if cmrc is not None:
        out.insert(0, {"name": "CMRC 2018 trial", "corpus": "cmrc", "lang": "zh", "half": None,
                       "items": load_bench(cmrc / "bench.jsonl")})
    for c in out:
        c.setdefault("golds", [set(i.sources) for i in c["items"]])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedders", nargs="+", default=list(EMBEDDERS))
    ap.add_argument("--backend", default="onnx-int8")
    ap.add_argument("--cmrc", type=Path, default=None, help="the converted CMRC trial set (corpus/ and bench.jsonl)")
    ap.add_argument("--work", type=Path, default=ROOT / ".ragkit" / "embedder-recall")
    ap.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    from fusion_sweep import WEIGHTS, choose_weight, first_gold_ranks, metrics, score_matrices, sweep

    from ragkit.embed import load_embedder
    from ragkit.index import Index
    from ragkit.index.fusion import default_fusion

    corpora = {"sample": ROOT / "data" / "corpus"}
    if args.cmrc is not None:
        corpora["cmrc"] = args.cmrc / "corpus"
    todo = checks(args.cmrc)
    result = {"backend": args.backend, "cpus": os.cpu_count(), "load_avg_start": round(os.getloadavg()[0], 2),
              "weights": list(WEIGHTS), "pairs": len(PAIRS), "embedders": {}}
    for model in args.embedders:
        t0 = time.perf_counter()
        embedder = load_embedder(model, backend=args.backend)
        res = {"load_seconds": round(time.perf_counter() - t0, 1), "ingest_seconds": {}, "checks": {}}
        for key, corpus in corpora.items():
            res["ingest_seconds"][key] = round(build(corpus, args.work / f"{model}-{key}", model, args.backend,
                                                     embedder), 1)
        for c in todo:
            index = Index.open(args.work / f"{model}-{c['corpus']}", embedder=embedder)
            langs = index.manifest["embedding"].get("languages")
            weight = default_fusion(model).for_language(c["lang"], langs)
            sources, dense, sparse = score_matrices(index, [i.question for i in c["items"]])
            rows = None if c["half"] is None else np.flatnonzero(np.char.startswith(sources.astype(str), c["half"]))
            table = sweep(sources, dense, sparse, c["golds"], rows)
            res["checks"][c["name"]] = {
                "questions": len(c["items"]), "chunks": int(len(sources) if rows is None else len(rows)),
                "dense": table[1.0], "bm25": table[0.0],
                "hybrid": table[weight] if weight in table else metrics(
                    first_gold_ranks(sources, dense, sparse, c["golds"], weight, rows)),
                "hybrid_weight": weight, "sweep": {str(w): m for w, m in table.items()},
                "rule_weight": choose_weight(table),
            }
            index.close()
            print(f"{model:24s} {c['name']:16s} " + "  ".join(
                f"{mode} r@1 {res['checks'][c['name']][mode]['recall@1']:.3f} r@5 "
                f"{res['checks'][c['name']][mode]['recall@5']:.3f} mrr {res['checks'][c['name']][mode]['mrr']:.3f}"
                for mode in ("dense", "bm25", "hybrid")) + f"  (w={weight}, rule {choose_weight(table)})", flush=True)
        result["embedders"][model] = res
        del embedder
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
