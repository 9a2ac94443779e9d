"""The FAISS store's ingest: files → chunks → embeddings → a new version directory, swapped in atomically.

Incremental by content hash: unchanged files keep their chunks and vectors, changed files are
re-chunked and re-embedded, files gone from disk under an ingested folder are dropped (files from
other roots stay; `sync=True` drops every file this ingest did not see). A file that cannot be
read or parsed any more keeps its last good version. A re-ingest that changes nothing writes no
new version. A new version is written beside the old one through a BatchWriter (writer.py, or
delta.py for a few changed files) and becomes live by an atomic rename of CURRENT
(versions.swap), so a crash or Ctrl-C leaves the old index intact; old versions stay for readers
until reaped. ingesting.py has already taken the write lock, checked the old version and loaded
the embedder.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from ...errors import IndexDamaged, RagkitError
from ...ingest.discover import scan
from ...integrations.ray_embed import RayEmbed
from .. import versions
from ..manifest import check_artifacts, new_manifest
from ..protocol import IngestJob
from ..sources import assign_sources
from ..summary import IngestSummary, new_version_dir, no_documents, used_roots
from . import stream
from .delta import DeltaWriter, plan_delta
from .writer import FaissWriter


def ingest_faiss(job: IngestJob) -> IngestSummary:
    """Build or update a FAISS-store index (the store's `ingest`, registry.py)."""
    old = stream.OldVersion(job.old_version, job.old_manifest) if job.old_version else None
    try:
        return _run(job.roots, job.index_dir, job.config, job.progress, (job.embedder, job.embedder_passed_in),
                    job.on_file_error, job.sync, old)
    finally:
        if old is not None:
            old.close()


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
            versions.reap(index_dir, old_version)
            return summary
    settings = {"chunking": asdict(config.chunking), "dense_index": config.dense_index, "model": embedder.name,
                "backend": getattr(embedder, "backend", None), "max_chunks_per_file": config.max_chunks_per_file}
    embed = None
    if config.ray is not None:  # embedding on a Ray actor pool; reading and chunking stay here
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
            versions.reap(index_dir, old_version)
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
    version = new_version_dir(index_dir)
    writer.finish(manifest, version)
    try:
        versions.swap(index_dir, version)  # the atomic step (tests interrupt it through versions.swap)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    progress.advance()
    progress.done()
    summary.version, summary.version_written = version.name, True
    summary.delta = manifest.get("delta")
    versions.reap(index_dir, version)
