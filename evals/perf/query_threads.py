"""One query, FAISS's default OpenMP threads against one thread (segments.one_faiss_thread), side by side.

The FAISS store searches one query at a time, which has no work worth splitting; FAISS's default
is a thread a core, and OpenMP then waits for a thread that the OS has descheduled whenever another
process holds a core (a laptop's browser, serve's other requests, an ingest). Each kind of index
(flat, HNSW, IVF: writer.build_faiss, as ingest builds them; efSearch 64, nprobe 16) over random unit vectors
(384-d) is searched for the 50 candidates a hybrid query asks, with every core idle and then with
one core held by a busy child process. Prints p50/p95 ms of both settings and their ratio.

    python evals/perf/query_threads.py --size 100000 --queries 300
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ragkit.index.faiss.segments import one_faiss_thread  # noqa: E402
from ragkit.index.faiss.writer import build_faiss  # noqa: E402

DIM, CANDIDATES = 384, 50


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds  # bounded: it stops by itself
    while time.monotonic() < end:
        pass


def build(kind: str, x: np.ndarray):
    """The index ingest builds (writer.build_faiss), searched with the store's settings."""
    index = build_faiss(lambda start, stop: x[start:stop], len(x), DIM, kind)
    if kind == "hnsw":
        index.hnsw.efSearch = max(64, CANDIDATES)
    return index


def latencies(index, q: np.ndarray, one_thread: bool) -> list[float]:
    out = []
    for row in q:
        t = time.perf_counter()
        if one_thread:
            with one_faiss_thread():
                index.search(row[None, :], CANDIDATES)
        else:
            index.search(row[None, :], CANDIDATES)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--kinds", default="flat,hnsw,ivf")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.size, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((args.queries, DIM), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    rows = []
    for kind in args.kinds.split(","):
        index = build(kind, x)
        for load in ("idle", "one core busy"):
            child = mp.Process(target=busy, args=(600,), daemon=True) if load != "idle" else None
            if child:
                child.start()
                time.sleep(0.5)
            try:
                latencies(index, q[:20], False)  # warm
                default = np.percentile(latencies(index, q, False), [50, 95])
                single = np.percentile(latencies(index, q, True), [50, 95])
            finally:
                if child:
                    child.terminate()
                    child.join()
            rows.append({"kind": kind, "load": load, "size": args.size, "default_threads": faiss.omp_get_max_threads(),
                         "default_p50_ms": round(float(default[0]), 2), "default_p95_ms": round(float(default[1]), 2),
                         "one_p50_ms": round(float(single[0]), 2), "one_p95_ms": round(float(single[1]), 2),
                         "p95_ratio": round(float(default[1] / single[1]), 2)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.size:,} vectors, {args.queries} single queries, k={CANDIDATES}, {os.cpu_count()} cores")
    print("| index | load | default threads p50 / p95 ms | one thread p50 / p95 ms | p95 ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['load']} | {r['default_p50_ms']} / {r['default_p95_ms']} "
              f"({r['default_threads']} threads) | {r['one_p50_ms']} / {r['one_p95_ms']} | {r['p95_ratio']}× |")


if __name__ == "__main__":
    main()
