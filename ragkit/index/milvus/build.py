"""`ragkit ingest --store milvus`: the FAISS store's guarantees on a Milvus collection.

Milvus has no atomic directory swap, so every row carries `ver`, the ingest that wrote it, and the
index directory's CURRENT → v-*/manifest.json names the live version. An ingest:

1. if the last ingest did not finish (PENDING is there), deletes by filter the rows a crashed ingest
   left (ver > live) and the rows a finished one had still to drop;
2. inserts the chunks of new and changed files with ver = live + 1 (readers filter them out);
3. flushes, writes the new manifest, its document frequencies and row keys, and swaps CURRENT (the
   atomic step; from here readers see the new rows, and the old rows of replaced sources are
   hidden by the manifest's filter);
4. deletes the old rows of replaced and removed files by their keys, and removes PENDING.

It runs inside ingesting.ingest, under its WriteLock and after its checks of the old version (model,
local model fingerprint, chunking); files are found by ingest/discover.scan (links out of a folder
are not followed) and named by sources.assign_sources, so both stores name a file alike, and
replaced version directories are reaped as FAISS ones (versions.reap). It keeps its own loop
rather than a BatchWriter (protocol.py): rows go straight to Milvus, read, embedded and inserted a
file at a time (memory holds a batch of rows and the row keys, not the corpus), and a killed run
is not resumed (step 1 drops its rows; its files are embedded again).

Killed anywhere, the index answers from the last finished version. Unchanged files are neither
re-embedded nor rewritten and there is no corpus-wide rebuild (Milvus keeps its BM25 statistics,
df.py ragkit's). A delete or query by filter scans the whole collection on milvus-lite, so a
finished ingest leaves nothing to find that way, and the replaced rows are read and deleted by key
(keys.py): that halved a one-file change at 100k chunks, much of what is left being milvus-lite
starting and loading the collection (evals/perf/scale.py; evals/results/scale/, docs/scaling.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from ...errors import IndexIncompatible, UsageError
from ...ingest.discover import scan
from ...ingest.loaders import LoadError
from ...lang import tokenize_for_search
from ...types import Chunk
from .. import versions
from ..manifest import new_manifest
from ..protocol import IngestJob
from ..reading import file_digest, read_one, stamp
from ..sources import assign_sources, is_gone
from ..summary import IngestSummary, new_version_dir, no_documents, used_roots
from .df import DocFreq
from .keys import RowKeys
from .store import (
    ANALYZERS,
    BM25_B,
    BM25_K1,
    DEFAULT_DB,
    DENSE_INDEX,
    bm25_words,
    collection_name,
    connect,
    disconnect,
    is_server,
    live_filter,
    resolve_uri,
)

INSERT_BATCH = 512
KEY_BATCH = 1000  # row keys per get or delete
PENDING = ".milvus-pending"  # in the index directory from an ingest's first insert until its old rows are gone


def create_collection(client, name: str, dim: int, dense_index: str, analyzer: str = "jieba") -> None:
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=True)
    s.add_field("pk", DataType.INT64, is_primary=True)
    s.add_field("ver", DataType.INT64)
    s.add_field("chunk_id", DataType.VARCHAR, max_length=256)
    s.add_field("source", DataType.VARCHAR, max_length=4096)
    bm25_input = "words" if analyzer == "ragkit" else "text"
    analysed = {"enable_analyzer": True, "analyzer_params": ANALYZERS[analyzer]}
    s.add_field("text", DataType.VARCHAR, max_length=65535, **(analysed if analyzer == "jieba" else {}))
    if analyzer == "ragkit":
        s.add_field("words", DataType.VARCHAR, max_length=65535, **analysed)
    s.add_field("start", DataType.INT64)
    s.add_field("end", DataType.INT64)
    s.add_field("page", DataType.INT64)  # -1: no page
    s.add_field("title", DataType.VARCHAR, max_length=4096)
    s.add_field("metadata", DataType.VARCHAR, max_length=65535)
    s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=[bm25_input],
                            output_field_names=["sparse"]))
    ip = client.prepare_index_params()
    kind, params = DENSE_INDEX[dense_index]
    ip.add_index("dense", index_type=kind, metric_type="IP", params=params)
    ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                 params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
    ip.add_index("ver", index_type="INVERTED")
    client.create_collection(name, schema=s, index_params=ip)


def _clip(text: str | None, limit: int) -> str:
    b = (text or "").encode("utf-8")
    return text or "" if len(b) <= limit else b[:limit].decode("utf-8", "ignore")


def rows_for(chunks: list[Chunk], vectors, ver: int, analyzer: str = "jieba",
             words: list[list[str]] | None = None) -> list[dict]:
    """Collection rows for chunks; `words`, each chunk's BM25 words if already tokenised (ragkit analyzer)."""
    rows = [
        {"ver": ver, "chunk_id": c.chunk_id, "source": _clip(c.source, 4096), "text": _clip(c.text, 65535),
         "start": int(c.start), "end": int(c.end), "page": -1 if c.page is None else int(c.page),
         "title": _clip(c.title, 4096), "metadata": _clip(json.dumps(c.metadata, ensure_ascii=False), 65535),
         "dense": v.tolist()}
        for c, v in zip(chunks, vectors)
    ]
    if analyzer == "ragkit":
        for i, (r, c) in enumerate(zip(rows, chunks)):
            r["words"] = _clip(bm25_words(c.text, words[i] if words else None), 65535)
    return rows


def cleanup(client, collection: str, milvus: dict | None) -> None:
    """Drop rows no reader of the live manifest can see: a crashed ingest's, and replaced ones (by
    filter: a scan of the collection, so only after an ingest that did not finish, see PENDING)."""
    if milvus is None:
        return
    ver = int(milvus["version"])
    client.delete(collection, filter=f"ver > {ver}")
    if milvus.get("replaced"):
        client.delete(collection, filter=f"ver < {ver} and source in {json.dumps(milvus['replaced'], ensure_ascii=False)}")


def _sort_files(assigned, old_files, summary) -> tuple[dict[str, dict], list, dict]:
    """(files entries that stay as they are, [(source, file, digest, old entry, stat)] to read, and
    {source: stat} of the unchanged files) by content hash (or, for a file whose size and mtime are
    the recorded ones, by its recorded hash)."""
    new_files: dict[str, dict] = {}
    stats = {}
    to_read = []
    for source, f in assigned.items():
        prev = old_files.get(source)
        try:
            digest, st = file_digest(f.path, prev)
        except LoadError as e:
            _keep_last(summary, new_files, source, f, str(e), prev)
            continue
        if prev and prev["sha256"] == digest:
            new_files[source] = prev
            stats[source] = st
            summary.files_unchanged += 1
        else:
            to_read.append((source, f, digest, prev, st))
    return new_files, to_read, stats


def _keep_last(summary, new_files: dict, source: str, f, reason: str, prev: dict | None) -> None:
    summary.skipped.append((str(f.path), reason + ("; kept its last indexed version" if prev else "")))
    if prev:  # keep the last good version rather than lose it
        new_files[source] = prev


def _read(to_read, config, embedder, summary, progress, new_files: dict, replaced: set) -> Iterator[Chunk]:
    """The chunks of new and changed files, a file at a time (so memory holds one batch, not the
    corpus), filling in their files entries and the sources whose old rows go as it reads."""
    progress.stage("reading and embedding files", len(to_read))
    for source, f, digest, prev, st in to_read:
        digest, chunks = read_one(f, source, digest, config, embedder, summary)
        if digest is None:
            _keep_last(summary, new_files, source, f, chunks, prev)
        else:
            if prev:
                summary.files_changed += 1
                replaced.add(source)
            else:
                summary.files_added += 1
            new_files[source] = {"sha256": digest, "root": f.root.as_posix(), "path": f.rel, "chunks": len(chunks),
                                 **stamp(st)}
            yield from chunks
        progress.advance()
    progress.done()


def _target(index_dir: Path, config, old: dict | None) -> tuple[str, str, str, str]:
    """(uri as stored, uri resolved, collection, analyzer) of the index's Milvus collection."""
    stored_uri = old["milvus"]["uri"] if old else (config.milvus_uri or DEFAULT_DB)
    if old and config.milvus_uri and config.milvus_uri != stored_uri:
        raise UsageError(f"index {index_dir} lives at {stored_uri}; drop --milvus-uri or ingest into a new directory")
    uri = resolve_uri(index_dir, stored_uri)
    if not is_server(uri) and not uri.endswith(".db"):
        raise UsageError(f"--milvus-uri {stored_uri}: give a milvus-lite file ending in .db or a server "
                         "URI such as http://HOST:19530")
    collection = old["milvus"]["collection"] if old else collection_name(index_dir)
    analyzer = old["milvus"]["bm25"]["analyzer"] if old else config.milvus_analyzer
    return stored_uri, uri, collection, analyzer


def ingest_milvus(job: IngestJob) -> IngestSummary:
    """Build or update a Milvus-backed index (the store's `ingest`, registry.py: called under the
    index's WriteLock, with the old manifest checked and the embedder loaded)."""
    return _ingest(job.roots, job.index_dir, job.config, job.progress, job.embedder, job.on_file_error, job.sync,
                   job.old_version, job.old_manifest)


def _ingest(roots, index_dir: Path, config, progress, embedder, on_file_error, sync: bool,
            old_version: Path | None, old: dict | None) -> IngestSummary:
    summary = IngestSummary(index=str(index_dir))
    stored_uri, uri, collection, analyzer = _target(index_dir, config, old)
    pending = index_dir / PENDING
    client = connect(uri, config.milvus_token, directory=index_dir)
    try:
        if not client.has_collection(collection):
            if old is not None:
                raise IndexIncompatible(f"Milvus at {uri} lost collection {collection}; ingest into a new directory")
            create_collection(client, collection, embedder.dim, config.dense_index, analyzer)
        client.load_collection(collection)
        keys = _start(client, collection, old, old_version, pending)
        out = _update(client, collection, roots, config, progress, embedder, on_file_error, summary, old, sync,
                      stored_uri, analyzer, DocFreq.load(old_version), keys, pending)
        if out is None:  # nothing changed: the live version stays (and _start cleaned up)
            pending.unlink(missing_ok=True)
            summary.version = old_version.name
            versions.reap(index_dir, old_version)
            return summary
        manifest, df, keys, old_rows = out
        progress.stage("writing index", 1)
        version = new_version_dir(index_dir)
        version.mkdir(parents=True)
        df.save(version)
        keys.save(version)
        (version / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        for f in version.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        versions.swap(index_dir, version)  # the atomic step (tests interrupt it through versions.swap)
        for i in range(0, len(old_rows), KEY_BATCH):  # old rows of replaced files go, by key
            client.delete(collection, ids=old_rows[i:i + KEY_BATCH])
        client.flush(collection)
        pending.unlink(missing_ok=True)
        progress.advance()
        progress.done()
        summary.version, summary.version_written = version.name, True
        versions.reap(index_dir, version)
    finally:
        disconnect(client, uri)
    return summary


def _start(client, collection: str, old: dict | None, old_version: Path | None, pending: Path) -> RowKeys:
    """Drop what an unfinished ingest left, and return the live rows' keys.

    PENDING exists from an ingest's first insert until its replaced rows are deleted: without it the
    last ingest finished, and no row outside the live version's keys is left to find by filter.
    """
    if old is None:  # a first ingest killed before its swap left rows no manifest names
        client.delete(collection, filter="ver >= 0")
        return RowKeys()
    keys = RowKeys.load(old_version)
    if keys is None or pending.exists():
        cleanup(client, collection, old["milvus"])
    return keys if keys is not None else RowKeys.scan(client, collection, live_filter(old["milvus"]))


def _plan(roots, old: dict | None, sync: bool, summary):
    """(files found by source, old entries that stay, sources dropped, roots {root: label})."""
    found, skipped = scan(roots)
    old_files = old["files"] if old else {}
    assigned, clashes, root_labels = assign_sources(found, old_files, (old or {}).get("roots") or {})
    summary.skipped.extend(skipped + clashes)
    summary.files_seen = len(found) + len(skipped) + len(clashes)
    walked = sorted({p.resolve().as_posix() for p in roots if p.is_dir()})
    kept, gone = {}, set()
    for source, info in old_files.items():  # files gone from an ingested folder are dropped, others stay
        if source in assigned:
            continue
        if is_gone(source, info, walked, sync):
            summary.files_deleted += 1
            gone.add(source)
        else:
            kept[source] = info
    return assigned, kept, gone, root_labels


def _update(client, collection, roots, config, progress, embedder, on_file_error, summary, old, sync, uri,
            analyzer, df: DocFreq, keys: RowKeys, pending: Path):
    """Insert new and changed files' chunks as the next version; return the manifest that makes it live,
    the document frequencies and row keys that go with it, and the keys of the rows it replaces;
    None when nothing changed."""
    assigned, kept, replaced, root_labels = _plan(roots, old, sync, summary)
    old_files = old["files"] if old else {}
    new_files, to_read, stats = _sort_files(assigned, old_files, summary)
    ver = int(old["milvus"]["version"]) + 1 if old else 1
    if to_read:
        pending.write_text(f"{ver}\n", encoding="utf-8")  # from the first insert until the old rows are gone
    chunks = _read(to_read, config, embedder, summary, progress, new_files, replaced)
    df, added = _insert(client, collection, chunks, ver, analyzer, embedder, df)
    new_files.update(kept)
    if on_file_error:
        for path, reason in summary.skipped:
            on_file_error(path, reason)
    if not new_files:
        raise no_documents(summary, roots)
    new_files = dict(sorted(new_files.items()))
    root_labels = used_roots(root_labels, new_files)
    summary.chunks = sum(int(f["chunks"]) for f in new_files.values())
    summary.chunks_embedded = len(added)
    if (old and not added and not replaced and new_files == old_files
            and root_labels == (old.get("roots") or root_labels)):
        pending.unlink(missing_ok=True)  # nothing was inserted
        return None
    for source, st in stats.items():  # a version is written: unchanged files' entries take their stat
        if st is not None:
            new_files[source] = {**new_files[source], **stamp(st)}
    old_rows = keys.of(sorted(replaced))
    removed = []
    for i in range(0, len(old_rows), KEY_BATCH):
        rows = client.get(collection, ids=old_rows[i:i + KEY_BATCH], output_fields=["text"])
        removed.extend(tokenize_for_search(r["text"]) for r in rows)
    milvus = {"uri": uri, "collection": collection, "version": ver, "replaced": sorted(replaced),
              "bm25": {"k1": BM25_K1, "b": BM25_B, "analyzer": analyzer}}
    manifest = {"store": "milvus", "milvus": milvus,
                **new_manifest(embedder, config, old, summary.chunks, root_labels, new_files)}
    return manifest, df.updated([], removed), keys.updated(replaced, added), old_rows


def _insert(client, collection, chunks: Iterator[Chunk], ver: int, analyzer: str, embedder, df: DocFreq):
    """Embed and insert chunks as version `ver`, INSERT_BATCH at a time, each chunk tokenised once
    (for its row's words and the document frequencies); (counts with them added, [(source, key)])."""
    added: list[tuple[str, int]] = []
    counts: list[DocFreq] = []

    def put(batch: list[Chunk]) -> None:
        words = [tokenize_for_search(c.text) for c in batch]
        vectors = embedder.embed([c.text for c in batch])
        res = client.insert(collection, rows_for(batch, vectors, ver, analyzer, words))
        added.extend(zip((c.source for c in batch), (int(k) for k in res["ids"])))
        counts.append(DocFreq.of_chunks(words).merged())

    batch: list[Chunk] = []
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) == INSERT_BATCH:
            put(batch)
            batch = []
            if len(counts) == 64:  # one merge over the vocabulary per 64 batches, not per batch
                df = df.merged(*counts)
                counts.clear()
    if batch:
        put(batch)
    if added:
        client.flush(collection)  # durable before the manifest names it
    return df.merged(*counts), added
