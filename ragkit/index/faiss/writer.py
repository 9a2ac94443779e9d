"""Writing a new index version batch by batch, with a checkpoint after every batch.

`ingest` hands a `BatchWriter` (protocol.py) rows and their vectors as they are made; nothing holds the whole
corpus. `FaissWriter` (the FAISS + SQLite + bm25s layout of store.py) writes into DIR/.staging/:

    plan.json          what this staging belongs to (old version, config, every file's hash)
    chunks.sqlite      one committed transaction per batch: the checkpoint
    vectors.f32        raw float32 rows, appended and fsynced before the batch's rows commit

so after a kill the committed rows say how far it got, and the vector file is cut back to them.
A resumed ingest with the same plan skips those rows and never re-embeds them; another plan
starts the staging over. `finish` turns the staging into a complete version (embeddings.npy,
dense.faiss, bm25/, manifest.json) and renames it into the v-* namespace; only then does ingest
swap CURRENT, so readers see the old version until the very end.

What stays in memory: one batch while writing; at `finish`, the FAISS index being built (it is
the index) and BM25's token ids (bm25s.BM25.index takes the whole corpus at once; read back from
SQLite as int32 arrays, about 4 bytes a token, they halve what lists of strings took). Vectors
are copied to the .npy file to file and added to FAISS in slices read from the raw file (not a
memmap, whose resident pages would count too): 100k chunks peak at 622 MiB in finish, against
718 MiB with memmaps and string token lists (evals/perf/ingest_memory.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np

from ...types import Chunk
from ..bm25 import BM25Index
from ..manifest import artifact_sizes
from ..versions import fsync_dir

STAGING = ".staging"
SLICE_ROWS = 65536  # rows copied or added to FAISS at a time at finish: 96 MB of 384-d vectors


def build_faiss(read, n: int, dim: int, kind: str):
    """A FAISS index over n vectors, read(start, stop) giving rows, added a slice at a time."""
    import faiss

    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    elif kind == "ivf" and n >= 256:
        nlist = max(1, min(4096, int(np.sqrt(n))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        step = max(1, n // (256 * nlist))  # train on up to 256 rows a cluster, spread over the corpus
        index.train(np.concatenate([read(s, min(n, s + SLICE_ROWS))[::step] for s in range(0, n, SLICE_ROWS)]))
        index.nprobe = min(nlist, 16)
    else:  # flat, or IVF on a corpus too small to train clusters
        index = faiss.IndexFlatIP(dim)
    for s in range(0, n, SLICE_ROWS):
        index.add(read(s, min(n, s + SLICE_ROWS)))
    return index


# Where evals/perf/scale.py says the FAISS index type should change: exact (flat) search stays fast
# enough below a million chunks, and only there do HNSW and IVF answer clearly faster (approximate:
# their recall was not measured on real embeddings). Updates give no reason to switch (a delta
# segment either way). The figures: evals/results/scale/ (docs/results.md, docs/scaling.md).
ANN_HINT_CHUNKS = 1_000_000


def dense_index_hint(chunks: int, store: str, dense_index: str) -> str | None:
    """A suggestion for `ragkit ingest` to print once a flat FAISS index has grown past the measured turning point."""
    if store != "faiss" or dense_index != "flat" or chunks < ANN_HINT_CHUNKS:
        return None
    return (f"{chunks:,} chunks: exact (flat) search took hybrid p95 83-88 ms at 1M chunks on 2 cores and grows "
            "with the index; --dense-index hnsw answered in 43-72 ms there (ivf 26-33 ms; both approximate): "
            "re-ingest with it to rebuild the index")


class FaissWriter:
    def __init__(self, index_dir: Path, dim: int, dense_kind: str, plan: dict):
        self.dir = index_dir / STAGING
        self.dim, self.dense_kind = dim, dense_kind
        self.rows = 0
        key = json.dumps(plan, sort_keys=True, ensure_ascii=False)
        if (self.dir / "plan.json").is_file() and self._resume(key):
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.db = sqlite3.connect(self.dir / "chunks.sqlite")
        self.db.execute(
            "CREATE TABLE chunks (row INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE, source TEXT, text TEXT, "
            "start INTEGER, end INTEGER, page INTEGER, title TEXT, metadata TEXT, tokens TEXT)"
        )
        self.db.commit()
        (self.dir / "vectors.f32").touch()
        (self.dir / "plan.json").write_text(key, encoding="utf-8")  # last: a staging without it is started over
        fsync_dir(self.dir)

    def _resume(self, key: str) -> bool:
        try:
            if (self.dir / "plan.json").read_text(encoding="utf-8") != key:
                return False
            self.db = sqlite3.connect(self.dir / "chunks.sqlite")
            rows = self.db.execute("SELECT count(*), coalesce(max(row), -1) FROM chunks").fetchone()
            size = (self.dir / "vectors.f32").stat().st_size
        except (OSError, sqlite3.DatabaseError):
            return False
        width = self.dim * 4
        if rows[0] != rows[1] + 1 or size < rows[0] * width:  # vectors go to disk before their rows commit
            self.db.close()
            return False
        os.truncate(self.dir / "vectors.f32", rows[0] * width)  # a batch whose rows never committed
        self.rows = rows[0]
        return True

    @property
    def chunks(self) -> int:
        """Chunks of the version being written (a delta writer adds the base's)."""
        return self.rows

    def last_chunk_id(self) -> str | None:
        if not self.rows:
            return None
        return self.db.execute("SELECT chunk_id FROM chunks WHERE row = ?", (self.rows - 1,)).fetchone()[0]

    def add(self, items: list[tuple[Chunk, str]], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(items), self.dim):
            raise ValueError(f"{len(items)} rows and vectors of shape {vectors.shape}")
        with open(self.dir / "vectors.f32", "ab") as fh:
            fh.write(vectors.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            self.db.executemany(
                "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(self.rows + i, c.chunk_id, c.source, c.text, c.start, c.end, c.page, c.title,
                  json.dumps(c.metadata, ensure_ascii=False), tokens) for i, (c, tokens) in enumerate(items)],
            )
        except BaseException:
            self.db.rollback()  # the vectors appended above are cut back on resume
            raise
        self.db.commit()  # the checkpoint: these rows, and the vectors before them, are done
        self.rows += len(items)

    def _tokens(self):
        cur = self.db.execute("SELECT tokens FROM chunks ORDER BY row")
        while rows := cur.fetchmany(4096):
            for (t,) in rows:
                yield t.split(" ") if t else []

    def finish(self, manifest: dict, version: Path) -> None:
        """Complete the staging into the version directory `version` (not yet live)."""
        self.complete()
        self.seal(manifest, version)

    def complete(self) -> None:
        """Turn the staged rows into embeddings.npy, dense.faiss and bm25/ (none of it live yet)."""
        self.db.execute("CREATE INDEX IF NOT EXISTS by_source ON chunks(source)")
        self.db.commit()
        raw = self.dir / "vectors.f32"
        # The .npy is its header and the raw rows, copied file to file: no vector passes through memory.
        with open(self.dir / "embeddings.npy", "wb") as out, open(raw, "rb") as src:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                      "shape": (self.rows, self.dim)}
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(src, out, 1 << 20)
        import faiss

        with open(raw, "rb") as src:
            def read(start: int, stop: int) -> np.ndarray:
                src.seek(start * self.dim * 4)
                return np.fromfile(src, dtype=np.float32, count=(stop - start) * self.dim).reshape(-1, self.dim)

            faiss.write_index(build_faiss(read, self.rows, self.dim, self.dense_kind), str(self.dir / "dense.faiss"))
        if self.rows:  # a delta segment may hold no rows (only deletions); a plain version always has some
            BM25Index.build_streamed(self._tokens()).save(self.dir / "bm25")
        self.db.close()
        for name in ("vectors.f32", "plan.json"):
            (self.dir / name).unlink()

    def seal(self, manifest: dict, version: Path, durable: set[str] = frozenset()) -> None:
        """Write the manifest, fsync every file (but those in `durable`, already on disk) and rename
        the staging to `version`."""
        manifest["artifacts"] = artifact_sizes(self.dir)  # lets a reader name a truncated file (manifest.py)
        (self.dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        for f in self.dir.rglob("*"):
            if f.is_file() and f.relative_to(self.dir).as_posix() not in durable:
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
        for d in [p for p in self.dir.rglob("*") if p.is_dir()]:
            fsync_dir(d)
        os.replace(self.dir, version)
        fsync_dir(version.parent)

    def discard(self) -> None:
        try:
            self.db.close()
        except Exception:  # noqa: BLE001 - closing a connection that may be half-open
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
