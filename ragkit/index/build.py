"""`ragkit ingest`: files → chunks → embeddings → a new index version, swapped in atomically.

Incremental by content hash: unchanged files keep their chunks and vectors, changed files are
re-chunked and re-embedded, files gone from disk under an ingested folder are dropped (files from
other roots stay; `sync=True` drops every file this ingest did not see). A file that cannot be
read or parsed any more keeps its last good version. A re-ingest that changes nothing writes no
new version. A new version is written beside the old one and becomes live by an atomic rename of
CURRENT, so a crash or Ctrl-C leaves the old index intact; old versions stay for readers until
reaped (versions.py); a lock file keeps two ingests from writing one index at once.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .. import __version__
from ..embed import BACKENDS
from ..errors import IndexDamaged, IndexIncompatible, RagkitError, UsageError
from ..ingest.chunking import ChunkingConfig
from ..ingest.discover import scan
from ..progress import NullProgress, Progress
from . import stream
from .delta import DELTA_FRACTION, DeltaWriter, plan_delta
from .manifest import DENSE_TYPES, check_artifacts, embedder_source, fingerprint, local_model_dir
from .sources import assign_sources
from .store import FORMAT_VERSION, check_embedder, read_current, read_manifest
from .versions import WriteLock, reap, swap
from .writer import STAGING, FaissWriter

_swap = swap  # tests interrupt the swap through this name
# A file past this many chunks keeps the first ones, with a note naming it. Chunking itself is
# linear in tokens (tests/unit/test_ingest_safety.py), so a 6 MB one-line file making 39,000
# chunks is sane chunking of a file that is mostly not prose (machine output, base64); the cap
# keeps one such file from dominating an index and its embedding time. Documents stay far below
# it: at about 500 tokens a page and 160 new tokens a chunk, a 1,000-page PDF makes about 3,100.
MAX_CHUNKS_PER_FILE = 5000
# Rows per write and checkpoint: a kill loses at most this many chunks' embedding (about 20 s at
# 48 chunks/s on this 2-core CPU), and one batch of 384-d vectors is 1.5 MB.
CHECKPOINT_ROWS = 1024
DEVICES = ("cpu", "cuda", "auto")


@dataclass
class IngestConfig:
    embed_model: str = "all-minilm-l6-v2"
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    dense_index: str | None = None  # flat | hnsw | ivf; None: the index's own, else flat
    batch_size: int = 64
    embed_backend: str | None = None  # torch | onnx | onnx-int8; None: the index's own, else default_backend()
    max_chunks_per_file: int = MAX_CHUNKS_PER_FILE
    checkpoint_rows: int = CHECKPOINT_ROWS  # rows written (and checkpointed) at a time
    device: str | None = None  # cpu | cuda | auto for the torch backend; None: cuda when available
    ray: str | None = None  # None: embed here; "" a local Ray; else a Ray address (ray://head:10001)
    ray_actors: int = 1  # embedding actors in the pool
    ray_cpus: float = 2.0  # CPUs per actor (Ray sets OMP_NUM_THREADS from it)
    store: str | None = None  # faiss | milvus; None: the index's own, else faiss (see milvus_build.py)
    milvus_uri: str | None = None  # None: milvus-lite file milvus.db inside the index directory
    milvus_token: str | None = field(default=None, repr=False)  # None: env RAGKIT_MILVUS_TOKEN
    milvus_analyzer: str = "ragkit"  # BM25 words: ragkit's own, or Milvus's jieba analyzer (milvus.ANALYZERS)
    compact: bool = False  # rebuild the whole version even when a delta segment would do (delta.py)
    delta_fraction: float = DELTA_FRACTION  # the most a delta may hold, rows + tombstones, of the base's rows

    def __post_init__(self) -> None:
        if self.store not in (None, "faiss", "milvus"):
            raise ValueError("store must be faiss or milvus")
        if self.milvus_analyzer not in ("jieba", "ragkit"):
            raise ValueError("milvus_analyzer must be jieba or ragkit")
        if self.dense_index is not None and self.dense_index not in DENSE_TYPES:
            raise ValueError(f"dense_index must be one of {', '.join(DENSE_TYPES)}")
        if self.embed_backend is not None and self.embed_backend not in BACKENDS:
            raise ValueError(f"embed_backend must be one of {', '.join(BACKENDS)}")
        if self.batch_size < 1:
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


@dataclass
class IngestSummary:
    index: str
    files_seen: int = 0
    files_added: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (path, what was guessed or warned) for read files
    chunks: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    version: str | None = None  # the live version after this ingest
    version_written: bool = False  # False when nothing changed and the old version stays live
    delta: dict | None = None  # the written version's delta segment (delta.py), None for a whole one

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        d["notes"] = [{"path": p, "note": n} for p, n in self.notes]
        return d




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
        from ..embed import default_backend, load_embedder

        chosen = {"cuda": "torch", "cpu": "onnx-int8"}.get(config.device or "auto") or default_backend()
        backend = config.embed_backend or built_backend or chosen
        embedder = load_embedder(config.embed_model, batch_size=config.batch_size, backend=backend,
                                 device=config.device)
    if built_backend and getattr(embedder, "backend", built_backend) != built_backend:
        raise IndexIncompatible(
            f"index {index_dir} was embedded with the '{built_backend}' backend, not '{embedder.backend}'; "
            f"use --embed-backend {built_backend} or ingest into a new index"
        )
    return embedder


def embedding_entry(embedder, config: IngestConfig, old: dict | None) -> dict:
    from ..models import model_info

    info = model_info(embedder.name)
    entry = {
        "model": embedder.name,
        "dim": embedder.dim,
        "languages": list(info.languages) if info else None,
        "backend": getattr(embedder, "backend", None),
    }
    if getattr(embedder, "weights_sha256", None):  # a bundled model whose weights ragkit pins (embed/e5.py)
        entry["weights_sha256"] = embedder.weights_sha256
    from ..embed import is_registered

    local = local_model_dir(config.embed_model) if not is_registered(config.embed_model) else None
    if old and old["embedding"].get("path"):
        entry["path"], entry["fingerprint"] = old["embedding"]["path"], old["embedding"]["fingerprint"]
    elif local is not None:  # a local directory: by absolute path and content, never by its basename
        entry["path"], entry["fingerprint"] = str(local), fingerprint(local)
    return entry


def _unchanged(old: dict | None, old_version: Path | None, new_files: dict, roots: dict, config) -> bool:
    """True when the live version already holds exactly what this ingest would write."""
    if old is None or new_files != old["files"] or roots != (old.get("roots") or roots) \
            or old["dense_index"] != config.dense_index or (config.compact and "delta" in old):
        return False
    try:
        check_artifacts(old_version, old)  # a truncated dense.faiss or bm25 file is rebuilt, not kept
    except IndexDamaged:
        return False
    return True


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




def fusion_entry(model: str) -> dict:
    """A new index's `fusion`: empty for the defaults, else the embedder's own weights (hybrid.py)."""
    from .hybrid import FusionWeights, default_fusion

    weights = default_fusion(model)
    return {} if weights == FusionWeights() else asdict(weights)


def new_manifest(embedder, config, old: dict | None, n_chunks: int, roots: dict, files: dict) -> dict:
    """The manifest of a version about to be written (either store; Milvus adds its own keys)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {
        "format": FORMAT_VERSION,
        "ragkit_version": __version__,
        "created": (old.get("created") or now) if old else now,
        "updated": now,
        "embedding": embedding_entry(embedder, config, old),
        "chunking": {**asdict(config.chunking), "unit": f"tokens of {embedder.name}"},
        "dense_index": config.dense_index,
        "fusion": old.get("fusion", {}) if old else fusion_entry(embedder.name),
        "n_chunks": n_chunks,
        "roots": roots,
        "files": files,
    }


def no_documents(summary: IngestSummary, roots: list[Path]) -> UsageError:
    reasons = "; ".join(f"{p}: {r}" for p, r in summary.skipped[:3])
    return UsageError(
        "no readable documents found" + (f" ({reasons})" if reasons else f" in {', '.join(map(str, roots))}")
        + "; supported types: .txt .md .html .pdf .docx .csv .jsonl"
    )


def used_roots(root_labels: dict, new_files: dict) -> dict:
    used = {info.get("root") for info in new_files.values()}
    return {r: lb for r, lb in sorted(root_labels.items()) if r in used}


def _ingest_locked(roots, index_dir: Path, config, progress, embedder, on_file_error, sync) -> IngestSummary:
    t0 = time.perf_counter()
    old_version = read_current(index_dir)
    old_manifest = read_manifest(old_version) if old_version else None
    # an index keeps its FAISS type unless one is named: re-ingesting an HNSW index without
    # --dense-index must not rebuild it as flat (nor turn a one-file delta into a full rebuild)
    config = replace(config, dense_index=config.dense_index or (old_manifest or {}).get("dense_index") or "flat")
    if old_manifest is not None:
        _check_old(old_manifest, config, embedder, index_dir)
    from .milvus_build import store_of  # store dispatch: the Milvus store's ingest lives in its own module

    if store_of(index_dir, config.store, old_manifest) == "milvus":
        from .milvus_build import ingest_milvus

        if config.ray is not None:
            raise UsageError("--ray embeds for the FAISS store only; drop --ray for a Milvus index")
        embedder = _load_embedder(config, old_manifest, embedder, index_dir)
        summary = ingest_milvus(roots, index_dir, config, progress, embedder, on_file_error, sync, old_version,
                                old_manifest)
        summary.seconds = round(time.perf_counter() - t0, 2)
        return summary
    old = stream.OldVersion(old_version, old_manifest) if old_version else None
    try:
        passed_in = embedder is not None
        embedder = _load_embedder(config, old_manifest, embedder, index_dir)
        summary = _run(roots, index_dir, config, progress, (embedder, passed_in), on_file_error, sync, old)
    finally:
        if old is not None:
            old.close()
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary


def _run(roots, index_dir: Path, config, progress, embedders, on_file_error, sync, old) -> IngestSummary:
    embedder, passed_in = embedders
    found, skipped = scan(roots)
    old_files = old.files if old else {}
    assigned, clashes, root_labels = assign_sources(found, old_files, (old.manifest if old else {}).get("roots") or {})
    progress.stage("hashing files", 1)
    entries, deleted = stream.plan(assigned, old, roots, sync, rehash=config.compact)
    progress.advance()
    progress.done()
    old_manifest, old_version = (old.manifest, old.path) if old else (None, None)
    if all(e.same or (e.digest is None and e.have_old) for e in entries):  # nothing to read
        summary = IngestSummary(index=str(index_dir), skipped=skipped + clashes, files_deleted=deleted)
        files = {e.source: e.prev for e in entries}
        summary.files_unchanged = sum(1 for e in entries if e.same and e.found is not None)
        summary.skipped += [(str(e.found.path), e.error + "; kept its last indexed version")
                            for e in entries if not e.same]
        summary.files_seen = len(found) + len(skipped) + len(clashes)
        if not entries:
            raise no_documents(summary, roots)
        if _unchanged(old_manifest, old_version, dict(sorted(files.items())), used_roots(root_labels, files), config):
            if on_file_error:
                for path, reason in summary.skipped:
                    on_file_error(path, reason)
            summary.chunks, summary.version = old_manifest["n_chunks"], old_version.name
            reap(index_dir, old_version)
            return summary
    settings = {"chunking": asdict(config.chunking), "dense_index": config.dense_index, "model": embedder.name,
                "backend": getattr(embedder, "backend", None), "max_chunks_per_file": config.max_chunks_per_file}
    embed = None
    if config.ray is not None:  # embedding on a Ray actor pool; reading and chunking stay here
        from .ray_embed import RayEmbed

        embed = RayEmbed(config, embedder, passed_in)
    delta = plan_delta(old, entries, config)  # few files changed: a delta segment beside the base (delta.py)
    streamed = entries if delta is None else delta.entries

    def new_writer():
        key = stream.key(streamed, old, settings)
        if delta is None:
            return FaissWriter(index_dir, embedder.dim, config.dense_index, key)
        return DeltaWriter(index_dir, embedder.dim, delta, key)

    writer = new_writer()
    try:
        for _attempt in range(2):
            try:
                summary, new_files = _stream(streamed, old, config, embedder, writer, progress, embed)
                if delta is not None:
                    delta.fill(summary, new_files)
                summary.skipped[:0] = skipped + clashes
                summary.index, summary.files_deleted = str(index_dir), deleted
                summary.files_seen = len(found) + len(skipped) + len(clashes)
                break
            except stream.StaleStaging:  # rows of another stream: start this staging over, once
                writer.discard()
                writer = new_writer()
        progress.done()
        if on_file_error:
            for path, reason in summary.skipped:
                on_file_error(path, reason)
        new_files = dict(sorted(new_files.items()))
        root_labels = used_roots(root_labels, new_files)
        summary.chunks = writer.chunks
        if not writer.chunks:
            raise no_documents(summary, roots)
        if _unchanged(old_manifest, old_version, new_files, root_labels, config):  # every changed file failed
            writer.discard()
            summary.version = old_version.name
            reap(index_dir, old_version)
            return summary
        _publish(index_dir, writer, new_manifest(embedder, config, old_manifest, writer.chunks, root_labels, new_files),
                 progress, summary)
    except RagkitError:
        writer.discard()  # a refused ingest starts over next time; a killed one resumes
        raise
    return summary


def _stream(entries, old, config, embedder, writer, progress, embed) -> tuple[IngestSummary, dict]:
    summary, new_files = IngestSummary(index=""), {}
    window = embed.window if embed is not None else 1
    estimate = stream.Estimate(entries, config.chunking.chunk_size - config.chunking.chunk_overlap)
    progress.stage("embedding chunks", estimate.total())
    def embed_groups(groups: list[list[str]]) -> list:
        if embed is None:
            return [embedder.embed(g, on_batch=progress.advance) for g in groups]
        out = embed(groups)
        progress.advance(sum(map(len, groups)))  # Ray's actors report no progress of their own: per window
        return out

    summary.chunks_embedded = stream.write(
        stream.items(entries, old, config, embedder, summary, new_files, estimate), writer, embed_groups, old,
        config.checkpoint_rows, on_batch=lambda n: progress.set_total(estimate.total()), estimate=estimate,
        window=window)
    return summary, new_files


def _publish(index_dir: Path, writer, manifest: dict, progress, summary: IngestSummary) -> None:
    progress.stage("writing index", 1)
    version = index_dir / f"v-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{int(time.time_ns() % 10**6)}"
    writer.finish(manifest, version)
    try:
        _swap(index_dir, version)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    progress.advance()
    progress.done()
    summary.version, summary.version_written = version.name, True
    summary.delta = manifest.get("delta")
    reap(index_dir, version)
