"""Stop during prompt reading frees the model: the next request starts within a second.

The real smollm2-135m reads a long prompt (eight whole passages, `context_tokens=0`, a few
thousand tokens: seconds on a CPU; the default evidence budget would make it too short to stop); the client drops that streamed request one second in, while the prompt is still being read,
and sends another. Its `queue_ms` (from submission to the start of its generation) must stay
under a second: the cancelled request must not hold the worker until its prompt is read.
Before Pipeline.answer took `cancel` (the prompt read in slices, checked between them), the
second request waited for the whole prompt.
"""

from __future__ import annotations

import time

import httpx
import pytest

from .conftest import LiveServer

pytestmark = pytest.mark.models

SENTENCES = ["The Falcon {m} drone has a warranty of {n} months and a flight time of {t} minutes.",
             "Service centres for the Falcon {m} are in Brightwater, Lindenport and Harrow.",
             "Batteries of the Falcon {m} take {t} minutes to charge and weigh {n}0 grams.",
             "Firmware {n}.{t} of the Falcon {m} improved obstacle detection at dusk."]


@pytest.fixture
def long_index(tmp_path, fake_embedder):
    from ragkit.index import IngestConfig, ingest

    root = tmp_path / "long"
    root.mkdir()
    for i in range(8):
        text = " ".join(SENTENCES[j % 4].format(m=f"X{i}", n=12 + j, t=30 + j) for j in range(40))
        (root / f"falcon-{i}.md").write_text(f"# Falcon X{i}\n\n{text}\n", encoding="utf-8")
    ingest([root], tmp_path / "idx", IngestConfig(embed_model="fake-embedder"))
    return tmp_path / "idx"


def test_stop_during_prompt_reading_frees_the_worker(long_index):
    from ragkit.generate import Decoding, load_generator
    from ragkit.index import Index
    from ragkit.serve.app import Served, create_app

    gen = load_generator("smollm2-135m")
    srv = LiveServer(create_app(Served({"docs": Index.open(long_index)}, {"en": gen, "zh": gen}, k=8, passages=8,
                                       context_tokens=0, min_score=0.0, decoding=Decoding(max_tokens=8))))
    try:
        body = {"messages": [{"role": "user", "content": "What is the warranty of the Falcon X3 drone?"}],
                "stream": True}
        with httpx.stream("POST", f"{srv.url}/v1/chat/completions", json=body, timeout=120) as r:
            assert r.status_code == 200
            time.sleep(1.0)  # the prompt is being read; leaving the block drops the connection
        slot = next(iter(srv.server.config.app.state.slots.values()))
        deadline = time.monotonic() + 10
        while slot.cancel_requests < 1:
            assert time.monotonic() < deadline, "the server never saw the client leave"
            time.sleep(0.01)
        r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": "Say hello."}], "closed_book": True, "max_tokens": 2})
        assert r.status_code == 200
        assert r.json()["timings"]["queue_ms"] < 1000, r.json()["timings"]
        assert slot.cancelled >= 1
    finally:
        srv.stop()
