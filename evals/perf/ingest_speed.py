"""Ingest throughput: ragkit against LangChain's usual path, same model, same corpus, one run.

ragkit: `ragkit.index.ingest` into a fresh temporary directory: its full work (load the
files, chunk, embed, FAISS + BM25 + SQLite), with the embedding backend chosen by --backend.
LangChain: `HuggingFaceEmbeddings(model_name=<the same local model dir>)` + `FAISS.from_documents`
over the very chunk texts ragkit made (its own chunking, so both embed identical texts). A third
line, for reference only, is LangChain's fully usual path: RecursiveCharacterTextSplitter
(chunk_size=1000, chunk_overlap=200) over the raw file texts, then the same two calls.

Both load their model before any timing (plus an untimed warm-up ingest, which also yields the
chunks). Rounds alternate the three paths, so machine noise hits each alike; medians are compared.
Retrieval quality: recall@1/@5 on a bench for LangChain's FAISS similarity_search against ragkit's
dense search (same chunks, the chosen backend) and ragkit's hybrid default. Target (issue 2):
ragkit >= 2x LangChain's chunks/s with equal retrieval quality.

    .venv/bin/python evals/perf/ingest_speed.py                       # default backend, 3 rounds
    .venv/bin/python evals/perf/ingest_speed.py --backend torch --rounds 5 --json
    .venv/bin/python evals/perf/ingest_speed.py --corpus DIR --bench FILE.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
MODEL = "all-minilm-l6-v2"


def recall(ranked_sources: list[list[str]], items) -> dict[str, float]:
    """A hit: a retrieved chunk's source is one of the item's sources (as `ragkit eval` counts it)."""
    out = {}
    for k in (1, 5):
        hits = [any(s in it.sources for s in got[:k]) for got, it in zip(ranked_sources, items)]
        out[f"recall@{k}"] = round(sum(hits) / max(len(hits), 1), 4)
    return out


def main() -> None:
    from ragkit.embed import BACKENDS, default_backend

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(ROOT / "data" / "corpus"))
    ap.add_argument("--bench", default=str(ROOT / "data" / "bench" / "sample.jsonl"))
    ap.add_argument("--backend", choices=BACKENDS, default=None, help="ragkit's embedding backend (default: ragkit's)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    args = ap.parse_args()
    backend = args.backend or default_backend()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, flush=True))

    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ragkit.embed import load_embedder
    from ragkit.errors import LoadError
    from ragkit.eval.bench import load_bench
    from ragkit.index import Index, IngestConfig, ingest
    from ragkit.ingest.discover import discover
    from ragkit.ingest.loaders import load_file
    from ragkit.models import resolve_embedder

    load_start = os.getloadavg()
    model_dir = str(resolve_embedder(MODEL)[1])
    corpus = Path(args.corpus)
    items = load_bench(args.bench)

    # -- load both models, warm up, and get ragkit's chunks (all untimed) ----------------------
    t0 = time.perf_counter()
    embedder = load_embedder(MODEL, backend=backend)
    ragkit_load = time.perf_counter() - t0
    if getattr(embedder, "backend", backend) != backend:
        raise SystemExit(f"backend {backend} is unavailable here (got {embedder.backend})")
    t0 = time.perf_counter()
    lc_emb = HuggingFaceEmbeddings(model_name=model_dir)
    lc_load = time.perf_counter() - t0
    config = IngestConfig(embed_model=MODEL, embed_backend=backend)
    work = Path(tempfile.mkdtemp(prefix="ingest-speed-"))
    ingest([corpus], work / "warmup", config, embedder=embedder)
    warm = Index.open(work / "warmup", embedder=embedder)
    chunk_docs = [Document(page_content=c.text, metadata={"source": c.source}) for c in warm.chunks()]
    warm.close()
    raw = []  # LangChain's usual path starts from each file's text (parsed here, untimed, by ragkit's loaders)
    for _, path, source in discover([corpus]):
        try:
            raw += [(d.text, {"source": source}) for d in load_file(path, source)]
        except LoadError:
            pass
    lc_emb.embed_documents([d.page_content for d in chunk_docs[:8]])
    say(f"corpus {corpus}: {len(chunk_docs)} ragkit chunks; LangChain embeds the identical chunk texts "
        f"(taken from ragkit's own chunking). Model {MODEL} ({model_dir}); ragkit backend {backend}; "
        f"load avg {load_start[0]:.1f} on {os.cpu_count()} CPUs; models loaded in {ragkit_load:.1f}s "
        f"(ragkit) / {lc_load:.1f}s (LangChain), before timing")

    def run_ragkit(r: int) -> tuple[float, int, object]:
        d = work / f"ragkit-{r}"
        t = time.perf_counter()
        s = ingest([corpus], d, config, embedder=embedder)
        return time.perf_counter() - t, s.chunks, d

    def run_lc_same(r: int) -> tuple[float, int, object]:
        t = time.perf_counter()
        store = FAISS.from_documents(chunk_docs, lc_emb)
        return time.perf_counter() - t, len(chunk_docs), store

    def run_lc_usual(r: int) -> tuple[float, int, object]:
        t = time.perf_counter()
        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        docs = splitter.create_documents([t for t, _ in raw], metadatas=[m for _, m in raw])
        store = FAISS.from_documents(docs, lc_emb)
        return time.perf_counter() - t, len(docs), store

    paths = {"ragkit": run_ragkit, "langchain": run_lc_same, "langchain-usual": run_lc_usual}
    rates: dict[str, list[float]] = {k: [] for k in paths}
    counts: dict[str, int] = {}
    last: dict[str, object] = {}
    for r in range(args.rounds):
        names = list(paths)[r % 3:] + list(paths)[: r % 3]  # rotate who goes first
        for name in names:
            sec, n, obj = paths[name](r)
            rates[name].append(n / sec)
            counts[name] = n
            if name == "ragkit" and name in last:
                shutil.rmtree(last[name], ignore_errors=True)
            last[name] = obj
            say(f"  round {r + 1} {name:16s} {n:5d} chunks {sec:7.1f}s {n / sec:7.1f} chunks/s")

    med = {k: statistics.median(v) for k, v in rates.items()}
    paired = [a / b for a, b in zip(rates["ragkit"], rates["langchain"])]

    # -- retrieval quality ----------------------------------------------------------------------
    index = Index.open(last["ragkit"], embedder=embedder)
    quality = {
        f"ragkit dense ({backend})": recall([[h.source for h in index.search(it.question, 5, "dense")] for it in items], items),
        f"ragkit hybrid ({backend})": recall([[h.source for h in index.search(it.question, 5, "hybrid")] for it in items], items),
        "langchain FAISS (torch, same chunks)": recall(
            [[d.metadata["source"] for d in last["langchain"].similarity_search(it.question, k=5)] for it in items], items),
        "langchain FAISS (torch, usual 1000-char chunks)": recall(
            [[d.metadata["source"] for d in last["langchain-usual"].similarity_search(it.question, k=5)] for it in items],
            items),
    }
    index.close()
    shutil.rmtree(work, ignore_errors=True)

    result = {
        "corpus": str(corpus), "bench": str(args.bench), "bench_items": len(items), "model": MODEL, "backend": backend,
        "rounds": args.rounds, "cpus": os.cpu_count(), "load_avg_start": round(load_start[0], 2),
        "load_avg_end": round(os.getloadavg()[0], 2), "chunks": counts,
        "chunks_per_s": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "median_chunks_per_s": {k: round(v, 2) for k, v in med.items()},
        "ratio_ragkit_vs_langchain": round(med["ragkit"] / med["langchain"], 3),
        "ratio_per_round_median": round(statistics.median(paired), 3),
        "ratio_ragkit_vs_langchain_usual": round(med["ragkit"] / med["langchain-usual"], 3),
        "retrieval": quality,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"\n{'path':54s} {'chunks':>6s} {'chunks/s (median)':>18s}")
    print(f"{'ragkit ingest, ' + backend + ' (files to FAISS+BM25+SQLite)':54s} {counts['ragkit']:6d} "
          f"{med['ragkit']:18.2f}")
    print(f"{'LangChain HuggingFaceEmbeddings + FAISS (same chunks)':54s} {counts['langchain']:6d} {med['langchain']:18.2f}")
    print(f"{'LangChain usual (1000/200 char splitter + the same)':54s} {counts['langchain-usual']:6d} "
          f"{med['langchain-usual']:18.2f}  (reference: other chunks)")
    print(f"ratio ragkit / LangChain (same chunks): {result['ratio_ragkit_vs_langchain']:.2f}x "
          f"(median of per-round ratios {result['ratio_per_round_median']:.2f}x); target >= 2x")
    print(f"ratio ragkit / LangChain usual path:    {result['ratio_ragkit_vs_langchain_usual']:.2f}x")
    print(f"\nretrieval on {args.bench} ({len(items)} questions), hit = a top-k chunk from a gold source")
    for name, q in quality.items():
        print(f"  {name:50s} recall@1 {q['recall@1']:.3f}  recall@5 {q['recall@5']:.3f}")
    print(f"load average {result['load_avg_start']} at start, {result['load_avg_end']} at end")


if __name__ == "__main__":
    main()
