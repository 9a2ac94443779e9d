"""`ragkit ask` and `ragkit models` through CliRunner: output, --json schema, one-line errors.

A fake generator stands in for the model (patched over `ragkit.generate.load_generator`); the
bad-input tests use the real loader, since what they check is how real failures are reported.
"""

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from click.testing import CliRunner

import ragkit.generate
from ragkit.cli import main
from ragkit.generate.base import StopScanner
from ragkit.generate.prompts import plain_chat
from ragkit.types import Completion


class FakeGenerator:
    backend = "fake"
    prompt_style = "fewshot"
    max_passages = None

    def __init__(self, reply, context_length=4096, model="fake-model"):
        self.reply, self.context_length, self.model = reply, context_length, model
        self.prompts = []

    def count_tokens(self, text):
        return len(text.split())

    def render_chat(self, messages):
        return plain_chat(messages)

    def generate(self, prompt, decoding, on_token=None):
        self.prompts.append(prompt)
        scanner = StopScanner(decoding.stop, on_token)
        pieces = re.findall(r"\s*\S+", self.reply)
        for p in pieces:
            if scanner.feed(p):
                break
        return Completion(scanner.finish(), self.count_tokens(prompt), len(pieces), 2.0, 10.0, "stop")


@pytest.fixture
def index_dir(mini_corpus, tmp_path, fake_embedder):
    from ragkit.index import IngestConfig, ingest

    ingest([mini_corpus], tmp_path / "idx", IngestConfig(embed_model="fake-embedder"))
    return tmp_path / "idx"


@pytest.fixture
def fake_model(monkeypatch):
    calls = []

    def install(reply, **kw):
        gen = FakeGenerator(reply, **kw)

        def load(model, backend=None, **kwargs):
            calls.append((model, backend, kwargs))
            return gen

        monkeypatch.setattr(ragkit.generate, "load_generator", load)
        return gen

    install.calls = calls
    return install


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], lines[0]


def test_ask_streams_answer_then_sources(index_dir, fake_model):
    fake_model("24 months [1]")
    r = run("ask", "How long is the Falcon X2 warranty?", "--index", index_dir, "-k", "2", "--min-score", "0")
    assert r.exit_code == 0, r.output
    answer, sources = r.output.split("\nSources:\n")
    assert answer.strip() == "24 months [1]"
    first = sources.splitlines()[0]
    assert first.startswith("  [1] warranty.md, chars 0-") and first.endswith("(cited)")
    assert "(cited)" not in sources.splitlines()[1]


def test_ask_json_schema(index_dir, fake_model):
    fake_model("24 months")
    r = run("ask", "How long is the Falcon X2 warranty?", "--index", index_dir, "-k", "2", "--min-score", "0", "--json")
    d = json.loads(r.output)
    assert set(d) == {"answer", "citations", "sources", "prompt_tokens", "completion_tokens", "timings",
                      "backend", "model", "refused"}
    assert set(d["timings"]) == {"retrieval_ms", "first_token_ms", "total_ms", "tokens_per_s"}
    assert d["answer"] == "24 months [1]" and d["refused"] is False
    assert d["citations"] == [{"number": 1, "chunk_id": d["sources"][0]["chunk_id"], "source": "warranty.md",
                               "page": None, "start": d["sources"][0]["start"], "end": d["sources"][0]["end"]}]
    assert set(d["sources"][0]) == {"rank", "chunk_id", "source", "score", "text", "page", "start", "end"}
    assert d["timings"]["retrieval_ms"] > 0 and d["prompt_tokens"] > 0 and d["backend"] == "fake"


def test_default_model_follows_question_language(index_dir, fake_model):
    fake_model("x")
    run("ask", "猎鹰 X2 保修多久？", "--index", index_dir, "--json")
    run("ask", "How long is the warranty?", "--index", index_dir, "--json")
    assert [c[2]["lang"] for c in fake_model.calls] == ["zh", "en"] and fake_model.calls[0][0] is None


def test_ask_refuses_and_closed_book(index_dir, fake_model):
    gen = fake_model("I don't know")
    r = run("ask", "How long is the Falcon X2 warranty?", "--index", index_dir, "--min-score", "0", "--json")
    assert json.loads(r.output)["refused"] is True
    r = run("ask", "What is the capital of France?", "--closed-book", "--index", index_dir / "nope")
    assert r.exit_code == 0 and "Sources:" not in r.output and "I don't know" in r.output
    assert "Context" not in gen.prompts[-1]


def test_ask_prints_the_answer_that_replaced_the_streamed_text(index_dir, fake_model):
    gen = fake_model("The context does not mention it.")
    replies = iter(["The context does not mention it.", "24 months [1]"])
    orig = gen.generate

    def generate(prompt, decoding, on_token=None):
        gen.reply = next(replies)
        return orig(prompt, decoding, on_token)

    gen.generate = generate
    r = run("ask", "How long is the warranty?", "--index", index_dir, "--min-score", "0", "--context-tokens", "5")
    assert r.exit_code == 0 and len(gen.prompts) == 2  # a refusal from the selected sentences, then whole chunks
    assert r.output.splitlines()[:2] == ["The context does not mention it.", "24 months [1]"]


def test_decoding_flags_reach_the_generator(index_dir, fake_model, monkeypatch):
    gen = fake_model("a b c d e")
    seen = []
    orig = gen.generate
    monkeypatch.setattr(gen, "generate", lambda p, d, on_token=None: (seen.append(d), orig(p, d, on_token))[1])
    run("ask", "warranty?", "--index", index_dir, "--min-score", "0", "--temperature", "0.7", "--top-p", "0.9",
        "--top-k", "20", "--repetition-penalty", "1.1", "--max-tokens", "7", "--seed", "3", "--stop", "END", "--json")
    d = seen[0]
    assert (d.temperature, d.top_p, d.top_k, d.repetition_penalty, d.max_tokens, d.seed) == (0.7, 0.9, 20, 1.1, 7, 3)
    assert d.stop[:2] == ["END", "\n"]  # then the passage-header stops


def test_empty_question_and_missing_index(tmp_path, fake_model):
    fake_model("x")
    one_line_error(run("ask", "   ", "--index", tmp_path), 2, "question is empty")
    one_line_error(run("ask", "Why?", "--index", tmp_path / "missing"), 1, "no index at")


def test_absent_and_non_gguf_model(tmp_path):
    one_line_error(run("ask", "Why?", "--closed-book", "--model", tmp_path / "absent.gguf"), 1,
                   "neither a bundled llm model", "never downloads")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 definitely not gguf")
    one_line_error(run("ask", "Why?", "--closed-book", "--model", junk), 1, "is not a GGUF file")


def test_bad_decoding_value(tmp_path, fake_model):
    fake_model("x")
    one_line_error(run("ask", "Why?", "--closed-book", "--top-p", "0"), 2, "top_p")


def test_prompt_longer_than_context(index_dir, fake_model):
    fake_model("x", context_length=300)
    one_line_error(run("ask", "word " * 400, "--index", index_dir, "--min-score", "0", "--max-tokens", "16"), 1,
                   "question alone needs")
    one_line_error(run("ask", "Why?", "--index", index_dir, "--max-tokens", "299"), 1, "--max-tokens")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_server_down():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    one_line_error(run("ask", "Why?", "--closed-book", "--backend", "openai", "--base-url", url), 1,
                   "could not reach the server", "is it running?")
    one_line_error(run("ask", "Why?", "--closed-book", "--backend", "openai"), 2, "needs --base-url")


@pytest.mark.parametrize("models_ok", [False, True])
def test_openai_server_answering_garbage(models_ok):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, body, ctype="text/html"):
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if models_ok:
                self._send(b'{"data": [{"id": "m"}]}', "application/json")
            else:
                self._send(b"<html>It works!</html>")

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._send(b"<html>It works!</html>")

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        r = run("ask", "Why?", "--closed-book", "--base-url", url)
        one_line_error(r, 1, "garbage" if models_ok else "did not answer with JSON")
    finally:
        server.shutdown()


def test_models_lists_bundled_and_configured(isolated_home, tmp_path):
    isolated_home.mkdir(parents=True, exist_ok=True)
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    (isolated_home / "models.yaml").write_text(
        f"my-model:\n  path: {gguf}\n  prompt_style: chat\nteam:\n  base_url: http://gpu:8000/v1\n  model: big\n",
        encoding="utf-8")
    r = run("models", "--json")
    assert r.exit_code == 0, r.output
    rows = {m["name"]: m for m in json.loads(r.output)["models"]}
    assert {"smollm2-135m", "gemma3-270m", "qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "all-minilm-l6-v2",
            "my-model", "team"} <= set(rows)
    s = rows["smollm2-135m"]
    assert s["prompt_style"] == "chat" and rows["gemma3-270m"]["prompt_style"] == "fewshot"
    assert rows["qwen2.5-coder-1.5b"]["prompt_style"] == "chat" and rows["qwen2.5-coder-1.5b"]["licence"] == "Apache-2.0"
    from ragkit.models import default_llm

    assert rows[default_llm("en")]["default_for"][0] == "en"
    if s["installed"]:
        assert s["path"].endswith(".gguf") and s["size_bytes"] > 50_000_000
    assert rows["my-model"]["installed"] is True and rows["my-model"]["size_bytes"] == 64
    assert rows["team"]["backend"] == "openai" and rows["team"]["installed"] is None
    human = run("models").output
    assert "smollm2-135m" in human and "style=fewshot" in human and "default for " in human


@pytest.mark.parametrize("qwen_installed", [True, False])
def test_default_model_is_qwen_where_installed_else_the_tiny_ones(monkeypatch, qwen_installed):
    import ragkit.models as models

    monkeypatch.setattr(models, "parts_installed", lambda split: qwen_installed)
    want = {"en": "qwen2.5-coder-1.5b", "zh": "qwen2.5-coder-1.5b"} if qwen_installed else {
        "en": "smollm2-135m", "zh": "gemma3-270m"}
    assert {lang: models.default_llm(lang) for lang in ("en", "zh")} == want
    rows = {m["name"]: m for m in json.loads(run("models", "--json").output)["models"]}
    assert sorted(rows[want["zh"]]["default_for"]) == sorted(lang for lang in want if want[lang] == want["zh"])


def test_bad_models_yaml_is_one_line(isolated_home):
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "models.yaml").write_text("oops:\n  colour: blue\n", encoding="utf-8")
    one_line_error(run("models"), 2, "needs exactly one of 'path' or 'base_url'")


def test_openai_backend_streams_sse_from_a_fake_server(index_dir):
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _json(self, obj):
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._json({"data": [{"id": "served-model", "max_model_len": 2048}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/extras/tokenize":
                return self._json({"tokens": list(range(len(body["input"].split())))})
            seen[self.path] = body
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in ["24 ", "months", " [1]", "\nextra"]:
                event = {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            usage = {"choices": [{"delta": {}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 99, "completion_tokens": 4}}
            self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"  # /v1 is added
        r = run("ask", "How long is the Falcon X2 warranty?", "--index", index_dir, "-k", "2", "--min-score", "0",
                "--base-url", url, "--stop", "\n", "--temperature", "0", "--json")
        assert r.exit_code == 0, r.output
        d = json.loads(r.output)
        assert d["answer"] == "24 months [1]" and d["backend"] == "openai" and d["model"] == "served-model"
        assert d["citations"][0]["source"] == "warranty.md"
        assert (d["prompt_tokens"], d["completion_tokens"]) == (99, 4)
        req = seen["/v1/chat/completions"]
        assert req["model"] == "served-model" and req["temperature"] == 0 and req["stream"] is True
        assert [m["role"] for m in req["messages"]] == ["system", "user"]
        assert "[1] (source: warranty.md)" in req["messages"][1]["content"] and req["stop"] == ["\n", "(source:", "（来源："]  # the user's stop, then the header stops
    finally:
        server.shutdown()
