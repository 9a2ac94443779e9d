"""Embedding on a Ray cluster (`ragkit ingest ... --ray [ADDRESS]`, extra `ragkit[ray]`).

Reading and chunking stay in ragkit's stream (stream.py), in the driver; only embedding moves:
each window of new chunks (`WINDOW` checkpoint batches) becomes a Ray Dataset whose `map_batches`
runs `EmbedActor` over an actor pool (`compute=ActorPoolStrategy(size=...)`, the current API).
An actor loads the embedder once, in `__init__`, and gets `num_cpus` CPUs: Ray sets each actor's
OMP_NUM_THREADS from num_cpus (1 by default), which would leave a CPU embedder one thread. Vectors
come back tagged with their position and go to the same batch writer a plain ingest uses, so
checkpoints and resuming work alike, and the index equals a plain one (tests/unit/test_ray_ingest.py).

On one 2-core machine this is no faster than a plain ingest (evals/perf/ray_speed.py): the same
two cores embed, and Ray's workers, object store and per-window dataset cost some of them. It
pays on a cluster, where each node's actors embed in parallel.
"""

from __future__ import annotations

import functools
import os
import re

import numpy as np

from ..embed import load_embedder
from ..errors import UsageError
from ..extras import require

WINDOW = 16  # checkpoint batches per Ray dataset: 16,384 chunks at the default 1,024 rows a batch
_ADDRESS = re.compile(r"^(local|auto|ray://[\w.\-]+(:\d+)?|[\w.\-]+:\d+)$")


def _same(embedder):
    return embedder


class EmbedActor:
    """One embedder per actor, loaded once. A row is one group (a checkpoint batch's new texts,
    embedded in one call as a plain ingest does); out come a row per text: group, position, vector."""

    def __init__(self, factory):
        self.embedder = factory()

    def __call__(self, batch: dict) -> dict:
        groups, pos, vecs = [], [], []
        for g, texts in zip(batch["group"], batch["texts"]):
            v = self.embedder.embed([str(t) for t in texts])
            groups.append(np.full(len(v), g, dtype=np.int64))
            pos.append(np.arange(len(v), dtype=np.int64))
            vecs.append(v)
        return {"group": np.concatenate(groups), "pos": np.concatenate(pos), "vector": np.concatenate(vecs)}


class RayEmbed:
    def __init__(self, config, embedder, passed_in: bool = False):
        require("ray", "ingest --ray")
        import ray

        address = config.ray or "local"
        if not _ADDRESS.match(address):
            raise UsageError(f"--ray {address!r} is not a Ray address (local, auto, ray://HOST:10001 or HOST:PORT); "
                             "put --ray after the paths or write --ray=ADDRESS")
        self.actors, self.cpus = config.ray_actors, config.ray_cpus
        backend = getattr(embedder, "backend", None) or "torch"
        self.batch_size, self.dim, self.window = config.embed_batch(backend), embedder.dim, WINDOW
        if passed_in:  # an embedder object (tests, plugins): shipped to the actors as it is
            self.factory = functools.partial(_same, embedder)
        else:
            self.factory = functools.partial(load_embedder, config.embed_model, batch_size=self.batch_size,
                                             backend=backend,
                                             device=config.device)
        if not ray.is_initialized():
            if address == "local":  # logical CPUs: the pool, plus one for Ray Data's own tasks
                ray.init(num_cpus=max(os.cpu_count() or 1, int(self.actors * self.cpus) + 1),
                         include_dashboard=False, log_to_driver=False, configure_logging=False,
                         _node_ip_address="127.0.0.1")  # a local Ray listens on loopback only
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)

    def __call__(self, groups: list[list[str]]) -> list[np.ndarray]:
        import ray
        from ray.data import ActorPoolStrategy

        out = [np.empty((len(g), self.dim), dtype=np.float32) for g in groups]
        if not groups:
            return out
        ds = ray.data.from_items([{"group": k, "texts": list(g)} for k, g in enumerate(groups)],
                                 override_num_blocks=len(groups))
        vectors = ds.map_batches(EmbedActor, fn_constructor_kwargs={"factory": self.factory},
                                 compute=ActorPoolStrategy(size=self.actors), num_cpus=self.cpus,
                                 batch_size=1, batch_format="numpy")
        for b in vectors.iter_batches(batch_size=None, batch_format="numpy"):
            for g, p, v in zip(b["group"], b["pos"], b["vector"]):
                out[int(g)][int(p)] = v
        return out
