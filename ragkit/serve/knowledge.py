"""Knowledge bases: named document folders with their own index, kept under the server's --data-dir.

    DATA/kb/NAME/files/         the documents as uploaded: the one root that ingest reads
    DATA/kb/NAME/incoming/JOB/  the files of an upload whose job has not started yet
    DATA/kb/NAME/index/         a ragkit index (atomic versions, write lock: ragkit.index.ingest)
    DATA/kb/NAME/status.json    each file's status after the last job: indexed, skipped (reason)

Every change to a knowledge base's files is a job (jobs.py) run by one ingest worker, so an
ingest never reads a folder that a request is changing: an upload stores its files in incoming/
and queues a job that moves them into files/ and runs `ingest([files/], index/, sync=True)`, the
same code as `ragkit ingest --sync`; a file delete queues a job that removes the file and ingests
again. Readers keep searching the live version throughout (the index's own versions and leases).
Jobs whose files wait in incoming/ when the server stops are queued again at the next start, so an
accepted upload is never lost. A knowledge base with no indexed file searches to nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from pathlib import Path

from ..errors import RagkitError
from ..index import Index, ingest
from ..index.manifest import read_current, read_manifest
from ..settings import RETRIEVAL
from ..types import Hit

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class KnowledgeBaseError(Exception):
    """A refused knowledge-base operation: the HTTP status and one sentence."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def check_kb_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        shown = ascii(name)[1:-1][:80] if isinstance(name, str) else type(name).__name__
        raise KnowledgeBaseError(400, f"the knowledge-base name '{shown}' must be 1-64 letters, digits, '_' or '-'")
    return name


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


class KnowledgeBase:
    """One knowledge base: its folders, its files' status, and its index once one is built.

    It is a retriever (`search`, `len`) for Pipeline; `search` returns nothing while no file is
    indexed. Status and the open index are swapped under a lock by the ingest worker only.
    """

    def __init__(self, root: Path, embedder=None):
        self.root = root
        self.name = root.name
        self.embedder = embedder
        self.files_dir, self.incoming_dir, self.index_dir = root / "files", root / "incoming", root / "index"
        self.status_path = root / "status.json"
        self.lock = threading.Lock()
        self.created = int(root.stat().st_mtime)
        self.statuses: dict[str, dict] = {}
        if self.status_path.exists():
            self.statuses = json.loads(self.status_path.read_text(encoding="utf-8")).get("files", {})
        self.index = None
        if self.searchable and (self.index_dir / "CURRENT").exists():
            self.index = self.open_index()

    def open_index(self):

        return Index.open(self.index_dir, embedder=self.embedder)

    @property
    def searchable(self) -> bool:
        return any(s.get("status") == "indexed" for s in self.statuses.values())

    def search(self, query: str, k: int = RETRIEVAL.k, mode: str = RETRIEVAL.mode) -> list[Hit]:
        with self.lock:
            index = self.index if self.searchable else None
        return list(index.search(query, k=k, mode=mode)) if index is not None else []

    def __len__(self) -> int:
        with self.lock:
            return sum(int(s.get("chunks") or 0) for s in self.statuses.values() if s.get("status") == "indexed")

    def stored_files(self) -> list[str]:
        return sorted(p.name for p in self.files_dir.iterdir() if p.is_file()) if self.files_dir.exists() else []

    def pending(self) -> dict[str, str]:
        """name -> job id for files waiting in incoming/."""
        out: dict[str, str] = {}
        if self.incoming_dir.exists():
            for job_dir in sorted(self.incoming_dir.iterdir(), key=lambda p: p.stat().st_mtime):
                for f in job_dir.iterdir():
                    out[f.name] = job_dir.name
        return out

    def set_statuses(self, statuses: dict[str, dict]) -> None:
        write_json_atomic(self.status_path, {"files": statuses})
        index = self.index
        if index is None and any(s.get("status") == "indexed" for s in statuses.values()):
            index = self.open_index()
        with self.lock:
            self.statuses, self.index = statuses, index

    def files(self, deleting: dict[str, str] | None = None) -> list[dict]:
        """Each file's row: name, bytes, status (indexed | skipped | pending), reason, chunks, job."""
        deleting = deleting or {}
        with self.lock:
            statuses = dict(self.statuses)
        rows = []
        for name in self.stored_files():
            st = statuses.get(name) or {"status": "pending", "reason": "not indexed yet"}
            row = {"id": name, "object": "vector_store.file", "filename": name,
                   "bytes": (self.files_dir / name).stat().st_size, "status": st["status"],
                   "reason": st.get("reason"), "chunks": st.get("chunks", 0), "job": st.get("job")}
            if name in deleting:
                row.update(status="pending", reason="being deleted", job=deleting[name])
            rows.append(row)
        for name, job in self.pending().items():
            path = self.incoming_dir / job / name
            rows.append({"id": name, "object": "vector_store.file", "filename": name, "bytes": path.stat().st_size,
                         "status": "pending", "reason": "waiting for its ingest job", "chunks": 0, "job": job})
        return rows

    def describe(self) -> dict:
        rows = self.files()
        counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("indexed", "skipped", "pending")}
        return {"id": self.name, "object": "vector_store", "name": self.name, "created_at": self.created,
                "file_counts": {**counts, "total": len(rows)}, "chunks": len(self),
                "status": "in_progress" if counts["pending"] else "completed"}

    def close(self) -> None:
        with self.lock:
            index, self.index = self.index, None
        if index is not None:
            index.close()


class KnowledgeBases:
    """The knowledge bases under DATA/kb, by name."""

    def __init__(self, data_dir: Path, embedder=None, reserved: set[str] | None = None):
        self.dir = Path(data_dir) / "kb"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.embedder = embedder
        self.reserved = reserved or set()  # names the --index options took
        self.lock = threading.Lock()
        self.bases: dict[str, KnowledgeBase] = {}
        for root in sorted(self.dir.iterdir()):
            if root.is_dir() and NAME_RE.match(root.name):
                self.bases[root.name] = KnowledgeBase(root, embedder)

    def __contains__(self, name: str) -> bool:
        return name in self.bases

    def get(self, name: str) -> KnowledgeBase:
        kb = self.bases.get(name)
        if kb is None:
            known = ", ".join(sorted(self.bases)) or "none yet"
            raise KnowledgeBaseError(404, f"no knowledge base named '{ascii(name)[1:-1][:80]}' (this server has: {known})")
        return kb

    def create(self, name: str) -> KnowledgeBase:
        check_kb_name(name)
        with self.lock:
            if name in self.bases or name in self.reserved:
                raise KnowledgeBaseError(409, f"a knowledge base or index named '{name}' already exists")
            root = self.dir / name
            for sub in ("files", "incoming"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            kb = self.bases[name] = KnowledgeBase(root, self.embedder)
        return kb

    def delete(self, name: str) -> None:
        with self.lock:
            kb = self.get(name)
            del self.bases[name]
        kb.close()
        trash = self.dir / f".deleted-{name}-{uuid.uuid4().hex[:8]}"
        os.replace(kb.root, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def list(self) -> list[KnowledgeBase]:
        return [self.bases[n] for n in sorted(self.bases)]


def store_upload(kb: KnowledgeBase, job_id: str, files: list[tuple[str, bytes]]) -> None:
    """Write an upload's files into incoming/JOB (new files only, never through a link)."""
    job_dir = kb.incoming_dir / job_id
    tmp = kb.incoming_dir / f".{job_id}.part"
    tmp.mkdir(parents=True)
    try:
        for name, data in files:
            fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        os.replace(tmp, job_dir)  # the job's files appear together or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_ingest(kb: KnowledgeBase, config, progress, job_id: str) -> dict:
    """Ingest the knowledge base's files/ (sync) and record each file's status; the summary as a dict.

    Runs on the ingest worker only. Errors of the library (RagkitError) come back as the job's error;
    the files' status then says why they were not indexed, and the live version stays as it was."""

    names = kb.stored_files()
    statuses = {n: s for n, s in kb.statuses.items() if n in names}
    if not names:
        kb.set_statuses({})
        return {"files": 0, "chunks": 0}
    skipped: dict[str, str] = {}

    def on_file_error(path: str, reason: str) -> None:
        skipped[Path(path).name] = reason

    error: str | None = None
    summary = None
    try:
        summary = ingest([kb.files_dir], kb.index_dir, config, progress, embedder=kb.embedder,
                         on_file_error=on_file_error, sync=True)
    except RagkitError as e:
        error = str(e)
    indexed = {}
    if (kb.index_dir / "CURRENT").exists():

        manifest = read_manifest(read_current(kb.index_dir))
        indexed = {Path(info.get("path") or src).name: info for src, info in manifest.get("files", {}).items()}
    for name in names:
        if name in skipped:
            statuses[name] = {"status": "skipped", "reason": skipped[name], "chunks": 0, "job": job_id}
            if name in indexed and "kept its last" in skipped[name]:
                statuses[name].update(status="indexed", chunks=indexed[name].get("chunks", 0))
        elif name in indexed and error is None:
            statuses[name] = {"status": "indexed", "reason": None, "chunks": indexed[name].get("chunks", 0),
                              "job": statuses.get(name, {}).get("job") or job_id}
        elif error is not None and statuses.get(name, {}).get("status") != "indexed":
            statuses[name] = {"status": "skipped", "reason": error, "chunks": 0, "job": job_id}
    kb.set_statuses(statuses)
    out = summary.to_dict() if summary is not None else {"error": error}
    out.pop("index", None)  # a path on the server
    out["skipped"] = [{"file": n, "reason": r} for n, r in skipped.items()]
    out.pop("notes", None)
    return out

