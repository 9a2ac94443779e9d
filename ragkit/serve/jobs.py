"""Ingest jobs: every change to a knowledge base's files, run one at a time on one worker thread.

A job has an id and reports progress that a client polls (GET .../file_batches/ID): files in the
job, chunks embedded of the estimated total (ingest's own Progress calls), the rate and the time
left. One worker for all knowledge bases: the machine's cores are shared with generation, and two
ingests into one index would only wait on its write lock. A job queued behind a running one waits
its turn; none is dropped. The job list keeps the last `KEEP` finished jobs.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from .knowledge import run_ingest

KEEP = 200


@dataclass
class Job:
    id: str
    kb: str
    kind: str  # upload | delete
    files: list[str]
    status: str = "queued"  # queued | running | succeeded | failed
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    stage: str = ""
    chunks_done: int = 0
    chunks_total: int = 0
    result: dict | None = None
    error: str | None = None

    def progress(self) -> dict:
        elapsed = ((self.finished or time.time()) - self.started) if self.started else 0.0
        rate = self.chunks_done / elapsed if elapsed > 0 and self.chunks_done else 0.0
        left = max(0, self.chunks_total - self.chunks_done)
        return {"stage": self.stage, "files": len(self.files), "chunks_done": self.chunks_done,
                "chunks_total": self.chunks_total, "chunks_per_s": round(rate, 2),
                "elapsed_s": round(elapsed, 2),
                "eta_s": round(left / rate, 1) if rate and self.status == "running" else (0.0 if self.finished else None)}

    def to_dict(self) -> dict:
        status = {"queued": "in_progress", "running": "in_progress", "succeeded": "completed",
                  "failed": "failed"}[self.status]
        return {"id": self.id, "object": "vector_store.file_batch", "vector_store_id": self.kb, "kind": self.kind,
                "status": status, "state": self.status, "files": self.files, "created_at": int(self.created),
                "progress": self.progress(), "result": self.result, "error": self.error}


class JobProgress:
    """ragkit.progress.Progress that writes into a Job (the worker thread writes, requests read)."""

    def __init__(self, job: Job):
        self.job = job

    def stage(self, name: str, total: int) -> None:
        self.job.stage = name
        if name == "embedding chunks":
            self.job.chunks_total, self.job.chunks_done = total, 0

    def advance(self, n: int = 1, **stats) -> None:
        if self.job.stage == "embedding chunks":
            self.job.chunks_done += n

    def message(self, text: str) -> None:
        pass

    def set_total(self, total: int) -> None:
        if self.job.stage == "embedding chunks":
            self.job.chunks_total = total

    def done(self) -> None:
        pass


class JobQueue:
    """Jobs by id, and the one worker that runs them in the order they came."""

    def __init__(self):
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.waiting: list[tuple[Job, Callable[[Job], dict]]] = []
        self.closed = False
        self.completed = 0
        self.failed = 0
        self.thread = threading.Thread(target=self._work, name="ragkit-ingest", daemon=True)
        self.thread.start()

    def submit(self, kb: str, kind: str, files: list[str], work: Callable[[Job], dict],
               job_id: str | None = None) -> Job:
        job = Job(job_id or new_job_id(), kb, kind, files)
        with self.lock:
            self.jobs[job.id] = job
            self.waiting.append((job, work))
            self.wake.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def active(self, kb: str) -> list[Job]:
        """The knowledge base's jobs that are queued or running."""
        with self.lock:
            return [j for j in self.jobs.values() if j.kb == kb and j.status in ("queued", "running")]

    def counts(self) -> dict[str, int]:
        with self.lock:
            states = [j.status for j in self.jobs.values()]
        return {"queued": states.count("queued"), "running": states.count("running"),
                "succeeded": self.completed, "failed": self.failed}

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.waiting and not self.closed:
                    self.wake.wait()
                if self.closed:
                    return
                job, work = self.waiting.pop(0)
                job.status, job.started = "running", time.time()
            try:
                job.result = work(job)
                job.status = "failed" if job.result and job.result.get("error") else "succeeded"
                job.error = (job.result or {}).get("error")
            except Exception as e:  # the worker outlives any one job
                job.status, job.error = "failed", f"{type(e).__name__}: {e}"
            job.finished = time.time()
            with self.lock:
                if job.status == "succeeded":
                    self.completed += 1
                else:
                    self.failed += 1
                done = [i for i, j in self.jobs.items() if j.finished]
                for i in done[: max(0, len(done) - KEEP)]:
                    del self.jobs[i]

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.wake.notify_all()


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex[:16]


def upload_work(kb, config) -> Callable[[Job], dict]:
    """The job of an upload: move its files from incoming/JOB into files/, then ingest."""

    def work(job: Job) -> dict:
        src = kb.incoming_dir / job.id
        if src.exists():
            kb.files_dir.mkdir(parents=True, exist_ok=True)
            for f in sorted(src.iterdir()):
                f.replace(kb.files_dir / f.name)  # a re-upload of a name replaces the old file
            shutil.rmtree(src, ignore_errors=True)
        return run_ingest(kb, config, JobProgress(job), job.id)

    return work


def delete_work(kb, config, name: str) -> Callable[[Job], dict]:
    """The job of a file delete: remove the file, then ingest so that its chunks go."""

    def work(job: Job) -> dict:
        (kb.files_dir / name).unlink(missing_ok=True)
        return run_ingest(kb, config, JobProgress(job), job.id)

    return work
