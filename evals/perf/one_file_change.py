"""One file changed in a big FAISS index: the delta segment against a full rebuild, side by side.

The corpus is evals/perf/scale.py's (CMRC sentences re-drawn into ~170-character chunks, 100 chunks
a file, random unit vectors seeded by the text in place of embeddings, which would cost the same
for both paths). For each size it builds the index, then times, each through `ingest()`:

    full     one file changed, `compact=True`: the whole version rewritten (what every change cost before)
    delta    another change of that file: base hard-linked, a 100-chunk delta written
    delta2   a second file changed: the delta carried over and grown
    delete   a file deleted: one more file's rows tombstoned
    big      one file changed over a delta already near its limit (files changed first to ~9% of the base)
    compact  `compact=True`: the merge back into one base

and, on the delta version against the compacted one, hybrid query p50/p95 and whether the top 5 of
every query is the same (ids, and scores within 1e-4). The first query after a swap (a reader
loading the new version's BM25 and FAISS) is timed too. Prints a table and the full/delta ratio.

    nice -n 10 python evals/perf/one_file_change.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import RESULTS, RandomUnitEmbedder, cmrc_text, write_corpus  # noqa: E402


def change(f: Path, n: int) -> None:
    f.write_text(f.read_text(encoding="utf-8").replace("编号", f"改{n}编号", 3), encoding="utf-8")


def timed_ingest(corpus: Path, idx: Path, cfg, emb) -> tuple[float, object]:
    from ragkit.index import ingest

    t = time.perf_counter()
    s = ingest([corpus], idx, cfg, embedder=emb)
    return time.perf_counter() - t, s


def queries(idx: Path, emb, qs: list[str]) -> tuple[list, list[float], float]:
    """(top 5 of each query, latencies ms, first query ms: the lazily loaded parts)."""
    from ragkit.index import Index

    index = Index.open(idx, embedder=emb)
    t = time.perf_counter()
    index.search(qs[0], k=5)
    first = (time.perf_counter() - t) * 1000
    tops, lat = [], []
    for q in qs:
        t = time.perf_counter()
        hits = index.search(q, k=5, mode="hybrid")
        lat.append((time.perf_counter() - t) * 1000)
        tops.append([(h.chunk_id, h.score) for h in hits])
    index.close()
    return tops, lat, first


def same_tops(a: list, b: list, tol: float = 1e-4) -> int:
    """Queries whose top 5 agree: the same scores within tol, and the same chunks above the 5th's score
    (chunks tied with the 5th may be cut either way)."""
    ok = 0
    for x, y in zip(a, b):
        if len(x) != len(y) or any(abs(s - t) > tol for (_, s), (_, t) in zip(x, y)):
            continue
        last = x[-1][1] if x else 0.0
        if {i for i, s in x if s > last + tol} == {i for i, s in y if s > last + tol}:
            ok += 1
    return ok


def one_size(size: int, kind: str, work: Path, n_queries: int) -> dict:
    from ragkit.embed import register_embedder
    from ragkit.index import IngestConfig

    emb = RandomUnitEmbedder()
    register_embedder(emb.name, lambda: emb)
    shutil.rmtree(work, ignore_errors=True)
    corpus, idx = work / "corpus", work / "index"
    write_corpus(corpus, size)
    files = sorted(corpus.iterdir())
    cfg = IngestConfig(embed_model=emb.name, dense_index=kind)
    full_cfg = IngestConfig(embed_model=emb.name, dense_index=kind, compact=True)
    _, questions = cmrc_text()
    qs = random.Random(1).sample(questions, n_queries)
    row = {"size": size, "kind": kind}
    row["build_s"], s = timed_ingest(corpus, idx, cfg, emb)
    row["chunks"] = s.chunks
    change(files[0], 1)
    row["full_s"], s = timed_ingest(corpus, idx, full_cfg, emb)
    assert s.files_changed == 1 and s.delta is None
    _, plain_lat, row["plain_first_query_ms"] = queries(idx, emb, qs)
    change(files[0], 2)
    row["delta_s"], s = timed_ingest(corpus, idx, cfg, emb)
    assert s.files_changed == 1 and s.delta is not None and s.chunks_embedded == s.delta["chunks"]
    row["delta_embedded"] = s.chunks_embedded
    change(files[1], 1)
    row["delta2_s"], s = timed_ingest(corpus, idx, cfg, emb)
    assert s.delta["files"] == 2
    files[2].unlink()
    row["delete_s"], s = timed_ingest(corpus, idx, cfg, emb)
    assert s.files_deleted == 1 and s.delta is not None
    delta_tops, delta_lat, row["delta_first_query_ms"] = queries(idx, emb, qs)
    used = s.delta["chunks"] + s.delta["tombstones"]  # a changed file adds 100 rows and 100 tombstones
    many = max(1, int(0.8 * (0.1 * s.delta["base_chunks"] - used) / 200))  # to about 9% of the base
    for f in files[3:3 + many]:
        change(f, 1)
    timed_ingest(corpus, idx, cfg, emb)
    change(files[3 + many], 1)
    row["big_delta_s"], s = timed_ingest(corpus, idx, cfg, emb)
    row["big_delta_rows"] = s.delta["chunks"] + s.delta["tombstones"] if s.delta else None
    big_tops, big_lat, _ = queries(idx, emb, qs)
    row["compact_s"], s = timed_ingest(corpus, idx, full_cfg, emb)  # nothing changed: the same corpus, merged
    assert s.version_written and s.delta is None
    compact_tops, compact_lat, _ = queries(idx, emb, qs)
    row["same_top5"] = f"{same_tops(big_tops, compact_tops)}/{len(qs)}"
    for name, lat in (("plain", plain_lat), ("delta", delta_lat), ("big_delta", big_lat), ("compacted", compact_lat)):
        p50, p95 = np.percentile(lat, [50, 95])
        row[f"{name}_p50_ms"], row[f"{name}_p95_ms"] = round(float(p50), 2), round(float(p95), 2)
    row["ratio_full_over_delta"] = round(row["full_s"] / row["delta_s"], 1)
    for k, v in list(row.items()):
        if k.endswith("_s") or k.endswith("_ms"):
            row[k] = round(v, 2)
    shutil.rmtree(work, ignore_errors=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--kind", default="flat", choices=["flat", "hnsw", "ivf"])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--work", default="/tmp/ragkit-one-file")
    args = ap.parse_args()
    rows = []
    for size in map(int, args.sizes.split(",")):
        row = one_size(size, args.kind, Path(args.work) / str(size), args.queries)
        print(json.dumps(row), flush=True)
        rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"one_file_change-{args.kind}.json").write_text(json.dumps(rows, indent=2))
    print("| chunks | build s | one file, full rebuild s | one file, delta s | ratio | 2nd file, delta s "
          "| delete, delta s | one file over a ~9% delta s | compaction s | hybrid p95 plain / delta ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['chunks']:,} | {r['build_s']} | {r['full_s']} | {r['delta_s']} | {r['ratio_full_over_delta']}x "
              f"| {r['delta2_s']} | {r['delete_s']} | {r['big_delta_s']} | {r['compact_s']} "
              f"| {r['plain_p95_ms']} / {r['delta_p95_ms']} |")


if __name__ == "__main__":
    main()
