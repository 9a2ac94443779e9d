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
from ..errors import IndexDamaged, IndexIncompatible, RagkitError, UsageError
from ..hashing import bytes_hash
from ..ingest.chunking import ChunkingConfig, chunk_documents, chunk_id
from ..ingest.discover import Found, scan
from ..ingest.loaders import LoadError, load_file_noted, read_file_bytes
from ..lang import tokenize_for_search
from ..progress import NullProgress, Progress
from ..types import Chunk
from .bm25 import BM25Index
from .manifest import DENSE_TYPES, artifact_sizes, check_artifacts, fingerprint, local_model_dir
from .sources import assign_sources, is_gone
from .store import FORMAT_VERSION, check_embedder, read_current, read_manifest
from .versions import WriteLock, reap, swap

_swap = swap  # tests interrupt the swap through this name
# A file past this many chunks keeps the first ones, with a note naming it. Chunking itself is
# linear in tokens (tests/unit/test_ingest_safety.py), so a 6 MB one-line file making 39,000
# chunks is sane chunking of a file that is mostly not prose (machine output, base64); the cap
# keeps one such file from dominating an index and its embedding time. Documents stay far below
# it: at about 500 tokens a page and 160 new tokens a chunk, a 1,000-page PDF makes about 3,100.
MAX_CHUNKS_PER_FILE = 5000


@dataclass
class IngestConfig:
    embed_model: str = "all-minilm-l6-v2"
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    dense_index: str = "flat"
    batch_size: int = 64
    embed_backend: str | None = None  # torch | onnx | onnx-int8; None: the index's own, else default_backend()
    max_chunks_per_file: int = MAX_CHUNKS_PER_FILE

    def __post_init__(self) -> None:
        if self.dense_index not in DENSE_TYPES:
            raise ValueError(f"dense_index must be one of {', '.join(DENSE_TYPES)}")
        if self.embed_backend is not None and self.embed_backend not in BACKENDS:
            raise ValueError(f"embed_backend must be one of {', '.join(BACKENDS)}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.max_chunks_per_file < 1:
            raise ValueError("max_chunks_per_file must be >= 1")


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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        d["notes"] = [{"path": p, "note": n} for p, n in self.notes]
        return d




def _load_old(version: Path | None) -> tuple[dict | None, dict[str, list[tuple[Chunk, str, int]]]]:
    """Old manifest, and per source its chunks with their BM25 tokens and embedding row.

    Only chunks of the file's recorded content are kept: an index written by an older ragkit
    that gave two files one name held both files' chunks under it, and failed on every ingest
    after (UNIQUE chunk_id); reading it this way repairs it.
    """
    if version is None:
        return None, {}
    manifest = read_manifest(version)
    check_artifacts(version, manifest, ("chunks.sqlite", "embeddings.npy"))
    files = manifest["files"]
    by_source: dict[str, list[tuple[Chunk, str, int]]] = {}
    try:
        db = sqlite3.connect(f"file:{version / 'chunks.sqlite'}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT row, chunk_id, source, text, start, end, page, title, metadata, tokens "
                              "FROM chunks ORDER BY row").fetchall()
        finally:
            db.close()
        for row, cid, source, text, start, end, page, title, meta, tokens in rows:
            info = files.get(source)
            if info is None or not cid.startswith(chunk_id(source, info["sha256"], 0, 0).split("-")[0] + "-"):
                continue
            chunk = Chunk(cid, source, text, start, end, page, title, json.loads(meta) if meta else {})
            by_source.setdefault(source, []).append((chunk, tokens, row))
    except (sqlite3.DatabaseError, ValueError, TypeError, AttributeError) as e:
        raise IndexDamaged(f"index {version.parent} is damaged: chunks.sqlite is unreadable ({e}); "
                           "ingest into a new directory") from None
    return manifest, by_source


def _old_vectors(version: Path, manifest: dict) -> np.ndarray:
    try:
        v = np.load(version / "embeddings.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise IndexDamaged(f"index {version.parent} is damaged: embeddings.npy is unreadable ({e}); "
                           "ingest into a new directory") from None
    if v.shape != (manifest["n_chunks"], manifest["embedding"]["dim"]):
        raise IndexDamaged(f"index {version.parent} is damaged: embeddings.npy has shape {v.shape}; "
                           "ingest into a new directory")
    return v


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

    ids = [c.chunk_id for c, _ in chunks]
    if len(set(ids)) != len(ids):  # cannot happen with unique sources; never write a version that fails
        dup = next(i for i in ids if ids.count(i) > 1)
        raise RagkitError(f"internal error: chunk id {dup} would be stored twice; nothing was changed, "
                          "please report this")
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
    manifest["artifacts"] = artifact_sizes(version)  # lets a reader name a truncated file (manifest.py)
    (version / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    for f in version.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())


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

        backend = config.embed_backend or built_backend or default_backend()
        embedder = load_embedder(config.embed_model, batch_size=config.batch_size, backend=backend)
    if built_backend and getattr(embedder, "backend", built_backend) != built_backend:
        raise IndexIncompatible(
            f"index {index_dir} was embedded with the '{built_backend}' backend, not '{embedder.backend}'; "
            f"use --embed-backend {built_backend} or ingest into a new index"
        )
    return embedder


def _read_one(f: Found, source: str, digest: str, config: IngestConfig, embedder, summary: IngestSummary):
    """(digest, chunks) of a file, or (None, reason) when it cannot be read or parsed."""
    try:
        docs, notes = load_file_noted(f.path, source)
        chunks = chunk_documents(docs, digest, config.chunking, embedder.count_tokens)
        if not chunks:
            raise LoadError("no text after chunking")
    except LoadError as e:
        return None, str(e)
    summary.notes.extend((str(f.path), n) for n in notes)
    if len(chunks) > config.max_chunks_per_file:
        summary.notes.append((str(f.path), f"{len(chunks)} chunks, over the per-file cap of "
                                           f"{config.max_chunks_per_file}: only the first ones are indexed"))
        chunks = chunks[: config.max_chunks_per_file]
    return digest, chunks


def _collect(assigned: dict[str, Found], old_files: dict, old_chunks: dict, config, embedder, summary, progress):
    """Chunks of every file seen (new ones with tokens and no vector row yet) and their manifest entries."""
    new_files: dict[str, dict] = {}
    kept: list[tuple[Chunk, str, int | None]] = []  # chunk, tokens, old embedding row or None
    progress.stage("reading files", len(assigned))
    for source, f in assigned.items():
        prev = old_files.get(source)
        have_old = prev is not None and source in old_chunks
        try:
            digest = bytes_hash(read_file_bytes(f.path))
        except LoadError as e:
            digest, chunks = None, str(e)
        if have_old and digest == prev["sha256"]:
            kept.extend(old_chunks[source])
            new_files[source] = prev
            summary.files_unchanged += 1
            progress.advance()
            continue
        if digest is not None:
            digest, chunks = _read_one(f, source, digest, config, embedder, summary)
        if digest is None:
            reason = chunks + ("; kept its last indexed version" if have_old else "")
            summary.skipped.append((str(f.path), reason))
            if have_old:  # unreadable or broken now: keep the last good version rather than lose it
                kept.extend(old_chunks[source])
                new_files[source] = prev
            progress.advance()
            continue
        if prev:
            summary.files_changed += 1
        else:
            summary.files_added += 1
        kept.extend((c, " ".join(tokenize_for_search(c.text)), None) for c in chunks)
        new_files[source] = {"sha256": digest, "root": f.root.as_posix(), "path": f.rel, "chunks": len(chunks),
                             "size": f.path.stat().st_size}
        progress.advance()
    progress.done()
    return kept, new_files


def _embed(kept, embedder, old_version: Path | None, old: dict | None, progress) -> tuple[np.ndarray, int]:
    to_embed = [i for i, (_, _, row) in enumerate(kept) if row is None]
    vectors = np.zeros((len(kept), embedder.dim), dtype=np.float32)
    reused = [i for i, (_, _, row) in enumerate(kept) if row is not None]
    if reused:
        vectors[reused] = _old_vectors(old_version, old)[[kept[i][2] for i in reused]]
    progress.stage("embedding chunks", len(to_embed))
    if to_embed:
        vectors[to_embed] = embedder.embed([kept[i][0].text for i in to_embed], on_batch=progress.advance)
    progress.done()
    return vectors, len(to_embed)


def _embedding_entry(embedder, config: IngestConfig, old: dict | None) -> dict:
    from ..models import model_info

    info = model_info(embedder.name)
    entry = {
        "model": embedder.name,
        "dim": embedder.dim,
        "languages": list(info.languages) if info else None,
        "backend": getattr(embedder, "backend", None),
    }
    from ..embed import _REGISTRY

    local = local_model_dir(config.embed_model) if config.embed_model not in _REGISTRY else None
    if old and old["embedding"].get("path"):
        entry["path"], entry["fingerprint"] = old["embedding"]["path"], old["embedding"]["fingerprint"]
    elif local is not None:  # a local directory: by absolute path and content, never by its basename
        entry["path"], entry["fingerprint"] = str(local), fingerprint(local)
    return entry


def _unchanged(old: dict | None, old_version: Path | None, new_files: dict, roots: dict, config) -> bool:
    """True when the live version already holds exactly what this ingest would write."""
    if old is None or new_files != old["files"] or roots != (old.get("roots") or roots) \
            or old["dense_index"] != config.dense_index:
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
        if created and not (index_dir / "CURRENT").exists():  # a failed first ingest leaves nothing behind
            shutil.rmtree(index_dir, ignore_errors=True)
        raise


def _ingest_locked(roots, index_dir: Path, config, progress, embedder, on_file_error, sync) -> IngestSummary:
    t0 = time.perf_counter()
    summary = IngestSummary(index=str(index_dir))
    old_version = read_current(index_dir)
    old_manifest, old_chunks = _load_old(old_version)
    if old_manifest is not None:
        _check_old(old_manifest, config, embedder, index_dir)
    embedder = _load_embedder(config, old_manifest, embedder, index_dir)

    found, summary.skipped = scan(roots)
    old_files = old_manifest["files"] if old_manifest else {}
    assigned, clashes, root_labels = assign_sources(found, old_files, (old_manifest or {}).get("roots") or {})
    summary.skipped += clashes
    summary.files_seen = len(found) + len(summary.skipped)
    kept, new_files = _collect(assigned, old_files, old_chunks, config, embedder, summary, progress)
    if on_file_error:
        for path, reason in summary.skipped:
            on_file_error(path, reason)

    walked = sorted({p.resolve().as_posix() for p in roots if p.is_dir()})
    for source, info in old_files.items():
        if source in new_files:
            continue
        if is_gone(source, info, walked, sync):
            summary.files_deleted += 1
        elif source in old_chunks:
            kept.extend(old_chunks[source])
            new_files[source] = info
    new_files = dict(sorted(new_files.items()))
    used = {info.get("root") for info in new_files.values()}
    root_labels = {r: lb for r, lb in sorted(root_labels.items()) if r in used}

    if not kept:
        reasons = "; ".join(f"{p}: {r}" for p, r in summary.skipped[:3])
        raise UsageError(
            "no readable documents found" + (f" ({reasons})" if reasons else f" in {', '.join(map(str, roots))}")
            + "; supported types: .txt .md .html .pdf .docx .csv .jsonl"
        )
    summary.chunks = len(kept)
    if _unchanged(old_manifest, old_version, new_files, root_labels, config):
        summary.version = old_version.name
        reap(index_dir, old_version)
        summary.seconds = round(time.perf_counter() - t0, 2)
        return summary
    vectors, summary.chunks_embedded = _embed(kept, embedder, old_version, old_manifest, progress)

    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    manifest = {
        "format": FORMAT_VERSION,
        "ragkit_version": __version__,
        "created": (old_manifest.get("created") or now) if old_manifest else now,
        "updated": now,
        "embedding": _embedding_entry(embedder, config, old_manifest),
        "chunking": {**asdict(config.chunking), "unit": f"tokens of {embedder.name}"},
        "dense_index": config.dense_index,
        "fusion": old_manifest.get("fusion", {}) if old_manifest else {},
        "n_chunks": len(kept),
        "roots": root_labels,
        "files": new_files,
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
    summary.version, summary.version_written = version.name, True
    reap(index_dir, version)
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary
