"""OpenAI-compatible backend: any server with /v1/chat/completions or /v1/completions.

vLLM, TGI, `python -m llama_cpp.server` and llama.cpp's own server all speak this protocol, which
is how a team points ragkit at a served model:

    ragkit ask "..." --backend openai --base-url http://gpu-box:8000/v1 --model my-model

The chat style sends messages (the server applies its model's chat template, so `render_chat`
returns a ChatPrompt that carries them); the few-shot style sends the rendered prompt to
/v1/completions.
Tokens are counted with the server's tokenizer endpoint when it has one (vLLM and llama.cpp
`/tokenize`, llama-cpp-python `/extras/tokenize`); only a server without one falls back to a
deliberately high estimate, so trimming errs on the safe side.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from ..errors import BackendError, ContextOverflow, UsageError
from ..models import model_info
from ..types import Completion
from .base import DEFAULT_N_CTX, ChatPrompt, Decoding, StopScanner, cancellable, ms_since


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class OpenAIGenerator:
    backend = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        prompt_style: str | None = None,
        n_ctx: int | None = None,
        timeout: float = 120.0,
        transport=None,  # an httpx transport, for tests
        max_passages: int | None = None,
    ):
        import httpx

        if not base_url or not base_url.startswith(("http://", "https://")):
            raise UsageError(f"--base-url must be an http(s) URL such as http://127.0.0.1:8000/v1, not {base_url!r}")
        root = base_url.rstrip("/")
        self.api = root if root.endswith("/v1") else root + "/v1"
        self.server = self.api[: -len("/v1")]
        key = api_key or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), headers=headers, transport=transport)
        models = self._get_json(f"{self.api}/models").get("data")
        if not isinstance(models, list):
            raise BackendError(f"{self.api}/models did not list models; is {base_url} an OpenAI-compatible server?")
        ids = [m.get("id") for m in models if isinstance(m, dict)]
        if model is None and not ids:
            raise BackendError(f"the server at {base_url} serves no model; pass --model")
        self.model = model or ids[0]
        self.max_passages = max_passages  # the model's quirk (models.py), Pipeline's default passages
        served = next((m for m in models if isinstance(m, dict) and m.get("id") == self.model), {})
        meta = served.get("meta") if isinstance(served.get("meta"), dict) else {}
        self.context_length = int(n_ctx or served.get("max_model_len") or meta.get("n_ctx_train") or DEFAULT_N_CTX)
        self.prompt_style = prompt_style or _bundled_style(self.model) or "chat"
        self._tokenize = None  # the working tokenizer endpoint, found on first use

    # -- HTTP helpers --------------------------------------------------------------------------
    def _request(self, method: str, url: str, **kw):
        import httpx

        try:
            r = self._http.request(method, url, **kw)
        except httpx.TimeoutException as e:
            raise BackendError(f"the server at {self.server} did not answer in time ({_first_line(e)})") from e
        except httpx.HTTPError as e:
            raise BackendError(f"could not reach the server at {self.server} ({_first_line(e)}); is it running?") from e
        return r

    def _get_json(self, url: str) -> dict:
        r = self._request("GET", url)
        if r.status_code >= 400:
            raise BackendError(f"{url} answered HTTP {r.status_code}; is this an OpenAI-compatible server?")
        try:
            data = r.json()
        except ValueError as e:
            raise BackendError(f"{url} did not answer with JSON; is this an OpenAI-compatible server?") from e
        if not isinstance(data, dict):
            raise BackendError(f"{url} answered {type(data).__name__}, not a JSON object")
        return data

    # -- tokens --------------------------------------------------------------------------------
    def _count_remote(self, text: str) -> int | None:
        probes = [
            ("/extras/tokenize", lambda: {"input": text, "model": self.model}),
            ("/tokenize", lambda: {"model": self.model, "prompt": text, "content": text}),
        ]
        for path, body in probes if self._tokenize is None else [p for p in probes if p[0] == self._tokenize]:
            try:
                r = self._http.post(self.server + path, json=body())
                data = r.json() if r.status_code == 200 else None
            except Exception:  # noqa: BLE001 - probing: any failure means "not this endpoint"
                data = None
            if isinstance(data, dict) and isinstance(data.get("tokens"), list):
                self._tokenize = path
                return len(data["tokens"])
            if isinstance(data, dict) and isinstance(data.get("count"), int):
                self._tokenize = path
                return data["count"]
        self._tokenize = self._tokenize or ""
        return None

    def count_tokens(self, text: str) -> int:
        if isinstance(text, ChatPrompt):
            messages = text.messages
            # The server renders the template; its markup costs a few tokens per message.
            return sum(self.count_tokens(m["content"]) + 8 for m in messages)
        if self._tokenize != "":
            n = self._count_remote(text)
            if n is not None:
                return n
        # No tokenizer endpoint: one token per 2 UTF-8 bytes overestimates every tokenizer we
        # know of (English runs ~4 bytes/token, Chinese ~3), so trimming stays on the safe side.
        return len(text.encode("utf-8")) // 2 + 1

    def render_chat(self, messages: list[dict]) -> ChatPrompt:
        return ChatPrompt(messages)

    # -- generation ----------------------------------------------------------------------------
    def generate(
        self, prompt: str, decoding: Decoding, on_token: Callable[[str], None] | None = None, *, cancel=None
    ) -> Completion:
        on_token = cancellable(on_token, cancel)  # a set cancel flag stops at the next token
        t0 = time.perf_counter()
        messages = prompt.messages if isinstance(prompt, ChatPrompt) else None
        body: dict = {"model": self.model, "max_tokens": decoding.max_tokens, "stream": True,
                      "temperature": decoding.temperature}
        if messages is not None:
            url, body["messages"] = f"{self.api}/chat/completions", messages
        else:
            url, body["prompt"] = f"{self.api}/completions", prompt
        if not decoding.greedy:
            body.update(top_p=decoding.top_p, seed=decoding.seed)
            if decoding.top_k:
                body["top_k"] = decoding.top_k  # vLLM, TGI and llama.cpp servers accept it
        if decoding.repetition_penalty != 1.0:
            # vLLM/TGI spell it repetition_penalty, llama-cpp-python repeat_penalty.
            body.update(repetition_penalty=decoding.repetition_penalty, repeat_penalty=decoding.repetition_penalty)
        server_stops = len(decoding.stop) <= 4  # OpenAI's limit; the scanner below enforces any stop
        if decoding.stop:
            body["stop"] = decoding.stop[:4]
        scanner = StopScanner(decoding.stop, on_token)
        usage, finish, chunks = {}, None, 0
        import httpx

        try:
            with self._http.stream("POST", url, json=body) as r:
                if r.status_code >= 400:
                    r.read()
                    self._raise_http(r)
                for line in r.iter_lines():
                    line = line.strip()
                    if not line or line.startswith(":") or not line.startswith("data:"):
                        if line and not line.startswith((":", "event:", "id:", "retry:")):
                            raise BackendError(f"the server at {self.server} answered garbage: {line[:80]!r}")
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        event = json.loads(payload)
                        choice = (event.get("choices") or [{}])[0]
                    except (ValueError, AttributeError, IndexError) as e:
                        raise BackendError(
                            f"the server at {self.server} sent a stream event that is not OpenAI JSON: {payload[:80]!r}"
                        ) from e
                    usage = event.get("usage") or usage
                    piece = (choice.get("delta") or {}).get("content") if messages is not None else choice.get("text")
                    if piece and not scanner.stopped:
                        chunks += 1
                        if scanner.feed(piece):
                            finish = "stop"
                            if not server_stops:
                                break  # the server does not know this stop: it would run on to max_tokens
                    # After a stop the server also knows, read on: the stream ends at once and the
                    # final event may carry the usage counts.
                    finish = finish if scanner.stopped else (choice.get("finish_reason") or finish)
        except httpx.TimeoutException as e:
            raise BackendError(f"the server at {self.server} did not answer in time ({_first_line(e)})") from e
        except httpx.HTTPError as e:
            raise BackendError(f"could not reach the server at {self.server} ({_first_line(e)}); is it running?") from e
        text = scanner.finish()
        if finish is None and chunks == 0 and not usage:
            raise BackendError(f"the server at {self.server} returned no completion")
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or self.count_tokens(prompt)),
            completion_tokens=int(usage.get("completion_tokens") or (self.count_tokens(text) if text else 0)),
            first_token_ms=ms_since(t0, scanner.first_token_at) if scanner.first_token_at else None,
            total_ms=ms_since(t0),
            finish_reason=finish,
        )

    def _raise_http(self, r) -> None:
        try:
            err = r.json().get("error")
            msg = err.get("message") if isinstance(err, dict) else err
        except (ValueError, AttributeError):
            msg = None
        msg = " ".join(str(msg or r.text or "").split())[:200]
        if any(s in msg.lower() for s in ("context length", "context window", "maximum context", "too long")):
            raise ContextOverflow(f"the server says the prompt is too long for the model: {msg}")
        raise BackendError(f"the server at {self.server} answered HTTP {r.status_code}: {msg or 'no message'}")


def _bundled_style(model: str) -> str | None:
    info = model_info(model)
    return info.prompt_style if info else None
