"""`ragkit ingest`: files → chunks → embeddings → a new index version, swapped in atomically.

Incremental by content hash: unchanged files keep their chunks and vectors, changed files are
re-chunked and re-embedded, files gone from the ingested folders are dropped. The new version is
written beside the old one and becomes live by an atomic rename of CURRENT, so a crash or Ctrl-C
leaves the old index intact; a lock file keeps two ingests from writing one index at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..embed import BACKENDS
from ..errors import IndexIncompatible, IndexLocked, UsageError
from ..hashing import file_hash
from ..ingest.chunking import ChunkingConfig, chunk_documents
from ..ingest.loaders import LoadError, discover, load_file
from ..lang import tokenize_for_search
from ..progress import NullProgress, Progress
from ..types import Chunk
from .bm25 import BM25Index
from .store import FORMAT_VERSION, check_embedder, read_current, read_manifest

DENSE_TYPES = ("flat", "hnsw", "ivf")


@dataclass
class IngestConfig:
    embed_model: str = "all-minilm-l6-v2"
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    dense_index: str = "flat"
    batch_size: int = 64
    embed_backend: str | None = None  # torch | onnx | onnx-int8; None: the index's own, else default_backend()

    def __post_init__(self) -> None:
        if self.dense_index not in DENSE_TYPES:
            raise ValueError(f"dense_index must be one of {', '.join(DENSE_TYPES)}")
        if self.embed_backend is not None and self.embed_backend not in BACKENDS:
            raise ValueError(f"embed_backend must be one of {', '.join(BACKENDS)}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


@dataclass
class IngestSummary:
    index: str
    files_seen: int = 0
    files_added: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    chunks: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        return d


class _Lock:
    def __init__(self, directory: Path):
        self.path = directory / ".lock"
        self.fd: int | None = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            holder = self.path.read_text().strip() or "another process"
            raise IndexLocked(
                f"index {self.path.parent} is being written by another ragkit ingest (pid {holder}); "
                "wait for it to finish and run again"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc):
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _load_old(version: Path | None) -> tuple[dict | None, dict[str, list[tuple[Chunk, str, int]]]]:
    """Old manifest, and per source its chunks with their BM25 tokens and embedding row."""
    if version is None:
        return None, {}
    manifest = read_manifest(version)
    by_source: dict[str, list[tuple[Chunk, str, int]]] = {}
    db = sqlite3.connect(f"file:{version / 'chunks.sqlite'}?mode=ro", uri=True)
    for row, cid, source, text, start, end, page, title, meta, tokens in db.execute(
        "SELECT row, chunk_id, source, text, start, end, page, title, metadata, tokens FROM chunks ORDER BY row"
    ):
        chunk = Chunk(cid, source, text, start, end, page, title, json.loads(meta) if meta else {})
        by_source.setdefault(source, []).append((chunk, tokens, row))
    db.close()
    return manifest, by_source


def _build_faiss(vectors: np.ndarray, kind: str):
    import faiss

    dim = vectors.shape[1]
    n = len(vectors)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    elif kind == "ivf" and n >= 256:
        nlist = max(1, min(4096, int(np.sqrt(n))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(nlist, 16)
    else:  # flat, or IVF on a corpus too small to train clusters
        index = faiss.IndexFlatIP(dim)
    if n:
        index.add(vectors)
    return index


def _write_version(
    version: Path,
    manifest: dict,
    chunks: list[tuple[Chunk, str]],
    vectors: np.ndarray,
    dense_kind: str,
) -> None:
    import faiss

    version.mkdir(parents=True)
    db = sqlite3.connect(version / "chunks.sqlite")
    db.execute(
        "CREATE TABLE chunks (row INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE, source TEXT, text TEXT, "
        "start INTEGER, end INTEGER, page INTEGER, title TEXT, metadata TEXT, tokens TEXT)"
    )
    db.executemany(
        "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            (i, c.chunk_id, c.source, c.text, c.start, c.end, c.page, c.title,
             json.dumps(c.metadata, ensure_ascii=False), tokens)
            for i, (c, tokens) in enumerate(chunks)
        ],
    )
    db.execute("CREATE INDEX by_source ON chunks(source)")
    db.commit()
    db.close()
    np.save(version / "embeddings.npy", vectors, allow_pickle=False)
    faiss.write_index(_build_faiss(vectors, dense_kind), str(version / "dense.faiss"))
    BM25Index.build([t.split(" ") if t else [] for _, t in chunks]).save(version / "bm25")
    (version / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    for f in version.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())


def _swap(directory: Path, version: Path) -> None:
    tmp = directory / "CURRENT.tmp"
    tmp.write_text(version.name, encoding="utf-8")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, directory / "CURRENT")  # the atomic step: readers see old or new, never half
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _remove_stale(directory: Path, keep: Path) -> None:
    for d in directory.glob("v-*"):
        if d.is_dir() and d != keep:
            shutil.rmtree(d, ignore_errors=True)


def ingest(
    paths: list[str | Path],
    index_dir: str | Path,
    config: IngestConfig | None = None,
    progress: Progress | None = None,
    embedder=None,
    on_file_error: Callable[[str, str], None] | None = None,
) -> IngestSummary:
    """Build or update the index at index_dir from the given files and folders."""
    config = config or IngestConfig()
    progress = progress or NullProgress()
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    roots = [Path(p) for p in paths]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    if index_dir.exists() and not index_dir.is_dir():
        raise UsageError(f"{index_dir} exists and is not a directory")
    if index_dir.is_dir() and any(index_dir.iterdir()) and not (index_dir / "CURRENT").exists() \
            and not (index_dir / ".lock").exists():
        raise UsageError(f"{index_dir} exists and is not a ragkit index; choose an empty or new directory")
    index_dir.mkdir(parents=True, exist_ok=True)
    summary = IngestSummary(index=str(index_dir))

    with _Lock(index_dir):
        old_version = read_current(index_dir)
        old_manifest, old_chunks = _load_old(old_version)
        if old_manifest is not None:
            if old_manifest.get("format") != FORMAT_VERSION:
                raise IndexIncompatible(f"index {index_dir} has an older format; ingest into a new directory")
            check_embedder(old_manifest, embedder.name if embedder is not None else config.embed_model, index_dir)
            old_cfg = old_manifest["chunking"]
            if (old_cfg["chunk_size"], old_cfg["chunk_overlap"]) != (
                config.chunking.chunk_size, config.chunking.chunk_overlap
            ):
                raise IndexIncompatible(
                    f"index {index_dir} was chunked with size {old_cfg['chunk_size']} and overlap "
                    f"{old_cfg['chunk_overlap']}; pass the same settings or ingest into a new directory"
                )
        # One index, one backend: queries and every chunk are embedded alike (int8 and fp32 differ slightly).
        built_backend = (old_manifest["embedding"].get("backend") or "torch") if old_manifest else None
        if embedder is None:
            from ..embed import default_backend, load_embedder

            backend = config.embed_backend or built_backend or default_backend()
            embedder = load_embedder(config.embed_model, batch_size=config.batch_size, backend=backend)
        if built_backend and getattr(embedder, "backend", built_backend) != built_backend:
            raise IndexIncompatible(
                f"index {index_dir} was embedded with the '{built_backend}' backend, not '{embedder.backend}'; "
                f"use --embed-backend {built_backend} or ingest into a new index"
            )

        found = discover(roots)
        summary.files_seen = len(found)
        root_strs = sorted({str(r) for r, _, _ in found} | {str(p.resolve()) for p in roots if p.is_dir()})
        old_files = old_manifest["files"] if old_manifest else {}
        new_files: dict[str, dict] = {}
        kept: list[tuple[Chunk, str, int | None]] = []  # chunk, tokens, old embedding row or None
        seen_sources: set[str] = set()

        progress.stage("reading files", len(found))
        for root, path, source in found:
            seen_sources.add(source)
            try:
                digest = file_hash(path)
            except OSError as e:
                summary.skipped.append((str(path), f"cannot read ({e.strerror or e})"))
                progress.advance()
                continue
            prev = old_files.get(source)
            if prev and prev["sha256"] == digest and source in old_chunks:
                kept.extend((c, tok, row) for c, tok, row in old_chunks[source])
                new_files[source] = prev
                summary.files_unchanged += 1
                progress.advance()
                continue
            try:
                docs = load_file(path, source)
                chunks = chunk_documents(docs, digest, config.chunking, embedder.count_tokens)
                if not chunks:
                    raise LoadError("no text after chunking")
            except LoadError as e:
                summary.skipped.append((str(path), str(e)))
                if on_file_error:
                    on_file_error(str(path), str(e))
                if prev and source in old_chunks:  # keep the last good version rather than lose it
                    kept.extend((c, tok, row) for c, tok, row in old_chunks[source])
                    new_files[source] = prev
                progress.advance()
                continue
            if prev:
                summary.files_changed += 1
            else:
                summary.files_added += 1
            kept.extend((c, " ".join(tokenize_for_search(c.text)), None) for c in chunks)
            new_files[source] = {"sha256": digest, "root": str(root), "chunks": len(chunks), "size": path.stat().st_size}
            progress.advance()
        progress.done()

        # Files indexed earlier from another folder stay; those gone from an ingested folder are dropped.
        for source, info in old_files.items():
            if source in new_files or source in seen_sources:
                continue
            if info.get("root") in root_strs:
                summary.files_deleted += 1
            elif source in old_chunks:
                kept.extend((c, tok, row) for c, tok, row in old_chunks[source])
                new_files[source] = info

        if not kept:
            reasons = "; ".join(f"{p}: {r}" for p, r in summary.skipped[:3])
            raise UsageError(
                "no readable documents found" + (f" ({reasons})" if reasons else f" in {', '.join(map(str, roots))}")
                + "; supported types: .txt .md .html .pdf .docx .csv .jsonl"
            )
        to_embed = [i for i, (_, _, row) in enumerate(kept) if row is None]
        vectors = np.zeros((len(kept), embedder.dim), dtype=np.float32)
        reused = [i for i, (_, _, row) in enumerate(kept) if row is not None]
        if reused:
            old_vecs = np.load(old_version / "embeddings.npy", mmap_mode="r", allow_pickle=False)
            vectors[reused] = old_vecs[[kept[i][2] for i in reused]]
        progress.stage("embedding chunks", len(to_embed))
        if to_embed:
            vectors[to_embed] = embedder.embed([kept[i][0].text for i in to_embed], on_batch=progress.advance)
        progress.done()
        summary.chunks_embedded = len(to_embed)
        summary.chunks = len(kept)

        from ..models import model_info

        info = model_info(embedder.name)
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest = {
            "format": FORMAT_VERSION,
            "ragkit_version": __version__,
            "created": old_manifest["created"] if old_manifest else now,
            "updated": now,
            "embedding": {
                "model": embedder.name,
                "dim": embedder.dim,
                "languages": list(info.languages) if info else None,
                "backend": getattr(embedder, "backend", None),
            },
            "chunking": {**asdict(config.chunking), "unit": f"tokens of {embedder.name}"},
            "dense_index": config.dense_index,
            "fusion": old_manifest.get("fusion", {}) if old_manifest else {},
            "n_chunks": len(kept),
            "files": dict(sorted(new_files.items())),
        }
        progress.stage("writing index", 1)
        version = index_dir / f"v-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{int(time.time_ns() % 10**6)}"
        try:
            _write_version(version, manifest, [(c, t) for c, t, _ in kept], vectors, config.dense_index)
            _swap(index_dir, version)
        except BaseException:
            shutil.rmtree(version, ignore_errors=True)
            raise
        progress.advance()
        progress.done()
        _remove_stale(index_dir, version)
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary
