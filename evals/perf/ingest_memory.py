"""Peak RSS of `ragkit ingest` by corpus size: the streamed ingest against the one before it (issue 16).

Each run is a child process that ingests a synthetic corpus (files of 10 paragraphs of 32 words, about 30 chunks) with a
fast fake embedder (random unit vectors of 384 dimensions, the size all-minilm-l6-v2 gives, made
from the text's hash: no model, so the big sizes take minutes, not days). The child reads its peak
RSS (VmHWM) at two points: when the index build starts (everything up to it: walking, reading,
chunking, embedding, writing rows and vectors; the figure the issue targets, "index excluded"),
then resets the peak (/proc/self/clear_refs) and reads it again at the end (building FAISS and BM25,
which hold the index itself). The old path is the ingest of --old-rev, exported from git.

    .venv/bin/python evals/perf/ingest_memory.py                      # 10k and 100k chunks, new and old
    .venv/bin/python evals/perf/ingest_memory.py --sizes 100000 1000000 --only new --stream-only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORDS_PER_CHUNK, PARAGRAPHS_PER_FILE, DIM = 32, 10, 384
CHUNKS_PER_FILE = 30  # what the chunker makes of a file here (measured; the figures print the real count)

CHILD = r"""
import hashlib, json, sys, time
from pathlib import Path
import numpy as np

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024  # MiB

class Fast:
    name, dim, backend = "fast-random", %(dim)d, None
    def count_tokens(self, text):
        return text.count(" ") + 1
    def embed(self, texts, on_batch=None):
        seed = int(hashlib.md5(texts[0].encode()).hexdigest()[:8], 16) if texts else 0
        v = np.random.default_rng(seed).standard_normal((len(texts), self.dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v

from ragkit.embed import register_embedder
register_embedder("fast-random", Fast)
import ragkit.index.faiss.build as build
from ragkit.index import IngestConfig, ingest
from ragkit.ingest.chunking import ChunkingConfig
marks = {}
def mark(name):
    marks[name] = hwm()
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak: the next mark is this phase's own
if hasattr(build, "_publish"):  # the streamed ingest: the index is built in writer.finish
    import ragkit.index.faiss.writer as w
    real = w.FaissWriter.finish
    def finish(self, *a, **k):
        mark("stream")
        if %(stream_only)s:  # the figure the issue targets; building FAISS and BM25 over 1M rows is the index
            print(json.dumps({"streamed": True, "chunks": self.rows, "seconds": round(time.perf_counter() - t0, 1),
                              **marks}), flush=True)
            import os; os._exit(0)
        return real(self, *a, **k)
    w.FaissWriter.finish = finish
else:
    real = build._write_version
    def write(*a, **k):
        mark("stream"); return real(*a, **k)
    build._write_version = write
t0 = time.perf_counter()
cfg = IngestConfig(embed_model="fast-random", chunking=ChunkingConfig(chunk_size=%(words)d, chunk_overlap=0))
t0 = time.perf_counter()
s = ingest([sys.argv[1]], sys.argv[2], cfg)
marks["index_build"] = hwm()
print(json.dumps({"streamed": hasattr(build, "_publish"), "chunks": s.chunks, "seconds": round(time.perf_counter() - t0, 1), **marks}))
"""


def make_corpus(d: Path, chunks: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    files = (chunks + CHUNKS_PER_FILE - 1) // CHUNKS_PER_FILE
    for f in range(files):
        sub = d / f"d{f // 1000:04d}"
        sub.mkdir(exist_ok=True)
        lines = []
        for c in range(PARAGRAPHS_PER_FILE):
            lines.append(" ".join(f"w{(f * 7919 + c * 104729 + j * 31) % 50000}" for j in range(WORDS_PER_CHUNK)))
        (sub / f"f{f:06d}.txt").write_text("\n\n".join(lines) + "\n", encoding="utf-8")


def old_tree(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "ragkit"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run(code_root: Path, corpus: Path, index: Path, timeout: int, stream_only: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root), "HF_HUB_OFFLINE": "1"}
    code = CHILD % {"dim": DIM, "words": WORDS_PER_CHUNK, "stream_only": stream_only}
    r = subprocess.run([sys.executable, "-c", code, str(corpus), str(index)],
                       env=env, capture_output=True, text=True, timeout=timeout, cwd=index.parent)
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--only", choices=["new", "old"], default=None)
    ap.add_argument("--old-rev", default="8bfd15b", help="git revision of the ingest before streaming")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--stream-only", action="store_true",
                    help="stop the new path when the index build starts (for 1M chunks on a small machine)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="ragkit-mem-") as tmp:
        tmp = Path(tmp)
        impls = {"new": ROOT, "old": None}
        if args.only != "new":
            impls["old"] = old_tree(args.old_rev, tmp / "old")
        for size in args.sizes:
            corpus = tmp / f"corpus-{size}"
            t0 = time.perf_counter()
            make_corpus(corpus, size)
            print(f"corpus of {size} chunks made in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for name, code in impls.items():
                if code is None or (args.only and name != args.only):
                    continue
                r = {"impl": name, "size": size, **run(code, corpus, tmp / f"idx-{name}-{size}", args.timeout,
                                                        args.stream_only and name == "new")}
                results.append(r)
                print(json.dumps(r), file=sys.stderr)
            subprocess.run(["rm", "-rf", str(corpus), *map(str, tmp.glob(f"idx-*-{size}"))], check=False)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'impl':5} {'chunks':>8} {'stream MiB':>11} {'index build MiB':>16} {'seconds':>8}")
    for r in results:
        print(f"{r['impl']:5} {r['size']:>8} {r.get('stream', '-'):>11} {r.get('index_build', '-'):>16} "
              f"{r.get('seconds', r.get('error', '-')):>8}")
    by = {(r["impl"], r["size"]): r.get("stream") for r in results}
    sizes = sorted({r["size"] for r in results})
    for impl in ("new", "old"):
        have = [s for s in sizes if by.get((impl, s))]
        if len(have) >= 2:
            print(f"{impl}: peak RSS before the index build grows {by[(impl, have[-1])] / by[(impl, have[0])]:.2f}x "
                  f"from {have[0]} to {have[-1]} chunks")
    for s in sizes:
        if by.get(("new", s)) and by.get(("old", s)):
            print(f"{s} chunks: old / new peak RSS before the index build = {by[('old', s)] / by[('new', s)]:.2f}x")


if __name__ == "__main__":
    main()
