"""Ingest throughput: ragkit against LangChain's usual path, same model, same corpus, one run.

ragkit: `ragkit.index.ingest` into a fresh temporary directory: its full work (load the
files, chunk, embed, FAISS + BM25 + SQLite), with the embedding backend chosen by --backend.
LangChain: `HuggingFaceEmbeddings(model_name=<the same local model dir>)` + `FAISS.from_documents`
over the very chunk texts ragkit made (its own chunking, so both embed identical texts). A third
line, for reference only, is LangChain's fully usual path: RecursiveCharacterTextSplitter
(chunk_size=1000, chunk_overlap=200) over the raw file texts, then the same two calls.

--models takes several embedders (all-minilm-l6-v2 multilingual-e5-small): each gets the three
paths, and every round runs all of them, rotating who goes first, so machine noise hits each
alike; medians are compared, and between models both chunks/s and seconds for the whole corpus
(their tokenizers cut different chunks). For multilingual-e5-small, LangChain is given e5's
prefixes too (encode_kwargs prompt "passage: ", query_encode_kwargs prompt "query: ").

Both load their model before any timing (plus an untimed warm-up ingest, which also yields the
chunks). Retrieval quality: recall@1/@5 on a bench for LangChain's FAISS similarity_search against
ragkit's dense search (same chunks, the chosen backend) and ragkit's hybrid default. Target
(issue 2): ragkit >= 2x LangChain's chunks/s with equal retrieval quality; issue 25: e5 ingest
no more than 2x slower than MiniLM's.

    .venv/bin/python evals/perf/ingest_speed.py                       # default backend, 3 rounds
    .venv/bin/python evals/perf/ingest_speed.py --models all-minilm-l6-v2 multilingual-e5-small --json
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


def setup(model: str, backend: str, corpus: Path, work: Path):
    """(embedder, LangChain embeddings, ingest config, ragkit's chunks as Documents, raw texts, note),
    all loaded and warmed up before any timing."""
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings

    from ragkit.embed import load_embedder
    from ragkit.errors import LoadError
    from ragkit.index import Index, IngestConfig, ingest
    from ragkit.ingest.loaders import discover, load_file
    from ragkit.models import resolve_embedder

    t0 = time.perf_counter()
    embedder = load_embedder(model, backend=backend)
    ragkit_load = time.perf_counter() - t0
    if getattr(embedder, "backend", backend) != backend:
        raise SystemExit(f"backend {backend} is unavailable here (got {embedder.backend})")
    model_dir = str(resolve_embedder(model)[1])
    t0 = time.perf_counter()
    prompts = {}
    if hasattr(embedder, "embed_queries"):  # e5: LangChain gets the same prefixes
        from ragkit.embed.e5 import PASSAGE_PREFIX, QUERY_PREFIX

        prompts = {"encode_kwargs": {"prompt": PASSAGE_PREFIX}, "query_encode_kwargs": {"prompt": QUERY_PREFIX}}
    lc_emb = HuggingFaceEmbeddings(model_name=model_dir, **prompts)
    lc_load = time.perf_counter() - t0
    config = IngestConfig(embed_model=model, embed_backend=backend)
    ingest([corpus], work / f"warmup-{model}", config, embedder=embedder)
    warm = Index.open(work / f"warmup-{model}", embedder=embedder)
    chunk_docs = [Document(page_content=c.text, metadata={"source": c.source}) for c in warm.chunks()]
    warm.close()
    raw = []  # LangChain's usual path starts from each file's text (parsed here, untimed, by ragkit's loaders)
    for _, path, source in discover([corpus]):
        try:
            raw += [(d.text, {"source": source}) for d in load_file(path, source)]
        except LoadError:
            pass
    lc_emb.embed_documents([d.page_content for d in chunk_docs[:8]])
    note = (f"{model}: {len(chunk_docs)} ragkit chunks; model dir {model_dir}; models loaded in {ragkit_load:.1f}s "
            f"(ragkit) / {lc_load:.1f}s (LangChain), before timing")
    return embedder, lc_emb, config, chunk_docs, raw, note


def main() -> None:
    from ragkit.embed import BACKENDS, default_backend

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(ROOT / "data" / "corpus"))
    ap.add_argument("--bench", default=str(ROOT / "data" / "bench" / "sample.jsonl"))
    ap.add_argument("--backend", choices=BACKENDS, default=None, help="ragkit's embedding backend (default: ragkit's)")
    ap.add_argument("--models", nargs="+", default=[MODEL], help="embedders, measured side by side in one run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    args = ap.parse_args()
    backend = args.backend or default_backend()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, flush=True))

    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ragkit.eval.bench import load_bench
    from ragkit.index import Index, ingest

    load_start = os.getloadavg()
    corpus = Path(args.corpus)
    items = load_bench(args.bench)
    work = Path(tempfile.mkdtemp(prefix="ingest-speed-"))
    setups = {m: setup(m, backend, corpus, work) for m in args.models}
    for *_, note in setups.values():
        say(note)
    say(f"corpus {corpus}; LangChain embeds the identical chunk texts (taken from ragkit's own chunking); "
        f"ragkit backend {backend}; load avg {load_start[0]:.1f} on {os.cpu_count()} CPUs")

    def run_ragkit(m: str, r: int) -> tuple[float, int, object]:
        embedder, _, config, *_ = setups[m]
        d = work / f"ragkit-{m}-{r}"
        t = time.perf_counter()
        s = ingest([corpus], d, config, embedder=embedder)
        return time.perf_counter() - t, s.chunks, d

    def run_lc_same(m: str, r: int) -> tuple[float, int, object]:
        _, lc_emb, _, chunk_docs, *_ = setups[m]
        t = time.perf_counter()
        store = FAISS.from_documents(chunk_docs, lc_emb)
        return time.perf_counter() - t, len(chunk_docs), store

    def run_lc_usual(m: str, r: int) -> tuple[float, int, object]:
        _, lc_emb, _, _, raw, _ = setups[m]
        t = time.perf_counter()
        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        docs = splitter.create_documents([t for t, _ in raw], metadatas=[m for _, m in raw])
        store = FAISS.from_documents(docs, lc_emb)
        return time.perf_counter() - t, len(docs), store

    kinds = {"ragkit": run_ragkit, "langchain": run_lc_same, "langchain-usual": run_lc_usual}
    paths = [(m, k) for m in args.models for k in kinds]
    rates: dict[tuple[str, str], list[float]] = {p: [] for p in paths}
    seconds: dict[tuple[str, str], list[float]] = {p: [] for p in paths}
    counts: dict[tuple[str, str], int] = {}
    last: dict[tuple[str, str], object] = {}
    for r in range(args.rounds):
        shift = r % len(paths)
        for m, k in paths[shift:] + paths[:shift]:  # rotate who goes first
            sec, n, obj = kinds[k](m, r)
            rates[(m, k)].append(n / sec)
            seconds[(m, k)].append(sec)
            counts[(m, k)] = n
            if k == "ragkit" and (m, k) in last:
                shutil.rmtree(last[(m, k)], ignore_errors=True)
            last[(m, k)] = obj
            say(f"  round {r + 1} {m:22s} {k:16s} {n:5d} chunks {sec:7.1f}s {n / sec:7.1f} chunks/s")

    med = {p: statistics.median(v) for p, v in rates.items()}
    med_s = {p: statistics.median(v) for p, v in seconds.items()}
    per_model = {}
    for m in args.models:
        paired = [a / b for a, b in zip(rates[(m, "ragkit")], rates[(m, "langchain")])]
        index = Index.open(last[(m, "ragkit")], embedder=setups[m][0])
        quality = {
            f"ragkit dense ({backend})": recall([[h.source for h in index.search(it.question, 5, "dense")] for it in items], items),
            f"ragkit hybrid ({backend})": recall([[h.source for h in index.search(it.question, 5, "hybrid")] for it in items], items),
            "langchain FAISS (torch, same chunks)": recall(
                [[d.metadata["source"] for d in last[(m, "langchain")].similarity_search(it.question, k=5)] for it in items],
                items),
            "langchain FAISS (torch, usual 1000-char chunks)": recall(
                [[d.metadata["source"] for d in last[(m, "langchain-usual")].similarity_search(it.question, k=5)]
                 for it in items], items),
        }
        index.close()
        per_model[m] = {
            "chunks": {k: counts[(m, k)] for k in kinds},
            "chunks_per_s": {k: [round(x, 2) for x in rates[(m, k)]] for k in kinds},
            "median_chunks_per_s": {k: round(med[(m, k)], 2) for k in kinds},
            "median_seconds": {k: round(med_s[(m, k)], 2) for k in kinds},
            "ratio_ragkit_vs_langchain": round(med[(m, "ragkit")] / med[(m, "langchain")], 3),
            "ratio_per_round_median": round(statistics.median(paired), 3),
            "ratio_ragkit_vs_langchain_usual": round(med[(m, "ragkit")] / med[(m, "langchain-usual")], 3),
            "retrieval": quality,
        }
    shutil.rmtree(work, ignore_errors=True)

    result = {
        "corpus": str(corpus), "bench": str(args.bench), "bench_items": len(items), "backend": backend,
        "rounds": args.rounds, "cpus": os.cpu_count(), "load_avg_start": round(load_start[0], 2),
        "load_avg_end": round(os.getloadavg()[0], 2), "models": per_model,
    }
    if len(args.models) == 2:  # the second model's ragkit ingest against the first's, same run
        a, b = args.models
        result["ragkit_slowdown_seconds"] = {f"{b} vs {a}": round(med_s[(b, "ragkit")] / med_s[(a, "ragkit")], 3)}
        result["ragkit_slowdown_chunks_per_s"] = {f"{b} vs {a}": round(med[(a, "ragkit")] / med[(b, "ragkit")], 3)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for m, res in per_model.items():
        print(f"\n{m}")
        print(f"{'path':54s} {'chunks':>6s} {'chunks/s (median)':>18s} {'seconds':>8s}")
        for k, label in (("ragkit", f"ragkit ingest, {backend} (files to FAISS+BM25+SQLite)"),
                         ("langchain", "LangChain HuggingFaceEmbeddings + FAISS (same chunks)"),
                         ("langchain-usual", "LangChain usual (1000/200 char splitter + the same)")):
            print(f"{label:54s} {res['chunks'][k]:6d} {res['median_chunks_per_s'][k]:18.2f} {res['median_seconds'][k]:8.1f}")
        print(f"ratio ragkit / LangChain (same chunks): {res['ratio_ragkit_vs_langchain']:.2f}x "
              f"(median of per-round ratios {res['ratio_per_round_median']:.2f}x); target >= 2x")
        print(f"ratio ragkit / LangChain usual path:    {res['ratio_ragkit_vs_langchain_usual']:.2f}x")
        print(f"retrieval on {args.bench} ({len(items)} questions), hit = a top-k chunk from a gold source")
        for name, q in res["retrieval"].items():
            print(f"  {name:50s} recall@1 {q['recall@1']:.3f}  recall@5 {q['recall@5']:.3f}")
    for key in ("ragkit_slowdown_seconds", "ragkit_slowdown_chunks_per_s"):
        if key in result:
            print(f"{key}: {result[key]}")
    print(f"load average {result['load_avg_start']} at start, {result['load_avg_end']} at end")


if __name__ == "__main__":
    main()
