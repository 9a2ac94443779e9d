"""An upload into a knowledge base with the real default embedder, through the code `ragkit serve`
runs at start-up (`open_knowledge_bases`). The fake-embedder tests could not see that the server
loaded its embedder with batch_size None, which failed every upload's ingest; this one would."""

from __future__ import annotations

import time

import httpx
import pytest

from ragkit.generate.prompts import plain_chat
from ragkit.serve.app import Served, create_app
from ragkit.serve.startup import open_knowledge_bases
from ragkit.types import Completion
from tests.serve.conftest import LiveServer

pytestmark = pytest.mark.models


class EchoGenerator:
    """No model: the test is about the upload and its ingest, not the answer."""

    backend, prompt_style, model, context_length, max_passages = "fake", "chat", "echo", 4096, None

    def count_tokens(self, text):
        return len(text.split())

    def render_chat(self, messages):
        return plain_chat(messages)

    def generate(self, prompt, decoding, on_token=None, cancel=None):
        return Completion("ok [1]", self.count_tokens(prompt), 2, first_token_ms=1.0, total_ms=2.0,
                          finish_reason="stop")


def test_an_upload_is_indexed_with_the_real_embedder_and_found(tmp_path):
    kbs, config = open_knowledge_bases(tmp_path / "data", reserved=set())
    gen = EchoGenerator()
    srv = LiveServer(create_app(Served({}, {"en": gen, "zh": gen}, knowledge_bases=kbs, ingest_config=config,
                                       min_score=0.0)))
    try:
        assert httpx.post(f"{srv.url}/v1/vector_stores", json={"name": "manuals"}, timeout=20).status_code == 201
        files = [("file", ("falcon.md", b"# Falcon Z9\n\nThe Falcon Z9 drone weighs 1,240 grams.\n", "text/plain")),
                 ("file", ("云雀.txt", "云雀K5扫地机的尘盒容量是450毫升。\n".encode(), "text/plain"))]
        job = httpx.post(f"{srv.url}/v1/vector_stores/manuals/files", files=files, timeout=60).json()
        deadline = time.monotonic() + 120
        while (state := httpx.get(f"{srv.url}/v1/vector_stores/manuals/file_batches/{job['id']}",
                                  timeout=10).json())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, "the ingest job did not finish"
            time.sleep(0.2)
        assert state["state"] == "succeeded", state
        hits = httpx.post(f"{srv.url}/v1/retrieve", timeout=30,
                          json={"query": "How heavy is the Falcon Z9 drone?", "knowledge_base": "manuals"}).json()["hits"]
        assert hits and hits[0]["source"] == "falcon.md"
    finally:
        srv.stop()
