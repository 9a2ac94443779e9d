"""`ragkit serve`'s routes over real HTTP with a fake generator: shapes, streaming, limits, auth.

Each of these is a complaint users file against servers of this kind: SSE where JSON was asked
for, citations lost in streaming, sources repeated in every chunk, missing auth, no body limit.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from ragkit.cli import main


def sse_events(text: str) -> list:
    """The `data:` payloads of an SSE body, JSON-decoded, with the final [DONE] kept as a string."""
    out = []
    for event in text.split("\n\n"):
        for line in event.splitlines():
            if line.startswith("data: "):
                data = line[6:]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


def ask(srv, question="How long is the Falcon X2 warranty?", **body):
    return httpx.post(f"{srv.url}/v1/chat/completions", timeout=20,
                      json={"model": "ragkit", "messages": [{"role": "user", "content": question}], **body})


def test_healthz_and_models(serve, serve_index):
    srv = serve()
    assert httpx.get(f"{srv.url}/healthz").json() == {"status": "ok"}
    models = httpx.get(f"{srv.url}/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["ragkit", "ragkit/docs"]
    assert all(m["object"] == "model" and m["chunks"] > 0 for m in models["data"])


def test_chat_without_stream_is_json_with_sources_and_markers(serve, fake_gen):
    srv = serve()
    for extra in ({}, {"stream": False}):
        r = ask(srv, **extra)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert body["object"] == "chat.completion" and body["model"] == "ragkit"
        content = body["choices"][0]["message"]["content"]
        assert content == "The warranty is 24 months [1]." and body["choices"][0]["finish_reason"] == "stop"
        assert body["refused"] is False
        assert body["usage"]["completion_tokens"] == 6
        assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 6
        src = body["sources"]
        assert [s["n"] for s in src] == list(range(1, len(src) + 1))
        assert set(src[0]) >= {"n", "source", "page", "start", "end", "score", "text", "cited"}
        assert src[0]["cited"] and not any(s["cited"] for s in src[1:])
        assert "24 months" in src[0]["text"]  # [1] is sources[0]
        a, b = src[0]["highlight"]
        assert "24 months" in src[0]["text"][a:b]
        assert set(body["timings"]) >= {"retrieval_ms", "first_token_ms", "tokens_per_s", "total_ms", "queue_ms"}


def test_stream_sends_sources_once_on_the_last_chunk_before_done(serve, fake_gen):
    srv = serve()
    with httpx.stream("POST", f"{srv.url}/v1/chat/completions", timeout=20,
                      json={"messages": [{"role": "user", "content": "Falcon X2 warranty?"}], "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
        events = sse_events(r.read().decode())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [i for i, c in enumerate(chunks) if "sources" in c] == [len(chunks) - 1]
    assert [i for i, c in enumerate(chunks) if "refused" in c] == [len(chunks) - 1]
    assert [i for i, c in enumerate(chunks) if c["choices"][0]["finish_reason"]] == [len(chunks) - 1]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "The warranty is 24 months [1]."
    assert len(chunks) >= 7  # role chunk, one per word, the last one
    assert chunks[-1]["sources"][0]["cited"] and chunks[-1]["refused"] is False


def test_stream_adds_inferred_markers_and_replaces_a_model_refusal(serve, fake_gen):
    fake_gen.reply = "24 months"  # no marker: the pipeline cites the passage holding it
    srv = serve()
    events = sse_events(ask(srv, "Falcon X2 warranty?", stream=True).text)
    last = events[-2]
    assert last["choices"][0]["delta"]["content"] == " [1]" and "answer" not in last
    fake_gen.reply = "The text does not mention it."
    events = sse_events(ask(srv, "Falcon X2 warranty?", stream=True).text)
    assert events[-2]["refused"] is True
    assert events[-2]["answer"].startswith("I don't know")
    body = ask(srv, "Falcon X2 warranty?").json()
    assert body["refused"] and body["choices"][0]["message"]["content"] == events[-2]["answer"]


def test_closed_book_and_request_decoding_are_honoured(serve, fake_gen):
    fake_gen.reply = "one two three four five six"
    srv = serve()
    body = ask(srv, "Falcon X2 warranty?", max_tokens=3, closed_book=True).json()
    assert body["choices"][0]["message"]["content"] == "one two three"
    assert body["choices"][0]["finish_reason"] == "length" and body["sources"] == []
    assert "Context" not in fake_gen.prompts[-1] and "24 months" not in fake_gen.prompts[-1]
    body = ask(srv, "Falcon X2 warranty?", extra_body={"k": 2, "mode": "bm25"}).json()
    assert len(body["sources"]) == 2


def test_retrieve_is_exactly_search_json(serve, serve_index):
    from click.testing import CliRunner

    srv = serve()
    r = httpx.post(f"{srv.url}/v1/retrieve", json={"query": "battery warranty months", "k": 3, "mode": "hybrid"})
    cli = CliRunner().invoke(main, ["search", "battery warranty months", "--index", str(serve_index), "-k", "3",
                                    "--json"], catch_exceptions=False)
    assert r.status_code == 200 and r.json() == json.loads(cli.output)
    assert len(r.json()["hits"]) == 3


@pytest.mark.parametrize("body, param, fragment", [
    ({"messages": [{"role": "user", "content": "x" * 2001}]}, "messages", "at most 2000"),
    ({"messages": [{"role": "user", "content": "hi"}] * 65}, "messages", "at most 64"),
    ({"messages": [{"role": "user", "content": "hi"}], "k": 21}, "k", "from 1 to 20"),
    ({"messages": [{"role": "user", "content": "hi"}], "k": 0}, "k", "from 1 to 20"),
    ({"messages": [{"role": "system", "content": "hi"}]}, "messages", "role 'user'"),
    ({"messages": []}, "messages", "non-empty"),
    ({"messages": [{"role": "user", "content": "   "}]}, "messages", "empty"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": 5}, "temperature", "[0.0, 2.0]"),
    ({"messages": [{"role": "user", "content": "hi"}], "mode": "magic"}, "mode", "dense, bm25, hybrid"),
    ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream", "true or false"),
])
def test_bad_requests_get_openai_style_400s(serve, fake_gen, body, param, fragment):
    srv = serve()
    r = httpx.post(f"{srv.url}/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and fragment in err["message"]
    assert fake_gen.prompts == []


def test_other_errors(serve):
    srv = serve()
    r = httpx.post(f"{srv.url}/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = ask(srv, model="ragkit/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = httpx.post(f"{srv.url}/v1/retrieve", json={"query": "q", "k": 99})
    assert r.status_code == 400 and r.json()["error"]["param"] == "k"
    r = httpx.get(f"{srv.url}/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()


def test_body_over_the_limit_gets_413_before_parsing(serve, fake_gen):
    srv = serve(max_body_bytes=200)
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 300}]}).encode()
    r = httpx.post(f"{srv.url}/v1/chat/completions", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunked():  # no Content-Length: refused while it is read
        for _ in range(10):
            yield b"x" * 100

    r = httpx.post(f"{srv.url}/v1/chat/completions", content=chunked())
    assert r.status_code == 413
    r = httpx.post(f"{srv.url}/v1/chat/completions", content=b"x" * 300)  # not even JSON: size comes first
    assert r.status_code == 413
    assert ask(srv, "Falcon?").status_code == 200 and len(fake_gen.prompts) == 1


def test_api_key_guards_v1_routes_only(serve):
    srv = serve(api_key="s3cret-key")
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/retrieve"),
                         ("GET", "/v1/unknown"), ("GET", "/docs")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-key"}):
            r = httpx.request(method, f"{srv.url}{path}", headers=headers, json={})
            assert r.status_code == 401, (path, headers)
            err = r.json()["error"]
            assert err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error"
    assert httpx.get(f"{srv.url}/healthz").status_code == 200
    assert httpx.get(f"{srv.url}/").status_code == 200
    ok = httpx.get(f"{srv.url}/v1/models", headers={"Authorization": "Bearer s3cret-key"})
    assert ok.status_code == 200


def test_no_cors_unless_an_origin_is_allowed(serve):
    srv = serve()
    pre = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    r = httpx.options(f"{srv.url}/v1/chat/completions", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(f"{srv.url}/v1/models", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    srv = serve(cors_origin="http://app.example", api_key="k")
    r = httpx.options(f"{srv.url}/v1/chat/completions",
                      headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                               "Access-Control-Request-Headers": "authorization"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://app.example"
    r = httpx.options(f"{srv.url}/v1/chat/completions",
                      headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert r.headers.get("access-control-allow-origin") != "http://evil.example"


def test_page_is_one_offline_file_that_renders_text_as_text(serve):
    srv = serve()
    r = httpx.get(f"{srv.url}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)  # nothing fetched from elsewhere
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html and "document.write" not in html
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp and "connect-src 'self'" in csp
    assert "sessionStorage" in html and "中文" in html and "文档中没有答案" in html


def test_served_answer_is_pipeline_answer_and_stream_adds_up_to_json(serve, fake_gen, serve_index):
    from ragkit.index import Index
    from ragkit.pipeline import Pipeline

    fake_gen.reply = lambda prompt: "Claims go to Brightwater" if "claims" in prompt.split("Question")[-1] else "24 months"
    srv = serve()
    for q in ("Where do I send warranty claims?", "How long is the Falcon X2 warranty?"):
        direct = Pipeline(Index.open(serve_index), fake_gen, min_score=0.0).answer(q)
        body = ask(srv, q).json()
        assert body["choices"][0]["message"]["content"] == direct.answer
        assert [(s["source"], s["start"], s["score"]) for s in body["sources"]] == [
            (h.source, h.start, h.score) for h in direct.hits]
        assert [s["n"] for s in body["sources"] if s["cited"]] == [c.number for c in direct.citations]
        events = sse_events(ask(srv, q, stream=True).text)[:-1]
        assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == direct.answer
