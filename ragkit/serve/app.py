"""The FastAPI app of `ragkit serve`: OpenAI-compatible routes over `Pipeline.answer`.

    from ragkit.serve.app import Served, create_app
    app = create_app(Served({"docs": Index.open(dir)}, {"en": gen, "zh": gen}))

Routes (names fixed; other tools and the tests rely on them): GET /healthz, GET /v1/models,
POST /v1/chat/completions (JSON, or SSE with `stream: true`), POST /v1/retrieve (the same hits as
`ragkit search --json`), GET / (the page). Each request builds its own Pipeline (k, mode and
decoding come per request) around the indexes and models loaded once at start-up, and the answer
runs on its model's Slot (slots.py): one generation at a time per model, a bounded queue in front,
a client that disconnects cancels its generation. Retrieval for /v1/retrieve runs concurrently in
the thread pool; a chat request retrieves inside its generation slot (Pipeline.answer is the one
answer path; retrieval took 20-40 ms of answers that took seconds on the sample corpus). What the
server adds to the pipeline's own time is a median 28 ms per request (evals/perf/serve_load.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import BackendError, RagkitError
from ..generate.base import Decoding, GenerationCancelled, Generator
from ..lang import detect_language
from ..pipeline import Pipeline
from ..settings import RETRIEVAL
from . import openai_api as oa
from .guard import Guard
from .slots import Slot, TokenStream

PAGE = Path(__file__).with_name("page.html")
HEARTBEAT_S = 1.0  # an SSE comment this often while no token comes: a gone client is noticed while queued


@dataclass
class Served:
    """What one server serves: named indexes (the first is the default, model id `ragkit`) and a
    generator per question language (the same object for every language when --model is given)."""

    indexes: dict
    generators: dict[str, Generator]
    k: int = RETRIEVAL.k
    mode: str = RETRIEVAL.mode
    decoding: Decoding = field(default_factory=Decoding)
    min_score: float | None = None
    examples: int | None = None
    passages: int | None = None
    context_tokens: int | None = None  # None: the AnswerSettings default
    reason: str | None = None
    limits: oa.Limits = field(default_factory=oa.Limits)
    queue: int = 32
    api_key: str | None = None
    max_body_bytes: int = 1_048_576
    cors_origin: str | None = None

    def index_for(self, model: str | None) -> tuple[str, object]:
        """(model id, index) for a request's `model`: `ragkit` (or none) is the default index."""
        default = next(iter(self.indexes))
        if model in (None, "", "ragkit"):
            return "ragkit", self.indexes[default]
        name = model.removeprefix("ragkit/")
        if model.startswith("ragkit/") and name in self.indexes:
            return model, self.indexes[name]
        known = ", ".join(["ragkit", *(f"ragkit/{n}" for n in self.indexes)])
        raise oa.ApiError(404, f"the model '{model}' does not exist; this server has {known}",
                          param="model", code="model_not_found")

    def generator_for(self, question: str) -> Generator:
        lang = detect_language(question)
        return self.generators.get(lang) or next(iter(self.generators.values()))


def create_app(served: Served) -> FastAPI:
    slots: dict[int, Slot] = {}
    for gen in served.generators.values():
        slots.setdefault(id(gen), Slot(gen.model, served.queue))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        for s in slots.values():
            s.close()

    app = FastAPI(title="ragkit", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.served, app.state.slots = served, slots
    page, csp = page_and_policy()
    created = int(time.time())

    @app.exception_handler(oa.ApiError)
    async def api_error(_req, e: oa.ApiError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req, e: StarletteHTTPException):
        return JSONResponse(oa.error_body(str(e.detail)), status_code=e.status_code)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        ids = [("ragkit", next(iter(served.indexes)))] + [(f"ragkit/{n}", n) for n in served.indexes]
        return {"object": "list", "data": [
            {"id": i, "object": "model", "created": created, "owned_by": "ragkit", "index": n,
             "chunks": len(served.indexes[n])} for i, n in ids]}

    @app.post("/v1/retrieve")
    async def retrieve(request: Request):
        model, query, k, mode = oa.parse_retrieve(await read_json(request), served.limits)
        _, index = served.index_for(model)
        hits = await run_in_threadpool(index.search, query, k or served.k, mode or served.mode)
        return {"query": query, "hits": [h.to_dict() for h in hits]}  # exactly `ragkit search --json`

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        req = oa.parse_chat(await read_json(request), served.limits)
        model_id, index = served.index_for(req.model)
        gen = served.generator_for(req.question)
        pipe = build_pipeline(served, index, gen, req)
        slot = slots[id(gen)]
        if req.stream:
            return stream_reply(slot, pipe, req, model_id)
        return await json_reply(request, slot, pipe, req, model_id)

    @app.get("/", response_class=HTMLResponse)
    async def index_page():
        return HTMLResponse(page, headers={
            "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"})

    return with_middleware(app, served)


def with_middleware(app: FastAPI, served: Served):
    """Guard (body size, key) inside; CORS, when allowed, outside it so preflights need no key."""
    app.add_middleware(Guard, api_key=served.api_key, max_body_bytes=served.max_body_bytes)
    if served.cors_origin:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[served.cors_origin], allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


async def read_json(request: Request):
    try:
        return json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise oa.ApiError(400, f"the request body is not valid JSON: {e}") from None


def build_pipeline(served: Served, index, gen: Generator, req: oa.ChatRequest) -> Pipeline:
    changes = {k: v for k, v in {"max_tokens": req.max_tokens, "temperature": req.temperature,
                                  "top_p": req.top_p}.items() if v is not None}
    try:
        decoding = replace(served.decoding, **changes)
        return Pipeline(None if req.closed_book else index, gen, k=req.k or served.k, mode=req.mode or served.mode,
                        decoding=decoding, min_score=served.min_score, examples=served.examples,
                        passages=served.passages, context_tokens=served.context_tokens, reason=served.reason)
    except (ValueError, RagkitError) as e:
        raise oa.ApiError(400, str(e), param="max_tokens" if "max-tokens" in str(e) else None) from None


def queue_full(slot: Slot) -> oa.ApiError:
    wait = slot.retry_after()
    return oa.ApiError(503, f"the server is busy: {slot.pending} requests are running or waiting for "
                       f"{slot.name}; retry in {wait} s", type="server_error", code="queue_full",
                       headers={"Retry-After": str(wait)})


def answer_job(pipe: Pipeline, req: oa.ChatRequest, on_token):
    t_submit = time.perf_counter()

    def run(callback=on_token):
        queue_ms = round((time.perf_counter() - t_submit) * 1000, 2)
        ans = pipe.answer(req.question, closed_book=req.closed_book, on_token=callback)
        ans.timings["queue_ms"] = queue_ms
        return ans

    return run


def failure(e: BaseException) -> oa.ApiError:
    if isinstance(e, oa.ApiError):
        return e
    if isinstance(e, BackendError):
        return oa.ApiError(502, str(e), type="server_error", code="backend_error")
    if isinstance(e, RagkitError):
        return oa.ApiError(400, str(e))
    return oa.ApiError(500, f"the server failed: {type(e).__name__}", type="server_error")


async def json_reply(request: Request, slot: Slot, pipe: Pipeline, req: oa.ChatRequest, model_id: str):
    cancel = threading.Event()

    def on_token(_piece: str) -> None:
        if cancel.is_set():
            raise GenerationCancelled()

    fut = slot.submit(answer_job(pipe, req, on_token), cancel)
    if fut is None:
        raise queue_full(slot)
    waiting = asyncio.wrap_future(fut)
    while not waiting.done():
        await asyncio.wait({waiting}, timeout=0.25)
        if not waiting.done() and await request.is_disconnected():
            slot.cancel(fut, cancel)
            return Response(status_code=499)  # nobody reads it; the generation stops at its next token
    try:
        ans = waiting.result()
    except Exception as e:
        raise failure(e) from None
    return JSONResponse(oa.chat_completion(ans, model_id, pipe.decoding.max_tokens))


def sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


class CancellingStream(StreamingResponse):
    """A StreamingResponse that runs `on_close` however the response ends (done, client gone)."""

    def __init__(self, content, on_close, **kw):
        super().__init__(content, **kw)
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def stream_reply(slot: Slot, pipe: Pipeline, req: oa.ChatRequest, model_id: str) -> StreamingResponse:
    cancel = threading.Event()
    tokens = TokenStream(cancel)
    fut = slot.submit(tokens.run(lambda on_token: answer_job(pipe, req, on_token)()), cancel)
    if fut is None:
        raise queue_full(slot)
    cid = oa.completion_id()
    ended = False

    async def events():
        nonlocal ended
        streamed: list[str] = []
        yield sse(oa.chunk(cid, model_id, {"role": "assistant", "content": ""}))
        while True:
            try:
                kind, value = await asyncio.wait_for(tokens.next(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                yield ": waiting\n\n"
                continue
            if kind == "token":
                streamed.append(value)
                yield sse(oa.chunk(cid, model_id, {"content": value}))
                continue
            ended = True
            if kind == "done":
                yield sse(oa.last_chunk(cid, model_id, value, "".join(streamed), pipe.decoding.max_tokens))
            else:
                yield sse(failure(value).body())
            yield "data: [DONE]\n\n"
            return

    def on_close():
        if not ended:
            slot.cancel(fut, cancel)

    return CancellingStream(events(), on_close, media_type="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def page_and_policy() -> tuple[str, str]:
    """The page, and a Content-Security-Policy that lets run only its own inline script and style
    (by hash), talk only to this server, and load nothing from anywhere else."""
    html = PAGE.read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        import base64

        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies)

    csp = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
           "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html, csp
