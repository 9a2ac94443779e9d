"""One generation at a time per loaded model, behind a bounded queue; cancellation by a flag.

A llama.cpp context is not thread-safe, so each model gets one worker thread (a single-thread
executor): jobs for it run strictly one after another, and any number of models may run side by
side. `Slot.submit` refuses a job (returns None, the app answers 503 with Retry-After) when the
running job plus the waiting ones already fill `1 + queue`. Each job carries a `threading.Event`:
set it (the client went away) and a job still waiting is dropped at once, while a running one
stops at its next token, because the job's `on_token` raises GenerationCancelled when it sees the
flag. Either way the worker is free for the next job immediately.

Tokens travel from the worker to the request through a `TokenStream` (an asyncio.Queue fed with
`call_soon_threadsafe`), one per request: no two requests share a callback or a buffer, which is
what keeps one request's tokens out of another's reply.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..generate.base import GenerationCancelled


class Slot:
    """The queue in front of one model. Counters are touched on the event loop thread only."""

    def __init__(self, name: str, queue: int):
        if queue < 0:
            raise ValueError("queue must be >= 0")
        self.name = name
        self.queue = queue
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"ragkit-gen-{name}")
        self.pending = 0  # running + waiting
        self.avg_s = 1.0  # moving average of a job's run time, for Retry-After
        self.completed = 0
        self.cancelled = 0  # jobs that ended cancelled (dropped from the queue or stopped mid-way)
        self.cancel_requests = 0  # clients that went away before their job ended

    @property
    def full(self) -> bool:
        return self.pending >= self.queue + 1

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the waiting work at the average job time."""
        return max(1, min(120, math.ceil(self.avg_s * max(1, self.pending - self.queue))))

    def submit(self, fn: Callable[[], Any], cancel: threading.Event) -> Future | None:
        """Run `fn` on this model's worker when its turn comes; None when the queue is full."""
        if self.full:
            return None
        loop = asyncio.get_running_loop()
        self.pending += 1

        def job():
            if cancel.is_set():  # the client left while waiting: skip without touching the model
                raise GenerationCancelled()
            t0 = time.perf_counter()
            try:
                return fn()
            finally:
                loop.call_soon_threadsafe(self._timed, time.perf_counter() - t0)

        fut = self.executor.submit(job)
        fut.add_done_callback(lambda f: loop.call_soon_threadsafe(self._release, f))
        return fut

    def cancel(self, fut: Future, flag: threading.Event) -> None:
        """The client went away: drop the job if it still waits, else stop it at its next token."""
        self.cancel_requests += 1
        flag.set()
        fut.cancel()

    def _timed(self, seconds: float) -> None:
        self.avg_s = 0.8 * self.avg_s + 0.2 * seconds

    def _release(self, fut: Future) -> None:
        self.pending -= 1
        if fut.cancelled() or isinstance(fut.exception(), GenerationCancelled):
            self.cancelled += 1
        else:
            self.completed += 1

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class TokenStream:
    """Pieces of one request's answer, from the worker thread to that request's coroutine.

    `on_token` is the callback handed to `Pipeline.answer`; it raises GenerationCancelled once
    `cancel` is set. `finish`/`fail` end the stream with the Answer or the exception.
    """

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()

    def on_token(self, piece: str) -> None:
        if self.cancel.is_set():
            raise GenerationCancelled()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, ("token", piece))

    def run(self, fn: Callable[[Callable[[str], None]], Any]) -> Callable[[], Any]:
        """A job that calls fn(on_token) and ends the stream with its result or its error."""

        def job():
            try:
                result = fn(self.on_token)
            except BaseException as e:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, ("error", e))
                raise
            self.loop.call_soon_threadsafe(self.queue.put_nowait, ("done", result))
            return result

        return job

    async def next(self) -> tuple[str, Any]:
        return await self.queue.get()
