"""Chunks/s of a plain ingest against `ingest --ray` (a local Ray), same model and corpus (issue 16).

Both ingest data/corpus into fresh temporary indexes with the real bundled embedder (its default
CPU backend); the Ray run embeds on an actor pool (--actors actors of --cpus CPUs each, via
ray_embed.py). Ray is started before its timing (its start-up is printed apart), and each actor
loads the model inside the timed run, as it would on a cluster, and so does the plain ingest
(after an untimed warm-up ingest of one file). The vectors of the two indexes
are compared too. On a 2-core machine expect no gain: the same two cores embed either way, and
Ray's workers and object store take some of them.

    .venv/bin/python evals/perf/ray_speed.py
    .venv/bin/python evals/perf/ray_speed.py --corpus DIR --actors 2 --cpus 1 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def timed(paths, index, config) -> tuple[float, int]:
    from ragkit.index import ingest

    t0 = time.perf_counter()
    s = ingest(paths, index, config)
    return time.perf_counter() - t0, s.chunks_embedded


def vectors(index: Path) -> np.ndarray:
    from ragkit.index.manifest import read_current

    return np.load(read_current(index) / "embeddings.npy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(ROOT / "data" / "corpus"))
    ap.add_argument("--actors", type=int, default=1)
    ap.add_argument("--cpus", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import ray

    from ragkit.index import IngestConfig

    with tempfile.TemporaryDirectory(prefix="ragkit-ray-") as tmp:
        tmp = Path(tmp)
        first = next(p for p in sorted(Path(args.corpus).rglob("*.md")))
        timed([first], tmp / "warm", IngestConfig())  # untimed: any one-time model preparation and caching
        plain_s, n = timed([args.corpus], tmp / "plain", IngestConfig())
        t0 = time.perf_counter()
        ray.init(num_cpus=max(2, int(args.actors * args.cpus) + 1), include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
        start_s = time.perf_counter() - t0
        try:
            cfg = IngestConfig(ray="local", ray_actors=args.actors, ray_cpus=args.cpus)
            ray_s, n_ray = timed([args.corpus], tmp / "ray", cfg)
        finally:
            ray.shutdown()
        diff = float(np.abs(vectors(tmp / "plain") - vectors(tmp / "ray")).max())
    out = {"chunks": n, "plain_s": round(plain_s, 1), "plain_chunks_per_s": round(n / plain_s, 1),
           "ray_s": round(ray_s, 1), "ray_chunks_per_s": round(n_ray / ray_s, 1), "ray_start_s": round(start_s, 1),
           "ray_over_plain": round((n_ray / ray_s) / (n / plain_s), 2), "max_abs_vector_diff": diff,
           "actors": args.actors, "cpus_per_actor": args.cpus}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{n} chunks: plain {out['plain_chunks_per_s']} chunks/s ({out['plain_s']} s), --ray "
          f"{out['ray_chunks_per_s']} chunks/s ({out['ray_s']} s; Ray start-up {out['ray_start_s']} s apart), "
          f"ray/plain = {out['ray_over_plain']}x; largest vector difference {diff:.2e}")


if __name__ == "__main__":
    main()
