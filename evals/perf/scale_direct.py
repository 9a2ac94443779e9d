"""The 1M-chunk point of evals/perf/scale.py for the FAISS store, built without the file path.

Reading, chunking and jieba-tokenising a million chunks through `ingest()` takes about an hour on
this 2-core machine, so this script writes the index version directly with the batch writer ingest
uses (writer.FaissWriter: SQLite rows, embeddings.npy, the FAISS index, bm25s), from chunks composed
of pre-tokenised CMRC sentences (each sentence tokenised once, the same text and words a real
ingest would store) and random unit vectors, composed a batch at a time (the 1M flat and IVF
figures in evals/results/scale/ were measured when the script held every chunk in a list, 14 GB of
RSS, and before ingest was streamed). Queries then go through the real
`Index.search(mode="hybrid", k=5)`. The index has no files on disk, so an incremental ingest (the
delta segment, evals/perf/one_file_change.py) cannot be timed on it; build_s excludes composing.

    nice -n 10 python evals/perf/scale_direct.py --size 1000000 --kind hnsw --queries 100   # the 1M HNSW target
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import DIM, PER_FILE, RESULTS, RandomUnitEmbedder, cmrc_text, disk_bytes  # noqa: E402


def chunks_and_words(n: int, seed: int = 0):
    """(chunk, its BM25 words) one at a time: nothing holds the million (14 GB of RSS when a list did)."""
    from ragkit.lang import tokenize_for_search
    from ragkit.types import Chunk

    sentences, _ = cmrc_text()
    words = [tokenize_for_search(s) for s in sentences]
    rng = random.Random(seed)
    for i in range(n):
        text, toks = "", []
        while len(text) < 140:
            j = rng.randrange(len(sentences))
            text += sentences[j]
            toks += words[j]
        serial = f"{rng.randrange(10**6):06d}"
        text = text + f"编号{serial}"
        toks = toks + ["编号", serial]
        source = f"doc{i // PER_FILE:06d}.txt"
        yield Chunk(f"{source}-{i}", source, text, 0, len(text)), " ".join(toks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--kind", default="hnsw", choices=["flat", "hnsw", "ivf"])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--work", default="/tmp/ragkit-scale-direct")
    args = ap.parse_args()
    from ragkit.embed import register_embedder
    from ragkit.index.store import Index
    from ragkit.index.writer import FaissWriter

    emb = RandomUnitEmbedder()
    register_embedder(emb.name, lambda: emb)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    manifest = {"format": 1, "embedding": {"model": emb.name, "dim": DIM, "languages": None, "backend": "torch"},
                "chunking": {"chunk_size": 200, "chunk_overlap": 40}, "dense_index": args.kind, "fusion": {},
                "n_chunks": args.size, "files": {}}
    t0 = time.perf_counter()
    work.mkdir(parents=True)
    writer = FaissWriter(work, DIM, args.kind, {"direct": args.size})
    chunks, rng, compose = chunks_and_words(args.size), np.random.default_rng(0), 0.0
    for i in range(0, args.size, 1024):
        t = time.perf_counter()
        batch = [next(chunks) for _ in range(min(1024, args.size - i))]
        vectors = rng.standard_normal((len(batch), DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        compose += time.perf_counter() - t  # composing text is not the store's cost: counted apart
        writer.add(batch, vectors)
    t = time.perf_counter()
    writer.finish(manifest, work / "v-1")
    finish = time.perf_counter() - t
    (work / "CURRENT").write_text("v-1", encoding="utf-8")
    build = time.perf_counter() - t0 - compose
    _, questions = cmrc_text()
    qs = random.Random(1).sample(questions, args.queries)
    index = Index.open(work, embedder=emb)
    index.search(qs[0], k=5)
    lat = []
    for q in qs:
        t = time.perf_counter()
        index.search(q, k=5, mode="hybrid")
        lat.append((time.perf_counter() - t) * 1000)
    p50, p95 = np.percentile(lat, [50, 95])
    row = {"size": args.size, "store": args.kind, "chunks": args.size, "build_s": round(build, 1),
           "compose_s": round(compose, 1), "finish_s": round(finish, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "disk_mb": round(disk_bytes(work) / 2**20, 1), "query_p50_ms": round(float(p50), 2),
           "query_p95_ms": round(float(p95), 2), "queries": len(lat), "change_one_file_s": None,
           "delete_one_file_s": None, "direct": True}
    shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"direct-{args.size}-{args.kind}.json").write_text(json.dumps(row, indent=2))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
