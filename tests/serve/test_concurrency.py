"""One generation at a time per model, a bounded queue, cancellation on disconnect, no token leakage.

The fake generator records how many generations ran at once and which were cancelled; a gate
holds a generation until the test opens it, so queue states are reached without timing luck.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from .test_api import sse_events

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def echo_codeword(prompt: str) -> str:
    """Twelve words made of the question's code word: any foreign word in a reply is leakage."""
    word = re.findall(r"codeword-(\w+)", prompt)[-1]
    return " ".join(f"{word}{i}" for i in range(12)) + " [1]"


def body(question, stream=False, **kw):
    return {"messages": [{"role": "user", "content": question}], "stream": stream, **kw}


def wait_until(cond, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_concurrent_different_questions_never_get_each_others_tokens(serve, fake_gen):
    fake_gen.reply, fake_gen.delay = echo_codeword, 0.002
    srv = serve()

    def one(i):
        word = WORDS[i % len(WORDS)]
        q = f"What does the manual say about codeword-{word}?"
        if i % 2:
            with httpx.Client(timeout=60) as c:
                events = sse_events(c.post(f"{srv.url}/v1/chat/completions", json=body(q, stream=True)).text)
            text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
        else:
            text = httpx.post(f"{srv.url}/v1/chat/completions", json=body(q), timeout=60).json()[
                "choices"][0]["message"]["content"]
        return word, text

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(32)))
    for word, text in results:
        assert text == " ".join(f"{word}{i}" for i in range(12)) + " [1]", (word, text)
    assert fake_gen.max_running == 1 and fake_gen.finished == 32


def test_full_queue_gets_503_with_retry_after_and_recovers(serve, fake_gen):
    fake_gen.gate = threading.Event()
    srv = serve(queue=1)
    pool = ThreadPoolExecutor(2)
    try:
        running = pool.submit(httpx.post, f"{srv.url}/v1/chat/completions", json=body("Falcon warranty?"), timeout=30)
        wait_until(lambda: fake_gen.running == 1)
        waiting = pool.submit(httpx.post, f"{srv.url}/v1/chat/completions", json=body("Falcon specs?"), timeout=30)
        wait_until(lambda: srv.server.config.app.state.slots and _pending(srv) == 2)
        r = httpx.post(f"{srv.url}/v1/chat/completions", json=body("Falcon camera?", stream=True), timeout=10)
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) >= 1
        err = r.json()["error"]
        assert err["code"] == "queue_full" and err["type"] == "server_error"
        fake_gen.gate.set()
        assert running.result().status_code == 200 and waiting.result().status_code == 200
    finally:
        fake_gen.gate.set()
        pool.shutdown()
    assert httpx.post(f"{srv.url}/v1/chat/completions", json=body("Falcon camera?")).status_code == 200
    assert fake_gen.max_running == 1


def _pending(srv) -> int:
    return sum(s.pending for s in srv.server.config.app.state.slots.values())


def test_stream_disconnect_cancels_generation_and_the_next_request_runs(serve, fake_gen):
    fake_gen.reply = " ".join(f"w{i}" for i in range(400))
    fake_gen.delay = 0.01  # four seconds if nobody stopped it
    srv = serve()
    with httpx.Client(timeout=30) as c:
        with c.stream("POST", f"{srv.url}/v1/chat/completions", json=body("Falcon warranty?", stream=True)) as r:
            seen = 0
            for line in r.iter_lines():
                if line.startswith("data: ") and '"content": "' in line and '""' not in line:
                    seen += 1
                if seen >= 3:
                    break  # leaving the block closes the connection
    wait_until(lambda: fake_gen.cancelled, 5)
    assert 3 <= fake_gen.cancelled[0] < 100
    fake_gen.reply, fake_gen.delay = "24 months [1]", 0.0
    r = httpx.post(f"{srv.url}/v1/chat/completions", json=body("Falcon warranty?"), timeout=10)
    assert r.json()["choices"][0]["message"]["content"] == "24 months [1]"
    assert fake_gen.max_running == 1


def test_json_client_that_gives_up_cancels_its_generation(serve, fake_gen):
    fake_gen.reply = " ".join(f"w{i}" for i in range(400))
    fake_gen.delay = 0.01
    srv = serve()
    try:
        httpx.post(f"{srv.url}/v1/chat/completions", json=body("Falcon warranty?"), timeout=0.5)
    except httpx.TimeoutException:
        pass
    wait_until(lambda: fake_gen.cancelled, 5)
    assert fake_gen.cancelled[0] < 200 and fake_gen.finished == 0


def test_a_request_whose_client_left_while_queued_never_runs(serve, fake_gen):
    fake_gen.gate = threading.Event()
    srv = serve()
    pool = ThreadPoolExecutor(1)
    try:
        first = pool.submit(httpx.post, f"{srv.url}/v1/chat/completions", json=body("Falcon warranty?"), timeout=30)
        wait_until(lambda: fake_gen.running == 1)
        with httpx.Client(timeout=30) as c:
            with c.stream("POST", f"{srv.url}/v1/chat/completions", json=body("codeword-gone?", stream=True)) as r:
                next(r.iter_lines())  # the role chunk: it is queued now
        wait_until(lambda: _pending(srv) == 1)  # dropped from the queue at once
        fake_gen.gate.set()
        assert first.result().status_code == 200
    finally:
        fake_gen.gate.set()
        pool.shutdown()
    assert not any("codeword-gone" in p for p in fake_gen.prompts)


def test_retrieval_runs_while_a_generation_holds_the_model(serve, fake_gen):
    fake_gen.gate = threading.Event()
    srv = serve()
    pool = ThreadPoolExecutor(1)
    try:
        held = pool.submit(httpx.post, f"{srv.url}/v1/chat/completions", json=body("Falcon warranty?"), timeout=30)
        wait_until(lambda: fake_gen.running == 1)
        r = httpx.post(f"{srv.url}/v1/retrieve", json={"query": "camera video", "k": 2}, timeout=10)
        assert r.status_code == 200 and len(r.json()["hits"]) == 2
        assert not held.done()
        fake_gen.gate.set()
        assert json.loads(held.result().text)["choices"]
    finally:
        fake_gen.gate.set()
        pool.shutdown()
