"""`ragkit ingest`: files → chunks → embeddings → a new index version, swapped in atomically.

This is the half every store shares: the settings (`IngestConfig`), the checks of the target
directory and of the old version (embedding model, local model fingerprint, chunking, backend),
the write lock, the embedder, and the choice of store (registry.py: the existing index's own, or
the requested one for a new index). The store then reads, embeds and writes (faiss/build.py
streams through a BatchWriter; milvus/build.py inserts into its collection), and returns an
`IngestSummary`. A failed first ingest leaves nothing behind; a killed one keeps its staging, so
running it again resumes (FAISS store).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import embed
from ..embed import BACKENDS, default_backend, resolve_device
from ..errors import IndexIncompatible, UsageError
from ..ingest.chunking import ChunkingConfig
from ..progress import NullProgress, Progress
from ..settings import EMBED
from .faiss.delta import DELTA_FRACTION
from .faiss.writer import STAGING
from .manifest import DENSE_TYPES, embedder_source, fingerprint, read_current, read_manifest
from .protocol import IngestJob, check_embedder
from .registry import STORES, store_of
from .summary import IngestSummary
from .versions import WriteLock

# A file past this many chunks keeps the first ones, with a note naming it. Chunking itself is
# linear in tokens (tests/unit/test_ingest_safety.py), so a 6 MB one-line file making 39,000
# chunks is sane chunking of a file that is mostly not prose (machine output, base64); the cap
# keeps one such file from dominating an index and its embedding time. Documents stay far below
# it: at about 500 tokens a page and 160 new tokens a chunk, a 1,000-page PDF makes about 3,100.
MAX_CHUNKS_PER_FILE = 5000
# Rows per write and checkpoint: a kill loses at most this many chunks' embedding (seconds on a
# 2-core CPU: evals/perf/ingest_speed.py), and one batch of 384-d vectors is 1.5 MB.
CHECKPOINT_ROWS = 1024
DEVICES = ("cpu", "cuda", "auto")


@dataclass
class IngestConfig:
    embed_model: str = "all-minilm-l6-v2"
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    dense_index: str | None = None  # flat | hnsw | ivf; None: the index's own, else flat
    batch_size: int | None = None  # None: settings.EMBED's, the CUDA one for the torch backend on a GPU
    embed_backend: str | None = None  # torch | onnx | onnx-int8; None: the index's own, else default_backend()
    max_chunks_per_file: int = MAX_CHUNKS_PER_FILE
    checkpoint_rows: int = CHECKPOINT_ROWS  # rows written (and checkpointed) at a time
    device: str | None = None  # cpu | cuda | auto for the torch backend; None: cuda when available
    ray: str | None = None  # None: embed here; "" a local Ray; else a Ray address (ray://head:10001)
    ray_actors: int = 1  # embedding actors in the pool
    ray_cpus: float = 2.0  # CPUs per actor (Ray sets OMP_NUM_THREADS from it)
    store: str | None = None  # a registry.STORES name; None: the index's own, else faiss
    milvus_uri: str | None = None  # None: milvus-lite file milvus.db inside the index directory
    milvus_token: str | None = field(default=None, repr=False)  # None: env RAGKIT_MILVUS_TOKEN
    milvus_analyzer: str = "ragkit"  # BM25 words: ragkit's own, or Milvus's jieba analyzer (milvus/store.py ANALYZERS)
    compact: bool = False  # rebuild the whole version even when a delta segment would do (faiss/delta.py)
    delta_fraction: float = DELTA_FRACTION  # the most a delta may hold, rows + tombstones, of the base's rows

    def embed_batch(self, backend: str) -> int:
        """Texts per embedding batch: the one given, else EMBED's (its CUDA size for torch on a GPU)."""
        if self.batch_size is not None:
            return self.batch_size
        on_gpu = backend == "torch" and resolve_device(self.device) == "cuda"
        return EMBED.cuda_batch_size if on_gpu else EMBED.batch_size

    def __post_init__(self) -> None:
        if self.store is not None and self.store not in STORES:
            raise ValueError(f"store must be one of {', '.join(STORES)}")
        if self.milvus_analyzer not in ("jieba", "ragkit"):
            raise ValueError("milvus_analyzer must be jieba or ragkit")
        if self.dense_index is not None and self.dense_index not in DENSE_TYPES:
            raise ValueError(f"dense_index must be one of {', '.join(DENSE_TYPES)}")
        if self.embed_backend is not None and self.embed_backend not in BACKENDS:
            raise ValueError(f"embed_backend must be one of {', '.join(BACKENDS)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.max_chunks_per_file < 1:
            raise ValueError("max_chunks_per_file must be >= 1")
        if not 0.0 <= self.delta_fraction <= 1.0:
            raise ValueError("delta_fraction must lie in [0, 1]")
        if self.checkpoint_rows < 1:
            raise ValueError("checkpoint_rows must be >= 1")
        if self.ray_actors < 1 or self.ray_cpus <= 0:
            raise ValueError("ray_actors must be >= 1 and ray_cpus > 0")
        if self.device is not None and self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}")


def _check_target(index_dir: Path, roots: list[Path]) -> None:
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    if index_dir.exists() and not index_dir.is_dir():
        raise UsageError(f"{index_dir} exists and is not a directory")
    if index_dir.is_dir() and any(index_dir.iterdir()) and not (index_dir / "CURRENT").exists() \
            and not (index_dir / ".lock").exists():
        raise UsageError(f"{index_dir} exists and is not a ragkit index; choose an empty or new directory")


def _check_old(old: dict, config: IngestConfig, embedder, index_dir: Path) -> None:
    check_embedder(old, embedder.name if embedder is not None else config.embed_model, index_dir)
    emb = old["embedding"]
    if emb.get("weights_sha256"):  # pinned weights: the same pin, or refused (manifest.embedder_source)
        embedder_source(old, index_dir)
    if emb.get("path") and embedder is None and fingerprint(Path(emb["path"])) != emb["fingerprint"]:
        raise IndexIncompatible(f"the local embedding model {emb['path']} changed since index {index_dir} was built; "
                                "restore it or ingest into a new index")
    old_cfg = old["chunking"]
    if (old_cfg["chunk_size"], old_cfg["chunk_overlap"]) != (config.chunking.chunk_size, config.chunking.chunk_overlap):
        raise IndexIncompatible(
            f"index {index_dir} was chunked with size {old_cfg['chunk_size']} and overlap "
            f"{old_cfg['chunk_overlap']}; pass the same settings or ingest into a new directory"
        )


def _load_embedder(config: IngestConfig, old: dict | None, embedder, index_dir: Path):
    # One index, one backend: queries and every chunk are embedded alike (int8 and fp32 differ slightly).
    built_backend = (old["embedding"].get("backend") or "torch") if old else None
    if embedder is None:
        chosen = {"cuda": "torch", "cpu": "onnx-int8"}.get(config.device or "auto") or default_backend()
        backend = config.embed_backend or built_backend or chosen
        embedder = embed.load_embedder(config.embed_model, batch_size=config.embed_batch(backend), backend=backend,
                                 device=config.device)
    if built_backend and getattr(embedder, "backend", built_backend) != built_backend:
        raise IndexIncompatible(
            f"index {index_dir} was embedded with the '{built_backend}' backend, not '{embedder.backend}'; "
            f"use --embed-backend {built_backend} or ingest into a new index"
        )
    return embedder


def ingest(
    paths: list[str | Path],
    index_dir: str | Path,
    config: IngestConfig | None = None,
    progress: Progress | None = None,
    embedder=None,
    on_file_error: Callable[[str, str], None] | None = None,
    sync: bool = False,
) -> IngestSummary:
    """Build or update the index at index_dir from the given files and folders.

    sync=True makes the index hold exactly these paths: files indexed earlier and not seen now go.
    """
    config = config or IngestConfig()
    progress = progress or NullProgress()
    index_dir = Path(index_dir)
    roots = [Path(p) for p in paths]
    _check_target(index_dir, roots)
    created = not index_dir.exists()
    index_dir.mkdir(parents=True, exist_ok=True)
    try:
        with WriteLock(index_dir):
            return _ingest_locked(roots, index_dir, config, progress, embedder, on_file_error, sync)
    except BaseException:
        # A failed first ingest leaves nothing behind, but one killed or interrupted while writing
        # keeps its staging, so that running it again resumes.
        if created and not (index_dir / "CURRENT").exists() and not (index_dir / STAGING / "plan.json").exists():
            shutil.rmtree(index_dir, ignore_errors=True)
        raise


def _ingest_locked(roots, index_dir: Path, config, progress, embedder, on_file_error, sync) -> IngestSummary:
    t0 = time.perf_counter()
    old_version = read_current(index_dir)
    old_manifest = read_manifest(old_version) if old_version else None
    # an index keeps its FAISS type unless one is named: re-ingesting an HNSW index without
    # --dense-index must not rebuild it as flat (nor turn a one-file delta into a full rebuild)
    config = replace(config, dense_index=config.dense_index or (old_manifest or {}).get("dense_index") or "flat")
    kind = STORES[store_of(index_dir, config.store, old_manifest)]
    if old_manifest is not None:
        kind.check_manifest(old_manifest, index_dir)
        _check_old(old_manifest, config, embedder, index_dir)
    if config.ray is not None and not kind.ray:
        raise UsageError(f"--ray embeds for the FAISS store only; drop --ray for a {kind.name} index")
    passed_in = embedder is not None
    embedder = _load_embedder(config, old_manifest, embedder, index_dir)
    summary = kind.ingest(IngestJob(roots, index_dir, config, progress, embedder, passed_in, on_file_error, sync,
                                    old_version, old_manifest))
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary
