"""A test-only store: every chunk and its vector in one JSON-lines file per version.

It exists to show the store boundary holds: one module, one `StoreKind`, registered by one line
(`STORES["toy"] = TOY`, a fixture in test_store_contract.py), and it passes the same contract
tests as the FAISS and Milvus stores. It uses only what every store shares: scanning and source
names (sources.py), file reading (reading.py), the manifest, versions (swap, reap), fusion and
ragkit's BM25 words. Search is brute force; nothing here is meant to scale.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ragkit.embed import load_embedder
from ragkit.index import versions
from ragkit.index.fusion import FusionWeights, fuse, top_k
from ragkit.index.manifest import damaged, embedder_source, new_manifest
from ragkit.index.protocol import IngestJob, StoreKind, check_search, manifest_summary
from ragkit.index.reading import file_digest, read_one, stamp
from ragkit.index.sources import assign_sources, is_gone
from ragkit.index.summary import IngestSummary, new_version_dir, no_documents, used_roots
from ragkit.ingest.discover import scan
from ragkit.lang import detect_language, tokenize_for_search
from ragkit.types import Chunk, Hit

ROWS = "rows.jsonl"


def _read_rows(version_dir: Path, directory: Path) -> list[dict]:
    try:
        lines = (version_dir / ROWS).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]
    except FileNotFoundError:
        raise damaged(directory, f"{ROWS} is missing") from None
    except (OSError, ValueError) as e:
        raise damaged(directory, f"{ROWS} is unreadable ({type(e).__name__})") from None


def ingest_toy(job: IngestJob) -> IngestSummary:
    summary = IngestSummary(index=str(job.index_dir))
    old, old_rows = job.old_manifest, (_read_rows(job.old_version, job.index_dir) if job.old_version else [])
    found, skipped = scan(job.roots)
    old_files = old["files"] if old else {}
    assigned, clashes, root_labels = assign_sources(found, old_files, (old or {}).get("roots") or {})
    summary.skipped.extend(skipped + clashes)
    summary.files_seen = len(found) + len(skipped) + len(clashes)
    walked = sorted({p.resolve().as_posix() for p in job.roots if p.is_dir()})
    files, rows = {}, []
    for source, info in old_files.items():
        if source in assigned:
            continue
        if is_gone(source, info, walked, job.sync):
            summary.files_deleted += 1
        else:
            files[source] = info
            rows += [r for r in old_rows if r["source"] == source]
    for source, f in assigned.items():
        prev = old_files.get(source)
        digest, st = file_digest(f.path, prev)
        if prev and prev["sha256"] == digest:
            files[source] = prev
            rows += [r for r in old_rows if r["source"] == source]
            summary.files_unchanged += 1
            continue
        digest, chunks = read_one(f, source, digest, job.config, job.embedder, summary)
        if digest is None:
            summary.skipped.append((str(f.path), chunks))
            continue
        vectors = job.embedder.embed([c.text for c in chunks])
        rows += [{**c.__dict__, "vector": v.tolist()} for c, v in zip(chunks, vectors)]
        summary.files_changed += prev is not None
        summary.files_added += prev is None
        summary.chunks_embedded += len(chunks)
        files[source] = {"sha256": digest, "root": f.root.as_posix(), "path": f.rel, "chunks": len(chunks),
                         **stamp(st)}
    if not files:
        raise no_documents(summary, job.roots)
    files = dict(sorted(files.items()))
    summary.chunks = len(rows)
    roots = used_roots(root_labels, files)
    if old and files == old_files and roots == (old.get("roots") or roots):  # nothing changed: no new version
        summary.version = job.old_version.name
        return summary
    manifest = {**new_manifest(job.embedder, job.config, old, len(rows), roots, files),
                "store": "toy"}
    version = new_version_dir(job.index_dir)
    version.mkdir()
    (version / ROWS).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (version / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    versions.swap(job.index_dir, version)
    versions.reap(job.index_dir, version)
    summary.version, summary.version_written = version.name, True
    return summary


class ToyIndex:
    def __init__(self, directory: Path, version_dir: Path, manifest: dict, embedder=None):
        self.directory, self.version_dir, self.manifest = directory, version_dir, manifest
        self.rows = _read_rows(version_dir, directory)
        if len(self.rows) != manifest["n_chunks"]:
            raise damaged(directory, f"{ROWS} holds {len(self.rows)} chunks, the manifest {manifest['n_chunks']}")
        self.embedder = embedder or load_embedder(embedder_source(manifest, directory))

    @classmethod
    def open(cls, directory, version_dir, manifest, embedder=None, embed_model=None, auto_refresh=True):
        return cls(directory, version_dir, manifest, embedder)

    @property
    def version(self) -> str:
        return self.version_dir.name

    def __len__(self) -> int:
        return len(self.rows)

    def chunks(self) -> Iterator[Chunk]:
        for r in self.rows:
            yield Chunk(**{k: v for k, v in r.items() if k != "vector"})

    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        check_search(query, k, mode)
        if not self.rows:
            return []
        words = set(tokenize_for_search(query))
        sparse = np.array([len(words & set(tokenize_for_search(r["text"]))) / max(1, len(words))
                           for r in self.rows], dtype=np.float32)
        dense = np.array([r["vector"] for r in self.rows], dtype=np.float32) @ self.embedder.embed([query])[0]
        if mode == "bm25":
            scores = sparse
        elif mode == "dense":
            scores = dense
        else:
            weight = FusionWeights().for_language(detect_language(query), self.manifest["embedding"].get("languages"))
            scores = fuse(dense, sparse, weight)
        ranked = [int(i) for i in top_k(scores, k) if mode != "bm25" or scores[i] > 0]
        return [Hit(rank=n + 1, chunk_id=self.rows[i]["chunk_id"], source=self.rows[i]["source"],
                    score=round(float(scores[i]), 6), text=self.rows[i]["text"], page=self.rows[i]["page"],
                    start=self.rows[i]["start"], end=self.rows[i]["end"], title=self.rows[i]["title"])
                for n, i in enumerate(ranked)]

    def refresh(self) -> bool:
        return False

    def describe(self) -> dict:
        return {"index": str(self.directory), "store": "toy", "version": self.version, **manifest_summary(self.manifest)}

    def close(self) -> None:
        self.rows = []


def check_manifest(manifest: dict, directory: Path) -> None:
    if "delta" in manifest:
        raise damaged(directory, "manifest.json has a delta segment on a store other than faiss")


TOY = StoreKind("toy", open=ToyIndex.open, ingest=ingest_toy, check_manifest=check_manifest)
