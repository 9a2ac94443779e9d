"""Fixtures for `ragkit serve`: a scriptable fake generator and the app on a real loopback port.

The app runs in uvicorn on 127.0.0.1 (a free port, a thread of the test process, stopped after
each test), so the tests see real HTTP: chunked bodies, SSE as it is flushed, client disconnects.
The fake generator streams its reply one word at a time through StopScanner like the real
backends, optionally pausing per word or waiting on a gate, and records what it was asked,
how many generations ran at once, and which ones were cancelled.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from ragkit.generate.base import GenerationCancelled, StopScanner
from ragkit.generate.prompts import plain_chat
from ragkit.types import Completion


class FakeGenerator:
    backend = "fake"
    prompt_style = "fewshot"
    max_passages = None

    def __init__(self, reply="The warranty is 24 months [1].", delay=0.0, context_length=4096, model="fake-model"):
        self.reply = reply  # a string, or a function prompt -> string
        self.delay = delay  # seconds per word
        self.context_length, self.model = context_length, model
        self.gate: threading.Event | None = None  # when set: each generation waits for it first
        self.prompts: list[str] = []
        self.cancelled: list[int] = []  # words emitted by each cancelled generation
        self.finished = 0
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def count_tokens(self, text):
        return len(re.findall(r"[\u4e00-\u9fff]|\S+", text))

    def render_chat(self, messages):
        return plain_chat(messages)

    def generate(self, prompt, decoding, on_token=None, cancel=None):
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.prompts.append(prompt)
        n = 0
        try:
            if self.gate is not None:
                assert self.gate.wait(20), "test gate never opened"
            text = self.reply(prompt) if callable(self.reply) else self.reply
            scanner = StopScanner(decoding.stop, on_token)
            for piece in re.findall(r"\s*\S+", text):
                if self.delay:
                    time.sleep(self.delay)
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled()
                n += 1
                if scanner.feed(piece) or n >= decoding.max_tokens:
                    break
            out = scanner.finish()
            self.finished += 1
            return Completion(out, self.count_tokens(prompt), n, first_token_ms=1.0, total_ms=5.0, finish_reason="stop")
        except GenerationCancelled:
            self.cancelled.append(n)
            raise
        finally:
            with self._lock:
                self.running -= 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """An ASGI app served by uvicorn on a free loopback port, in a daemon thread."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve_index(mini_corpus, tmp_path, fake_embedder):
    """The mini corpus plus a document whose text is HTML (untrusted), indexed with the fake embedder."""
    from ragkit.index import IngestConfig, ingest

    (mini_corpus / "notes.txt").write_text(
        'Service note: <img src=x onerror="window.__pwned=1"><b>bold</b> claims go to Brightwater.\n',
        encoding="utf-8")
    ingest([mini_corpus], tmp_path / "idx", IngestConfig(embed_model="fake-embedder"))
    return tmp_path / "idx"


@pytest.fixture
def fake_gen():
    return FakeGenerator()


@pytest.fixture
def serve(serve_index, fake_gen):
    """serve(**served_options) -> LiveServer over {'docs': the index} and the fake generator."""
    from ragkit.index import Index
    from ragkit.serve.app import Served, create_app

    started: list[LiveServer] = []

    def start(generator=None, indexes=None, **kw):
        kw.setdefault("min_score", 0.0)
        gen = generator or fake_gen
        idx = indexes or {"docs": Index.open(serve_index)}
        srv = LiveServer(create_app(Served(idx, {"en": gen, "zh": gen}, **kw)))
        started.append(srv)
        return srv

    yield start
    for s in started:
        s.stop()


class GatedEmbedder:
    """The fake embedder, but an ingest (the ingest worker's thread) waits for `gate` before it
    embeds: a test can hold a knowledge base's ingest running while it sends other requests.
    Queries (request threads) are never held."""

    def __init__(self, inner):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()  # set while an ingest waits at the gate

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def embed(self, texts, on_batch=None):
        if threading.current_thread().name == "ragkit-ingest" and not self.gate.is_set():
            self.waiting.set()
            assert self.gate.wait(30), "test gate never opened"
            self.waiting.clear()
        return self.inner.embed(texts, on_batch=on_batch)


@pytest.fixture
def gated_embedder(fake_embedder):
    return GatedEmbedder(fake_embedder)


@pytest.fixture
def kb_serve(tmp_path, fake_gen, gated_embedder):
    """kb_serve(**served_options) -> LiveServer with knowledge bases under tmp_path/data (no --index),
    the fake generator and the gated fake embedder."""
    from ragkit.index import IngestConfig
    from ragkit.serve.app import Served, create_app
    from ragkit.serve.knowledge import KnowledgeBases

    started: list[LiveServer] = []

    def start(generator=None, indexes=None, **kw):
        kw.setdefault("min_score", 0.0)
        gen = generator or fake_gen
        kbs = KnowledgeBases(tmp_path / "data", embedder=gated_embedder, reserved=set(indexes or {}))
        srv = LiveServer(create_app(Served(indexes or {}, {"en": gen, "zh": gen}, knowledge_bases=kbs,
                                           ingest_config=IngestConfig(embed_model="fake-embedder"), **kw)))
        srv.data = tmp_path / "data"
        started.append(srv)
        return srv

    yield start
    for s in started:
        s.stop()
