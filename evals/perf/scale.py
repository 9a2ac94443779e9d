"""How index cost grows with the corpus: FAISS flat / HNSW / IVF and milvus-lite, 10k to 1M chunks.

Corpora are real Chinese text for BM25: sentences of the CMRC 2018 trial paragraphs, re-drawn,
shuffled and tagged with a random serial number (编号NNNNNN), one ~170-character paragraph per
chunk, 100 chunks per file. Embeddings are random unit vectors (384-d, like all-MiniLM-L6-v2),
seeded by the text: embedding time would dominate every other cost and is the same for both
stores, so it is left out, and so is the query's embedding. Everything else is the real path:
`ingest()` reads the files, chunks, tokenises and writes the store; queries (CMRC questions) go
through `Index.search(mode="hybrid", k=5)`. Each (size, store) runs in its own process, so peak
RSS is that run's own (ru_maxrss: build, queries, the change and the delete together).

Figures per run: build seconds, peak RSS, bytes on disk, hybrid p50/p95 ms, the time to re-ingest
after one file (100 chunks) changed, and after one file was deleted. Results go to
evals/results/scale/ (scale.json, scale.md, scale.png).

    python evals/perf/scale.py --sizes 10000,100000 --stores milvus,flat,hnsw,ivf --queries 100
    python evals/perf/scale.py --sizes 1000000 --stores hnsw,ivf,flat --queries 100    # the 1M rows (no milvus-lite: RAM)

The 1M run through `ingest()` reads, chunks and jieba-tokenises 10,000 files in about 13 minutes
on the 2-core machine before the index build (the whole HNSW run: 27-28 minutes, 3.7-4.0 GB peak RSS). A
one-file change of the FAISS store writes a delta segment (index/delta.py);
evals/perf/one_file_change.py sets it beside a full rebuild.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CMRC = Path("/work/shared/benches/cmrc2018/cmrc2018_trial.json")
RESULTS = OUT = ROOT / "evals" / "results" / "scale"
PER_FILE = 100
DIM = 384


class RandomUnitEmbedder:
    """Random unit vectors seeded by the text: no model, so the index's own costs are what is timed."""

    name = "random-unit-384"
    dim = DIM
    backend = "torch"  # what the manifest records; no model runs

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"[\u4e00-\u9fff]|[A-Za-z0-9]+", text))

    def embed(self, texts, on_batch=None):
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(self.dim, dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        if on_batch:
            on_batch(len(texts))
        return out


def cmrc_text() -> tuple[list[str], list[str]]:
    """(sentences, questions) of the CMRC 2018 trial set."""
    data = json.loads(CMRC.read_text(encoding="utf-8"))["data"]
    sentences, questions = [], []
    for art in data:
        for p in art["paragraphs"]:
            sentences += [s + "。" for s in p["context"].split("。") if len(s) > 8]
            questions += [q["question"] for q in p["qas"]]
    return sentences, questions


def paragraph(rng: random.Random, sentences: list[str]) -> str:
    text = ""
    while len(text) < 140:
        text += rng.choice(sentences)
    return text[:170] + f"编号{rng.randrange(10**6):06d}"


def write_corpus(root: Path, n_chunks: int, seed: int = 0) -> None:
    sentences, _ = cmrc_text()
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for f in range(n_chunks // PER_FILE):
        body = "\n\n".join(paragraph(rng, sentences) for _ in range(PER_FILE))
        (root / f"doc{f:06d}.txt").write_text(body + "\n", encoding="utf-8")


def disk_bytes(path: Path) -> int:
    """Bytes of the files under path, a hard-linked file once (a delta version links its base's files)."""
    seen = {}
    for f in path.rglob("*"):
        if f.is_file():
            st = f.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def one_run(size: int, store: str, work: Path, n_queries: int) -> dict:
    """Build, query, change one file, delete one file; in this process (the caller gives it its own)."""
    from ragkit.embed import register_embedder
    from ragkit.index import Index, IngestConfig, ingest

    emb = RandomUnitEmbedder()
    register_embedder(emb.name, lambda: emb)
    corpus, idx = work / "corpus", work / "index"
    write_corpus(corpus, size)
    cfg = IngestConfig(embed_model=emb.name, store="milvus" if store == "milvus" else "faiss",
                       dense_index="flat" if store == "milvus" else store)
    t0 = time.perf_counter()
    summary = ingest([corpus], idx, cfg, embedder=emb)
    build = time.perf_counter() - t0
    _, questions = cmrc_text()
    qs = random.Random(1).sample(questions, n_queries)
    index = Index.open(idx, embedder=emb)
    index.search(qs[0], k=5)  # warm: load the lazily read parts
    lat = []
    for q in qs:
        t = time.perf_counter()
        index.search(q, k=5, mode="hybrid")
        lat.append((time.perf_counter() - t) * 1000)
    index.close()
    first = sorted(corpus.iterdir())[0]
    text = first.read_text(encoding="utf-8")
    first.write_text(text.replace("编号", "新编号", 5), encoding="utf-8")
    t = time.perf_counter()
    changed = ingest([corpus], idx, cfg, embedder=emb)
    change_s = time.perf_counter() - t
    sorted(corpus.iterdir())[1].unlink()
    t = time.perf_counter()
    deleted = ingest([corpus], idx, cfg, embedder=emb)
    delete_s = time.perf_counter() - t
    assert changed.files_changed == 1 and deleted.files_deleted == 1
    q = np.percentile(lat, [50, 95])
    return {
        "size": size, "store": store, "chunks": summary.chunks, "build_s": round(build, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "disk_mb": round(disk_bytes(idx) / 2**20, 1), "query_p50_ms": round(float(q[0]), 2),
        "query_p95_ms": round(float(q[1]), 2), "queries": len(lat),
        "change_one_file_s": round(change_s, 2), "changed_chunks_embedded": changed.chunks_embedded,
        "delete_one_file_s": round(delete_s, 2), "mean_ms": round(statistics.fmean(lat), 2),
    }


def table(rows: list[dict]) -> str:
    head = ("| chunks | store | build s | peak RSS MB | disk MB | hybrid p50 ms | hybrid p95 ms "
            "| one file changed s | one file deleted s |\n|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['chunks']:,} | {r['store']} | {r['build_s']} | {r['peak_rss_mb']} | {r['disk_mb']} | "
        f"{r['query_p50_ms']} | {r['query_p95_ms']} | {r['change_one_file_s']} | {r['delete_one_file_s']} |\n"
        for r in sorted(rows, key=lambda r: (r["size"], r["store"])))


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("build_s", "build (s)"), ("peak_rss_mb", "peak RSS (MB)"), ("query_p95_ms", "hybrid p95 (ms)"),
              ("change_one_file_s", "one file changed (s)")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (key, label) in zip(axes, panels):
        for store in sorted({r["store"] for r in rows}):
            pts = sorted((r["chunks"], r[key]) for r in rows if r["store"] == store and r.get(key) is not None)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=store)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chunks")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--stores", default="flat,hnsw,ivf,milvus")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--work", default="/tmp/ragkit-scale")
    ap.add_argument("--timeout", type=int, default=None,
                    help="seconds one (size, store) run may take [default: 1800; 6 h from 1M chunks]")
    ap.add_argument("--one", nargs=2, metavar=("SIZE", "STORE"), help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--report", action="store_true", help="only redraw scale.md and scale.png from the saved runs")
    args = ap.parse_args()
    if args.one:
        work = Path(args.work) / f"{args.one[0]}-{args.one[1]}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            print(json.dumps(one_run(int(args.one[0]), args.one[1], work, args.queries)))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    results_file = OUT / "scale.json"
    rows = json.loads(results_file.read_text()) if results_file.exists() else []
    for size in [] if args.report else map(int, args.sizes.split(",")):
        timeout = args.timeout or (6 * 3600 if size >= 1_000_000 else 1800)
        for store in args.stores.split(","):
            cmd = [sys.executable, __file__, "--one", str(size), store, "--queries", str(args.queries), "--work", args.work]
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
            except subprocess.TimeoutExpired:
                print(f"{size} {store}: over {timeout}s, skipped", file=sys.stderr)
                continue
            except subprocess.CalledProcessError as e:
                print(f"{size} {store}: failed\n{e.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(out.strip().splitlines()[-1])
            rows = [r for r in rows if (r["size"], r["store"]) != (size, store)] + [row]
            results_file.write_text(json.dumps(rows, indent=2))
            print(json.dumps(row) if args.json else f"{size} {store}: {row}", flush=True)
    (OUT / "scale.md").write_text(table(rows), encoding="utf-8")
    chart(rows, OUT / "scale.png")
    print(table(rows))


if __name__ == "__main__":
    main()
