"""`ragkit serve` as a process on a free loopback port with the bundled smollm2-135m, called through
the `openai` Python client, streaming and not (the way llama.cpp's own server tests work).

One server for the module; 16-token answers; the process is stopped at the end whatever happens.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.models
KEY = "test-key-123"
QUESTION = "How long is the warranty of the Falcon X2 drone?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, ragkit_cache):
    from ragkit.index import IngestConfig, ingest

    root = tmp_path_factory.mktemp("serve-corpus")
    (root / "warranty.md").write_text(
        "# Warranty\n\nThe Falcon X2 drone has a warranty of 24 months. Batteries are covered for 12 months.\n",
        encoding="utf-8")
    (root / "specs.txt").write_text("Falcon X2 specifications. Flight time is 38 minutes.\n", encoding="utf-8")
    index = tmp_path_factory.mktemp("serve-index") / "docs"
    ingest([root], index, IngestConfig())
    port = free_port()
    cmd = [sys.executable, "-c", "from ragkit.cli import main; main()", "serve", "--index", str(index),
           "--model", "smollm2-135m", "--port", str(port), "--max-tokens", "16", "-k", "2", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env={**os.environ, "RAGKIT_API_KEY": KEY}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ragkit serve did not come up in 180 s"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def client(url, key=KEY):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def test_openai_client_json_and_stream(server):
    c = client(server)
    assert [m.id for m in c.models.list()] == ["ragkit", "ragkit/docs"]
    resp = c.chat.completions.create(model="ragkit/docs", messages=[{"role": "user", "content": QUESTION}],
                                     max_tokens=16)
    text = resp.choices[0].message.content
    extra = resp.model_extra
    assert "24" in text and not extra["refused"], text
    assert [s["source"] for s in extra["sources"]][0] == "warranty.md" and extra["sources"][0]["cited"]
    assert 0 < resp.usage.completion_tokens <= 16

    chunks = list(c.chat.completions.create(model="ragkit", messages=[{"role": "user", "content": QUESTION}],
                                            max_tokens=16, stream=True))
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    with_sources = [i for i, ch in enumerate(chunks) if (ch.model_extra or {}).get("sources") is not None]
    assert with_sources == [len(chunks) - 1]
    assert "24" in streamed and chunks[-1].model_extra["refused"] is False
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_wrong_key_is_refused_and_a_dropped_stream_frees_the_model(server):
    import openai

    with pytest.raises(openai.AuthenticationError):
        client(server, key="wrong").models.list()
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"messages": [{"role": "user", "content": "Describe the Falcon X2 in detail."}], "stream": True,
            "max_tokens": 400, "closed_book": True}
    with httpx.Client(timeout=60) as h:
        with h.stream("POST", f"{server}/v1/chat/completions", json=body, headers=headers) as r:
            lines = 0
            for line in r.iter_lines():
                lines += line.startswith("data: ")
                if lines >= 3:
                    break  # hang up mid-answer
    resp = client(server).chat.completions.create(model="ragkit", messages=[{"role": "user", "content": QUESTION}],
                                                  max_tokens=16)
    assert "24" in resp.choices[0].message.content
