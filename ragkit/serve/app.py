"""The FastAPI app of `ragkit serve`: OpenAI-compatible routes over `Pipeline.answer`.

    from ragkit.serve.app import Served, create_app
    app = create_app(Served({"docs": Index.open(dir)}, {"en": gen, "zh": gen}))

Routes (names fixed; other tools and the tests rely on them): GET /healthz, GET /metrics, GET /v1/models,
POST /v1/chat/completions (JSON, or SSE with `stream: true`; the messages are a conversation,
ragkit/conversation.py), POST /v1/retrieve (the same hits as `ragkit search --json`), the
knowledge bases in OpenAI's vector-store shape (/v1/vector_stores[/NAME[/files[/FILE]]],
/v1/vector_stores/NAME/file_batches/JOB), GET / (the page), and /docs with --docs. Each request builds its own Pipeline (k, mode and
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
import inspect
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

from ..conversation import follow_up
from ..errors import BackendError, RagkitError
from ..generate.base import Decoding, GenerationCancelled, Generator
from ..index import IngestConfig
from ..lang import detect_language
from ..pipeline import Pipeline
from ..settings import RETRIEVAL
from . import openai_api as oa
from .guard import PUBLIC, Guard
from .jobs import JobQueue, delete_work, new_job_id, upload_work
from .keys import ApiKey
from .knowledge import KnowledgeBaseError, KnowledgeBases, store_upload
from .limits import UploadLimits
from .metrics import Metrics
from .slots import Slot, TokenStream
from .uploads import UploadRefused, check_file, check_name, parse_multipart

PAGE = Path(__file__).with_name("page.html")
PIPELINE_TAKES_CANCEL = "cancel" in inspect.signature(Pipeline.answer).parameters
DOCS_PATHS = frozenset({"/docs", "/openapi.json"})


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
    api_key: str | None = None  # one admin key (--api-key); `keys` adds the --keys file's
    keys: list[ApiKey] = field(default_factory=list)
    max_body_bytes: int = 1_048_576
    cors_origin: str | None = None
    knowledge_bases: KnowledgeBases | None = None  # --data-dir
    ingest_config: object | None = None  # IngestConfig for knowledge-base ingests; None: its defaults
    upload: UploadLimits = field(default_factory=lambda: UploadLimits())
    docs: bool = False  # /docs and /openapi.json

    def all_keys(self) -> list[ApiKey]:
        return ([ApiKey("api-key", self.api_key.encode(), "admin")] if self.api_key else []) + list(self.keys)

    def index_for(self, model: str | None, knowledge_base: str | None = None) -> tuple[str, object]:
        """(model id, index) for a request's `model` or `knowledge_base`: `ragkit` (or none) is the
        default index, `ragkit/NAME` an --index or a knowledge base; an unknown name is a 404."""
        kbs = self.knowledge_bases
        if knowledge_base is not None:
            if kbs is not None and knowledge_base in kbs:
                return f"ragkit/{knowledge_base}", kbs.get(knowledge_base)
            if knowledge_base in self.indexes:
                return f"ragkit/{knowledge_base}", self.indexes[knowledge_base]
            raise oa.ApiError(404, f"no knowledge base named '{ascii(knowledge_base)[1:-1][:80]}' on this server",
                              param="knowledge_base", code="knowledge_base_not_found")
        if model in (None, "", "ragkit") and self.indexes:
            return "ragkit", self.indexes[next(iter(self.indexes))]
        name = (model or "").removeprefix("ragkit/")
        if (model or "").startswith("ragkit/") and name in self.indexes:
            return model, self.indexes[name]
        if (model or "").startswith("ragkit/") and kbs is not None and name in kbs:
            return model, kbs.get(name)
        names = list(self.indexes) + ([kb.name for kb in kbs.list()] if kbs is not None else [])
        known = ", ".join((["ragkit"] if self.indexes else []) + [f"ragkit/{n}" for n in names]) or "no index yet"
        raise oa.ApiError(404, f"the model '{model or 'ragkit'}' does not exist; this server has {known}",
                          param="model", code="model_not_found")

    def generator_for(self, question: str) -> Generator:
        lang = detect_language(question)
        return self.generators.get(lang) or next(iter(self.generators.values()))


def create_app(served: Served) -> FastAPI:
    slots: dict[int, Slot] = {}
    for gen in served.generators.values():
        slots.setdefault(id(gen), Slot(gen.model, served.queue))
    jobs = JobQueue() if served.knowledge_bases is not None else None
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        for s in slots.values():
            s.close()
        if jobs is not None:
            jobs.close()

    docs = {"docs_url": "/docs", "openapi_url": "/openapi.json"} if served.docs else {"docs_url": None,
                                                                                         "openapi_url": None}
    app = FastAPI(title="ragkit", redoc_url=None, lifespan=lifespan, **docs)
    app.state.served, app.state.slots, app.state.jobs, app.state.metrics = served, slots, jobs, metrics
    page, csp = page_and_policy()
    created = int(time.time())
    if jobs is not None:
        requeue_pending(served, jobs)

    @app.exception_handler(oa.ApiError)
    async def api_error(_req, e: oa.ApiError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(KnowledgeBaseError)
    async def kb_error(_req, e: KnowledgeBaseError):
        code = {404: "not_found", 409: "conflict"}.get(e.status)
        return JSONResponse(oa.error_body(e.message, code=code), status_code=e.status)

    @app.exception_handler(UploadRefused)
    async def upload_error(_req, e: UploadRefused):
        return JSONResponse(oa.error_body(e.message, code="upload_refused"), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req, e: StarletteHTTPException):
        return JSONResponse(oa.error_body(str(e.detail)), status_code=e.status_code)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics_route():
        depth = {s.name: s.pending for s in slots.values()}
        counts = jobs.counts() if jobs is not None else {"queued": 0, "running": 0, "succeeded": 0, "failed": 0}
        return Response(metrics.render(depth, counts), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models():
        ids = ([("ragkit", next(iter(served.indexes)))] if served.indexes else []) + \
            [(f"ragkit/{n}", n) for n in served.indexes]
        data = [{"id": i, "object": "model", "created": created, "owned_by": "ragkit", "index": n,
                 "chunks": len(served.indexes[n])} for i, n in ids]
        if served.knowledge_bases is not None:
            data += [{"id": f"ragkit/{kb.name}", "object": "model", "created": kb.created, "owned_by": "ragkit",
                      "index": kb.name, "knowledge_base": True, "chunks": len(kb)} for kb in served.knowledge_bases.list()]
        return {"object": "list", "data": data}

    @app.post("/v1/retrieve")
    async def retrieve(request: Request):
        model, query, k, mode, kb = oa.parse_retrieve(await read_json(request), served.limits)
        _, index = served.index_for(model, kb)
        hits = await run_in_threadpool(index.search, query, k or served.k, mode or served.mode)
        return {"query": query, "hits": [h.to_dict() for h in hits]}  # exactly `ragkit search --json`

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        req = oa.parse_chat(await read_json(request), served.limits)
        model_id, index = served.index_for(req.model, req.knowledge_base)
        gen = served.generator_for(req.question)
        pipe = build_pipeline(served, index, gen, req)
        slot = slots[id(gen)]
        if req.stream:
            return stream_reply(slot, pipe, req, model_id, metrics)
        return await json_reply(request, slot, pipe, req, model_id, metrics)

    add_knowledge_routes(app, served, jobs)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index_page():
        return HTMLResponse(page, headers={
            "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"})

    return with_middleware(app, served, metrics)


def knowledge_bases(served: Served) -> KnowledgeBases:
    if served.knowledge_bases is None:
        raise oa.ApiError(404, "this server keeps no knowledge bases; start it with --data-dir DIR",
                          code="no_data_dir")
    return served.knowledge_bases


def add_knowledge_routes(app: FastAPI, served: Served, jobs: JobQueue | None) -> None:
    """Knowledge bases in the shape of OpenAI's vector stores: /v1/vector_stores[/NAME[/files[/FILE]]]
    and /v1/vector_stores/NAME/file_batches/JOB (an upload's or a delete's ingest job)."""

    def config():
        if served.ingest_config is not None:
            return served.ingest_config

        return IngestConfig()

    @app.get("/v1/vector_stores")
    async def list_kbs():
        kbs = knowledge_bases(served)
        return {"object": "list", "data": [kb.describe() for kb in kbs.list()]}

    @app.post("/v1/vector_stores")
    async def create_kb(request: Request):
        body = await read_json(request)
        if not isinstance(body, dict) or "name" not in body:
            raise oa.ApiError(400, "send {\"name\": NAME} to create a knowledge base", param="name")
        kb = await run_in_threadpool(knowledge_bases(served).create, body["name"])
        return JSONResponse(kb.describe(), status_code=201)

    @app.get("/v1/vector_stores/{name}")
    async def get_kb(name: str):
        return knowledge_bases(served).get(name).describe()

    @app.delete("/v1/vector_stores/{name}")
    async def delete_kb(name: str):
        kbs = knowledge_bases(served)
        kbs.get(name)
        busy = jobs.active(name)
        if busy:
            raise KnowledgeBaseError(409, f"the knowledge base '{name}' has {len(busy)} ingest job(s) queued or "
                                     f"running ({busy[0].id}); delete it when they have finished")
        await run_in_threadpool(kbs.delete, name)
        return {"id": name, "object": "vector_store.deleted", "deleted": True}

    @app.get("/v1/vector_stores/{name}/files")
    async def list_files(name: str):
        kb = knowledge_bases(served).get(name)
        deleting = {j.files[0]: j.id for j in jobs.active(name) if j.kind == "delete"}
        return {"object": "list", "data": kb.files(deleting)}

    @app.post("/v1/vector_stores/{name}/files")
    async def upload(name: str, request: Request):
        kb = knowledge_bases(served).get(name)
        limits = served.upload
        parts = parse_multipart(request.headers.get("content-type", ""), await request.body(), limits.max_files + 4)
        files = [p for p in parts if p.filename is not None]
        if not files:
            raise UploadRefused(400, "the upload holds no file; send each one as a multipart 'file' field")
        if len(files) > limits.max_files:
            raise UploadRefused(413, f"{len(files)} files in one upload; at most {limits.max_files} are accepted "
                                "(the server's --max-files)")
        names: list[str] = []
        for p in files:
            names.append(check_name(p.filename))
            check_file(p.filename, p.data, limits.max_file_bytes)
        if len(set(names)) != len(names):
            raise UploadRefused(400, "two files in this upload have the same name")
        waiting = kb.pending()
        clash = [n for n in names if n in waiting]
        if clash:
            raise KnowledgeBaseError(409, f"'{clash[0]}' is already waiting to be indexed (job {waiting[clash[0]]}); "
                                     "upload it again when that job has finished")
        job_id = new_job_id()
        await run_in_threadpool(store_upload, kb, job_id, [(n, p.data) for n, p in zip(names, files)])
        job = jobs.submit(name, "upload", names, upload_work(kb, config()), job_id=job_id)
        return JSONResponse(job.to_dict(), status_code=202)

    @app.delete("/v1/vector_stores/{name}/files/{file_name:path}")
    async def delete_file(name: str, file_name: str):
        kb = knowledge_bases(served).get(name)
        check_name(file_name)
        if file_name in kb.pending():
            raise KnowledgeBaseError(409, f"'{file_name}' is still waiting to be indexed; delete it when its job "
                                     "has finished")
        if file_name not in kb.stored_files():
            raise KnowledgeBaseError(404, f"the knowledge base '{name}' has no file named '{file_name}'")
        if any(j.kind == "delete" and j.files == [file_name] and j.status == "queued" for j in jobs.active(name)):
            raise KnowledgeBaseError(409, f"'{file_name}' is already being deleted")
        job = jobs.submit(name, "delete", [file_name], delete_work(kb, config(), file_name))
        return JSONResponse(job.to_dict(), status_code=202)

    @app.get("/v1/vector_stores/{name}/file_batches/{job_id}")
    async def get_job(name: str, job_id: str):
        knowledge_bases(served).get(name)
        job = jobs.get(job_id)
        if job is None or job.kb != name:
            raise KnowledgeBaseError(404, f"no job '{ascii(job_id)[1:-1][:40]}' for the knowledge base '{name}'")
        return job.to_dict()


def requeue_pending(served: Served, jobs: JobQueue) -> None:
    """Uploads whose jobs had not run when the server stopped are queued again under their ids;
    a knowledge base stopped mid-ingest (files with no status yet) is ingested again."""

    config = served.ingest_config or IngestConfig()
    for kb in served.knowledge_bases.list():
        by_job: dict[str, list[str]] = {}
        for name, job_id in kb.pending().items():
            by_job.setdefault(job_id, []).append(name)
        unindexed = [n for n in kb.stored_files() if n not in kb.statuses]
        if unindexed and not by_job:
            jobs.submit(kb.name, "upload", unindexed, upload_work(kb, config))
        for job_id, names in by_job.items():
            jobs.submit(kb.name, "upload", names, upload_work(kb, config), job_id=job_id)


class Counted:
    """Counts every answered request by route template and status for /metrics (outermost, so a
    401 from the guard counts too)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def sending(msg):
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            self.metrics.request(getattr(route, "path", None) or "unmatched", status)


def with_middleware(app: FastAPI, served: Served, metrics: Metrics):
    """Guard (body size, key, scope) inside; CORS, when allowed, outside it so preflights need no
    key; the request counter outermost."""
    app.add_middleware(Guard, keys=served.all_keys(), max_body_bytes=served.max_body_bytes,
                       max_upload_bytes=served.upload.max_upload_bytes,
                       public=PUBLIC | DOCS_PATHS if served.docs else PUBLIC)
    if served.cors_origin:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[served.cors_origin],
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Counted, metrics=metrics)
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


def answer_job(pipe: Pipeline, req: oa.ChatRequest, cancel: threading.Event):
    """The work of one chat request, for its model's slot: the follow-up made standalone (when
    there is history), then Pipeline.answer. Made when the request is submitted, so that
    `queue_ms` counts from submission for plain and streamed requests alike."""
    t_submit = time.perf_counter()

    def run(on_token=None):
        queue_ms = round((time.perf_counter() - t_submit) * 1000, 2)
        turn = follow_up(pipe.generator, req.history, req.question, closed_book=req.closed_book, cancel=cancel)
        ans = pipe.answer(turn.question, closed_book=req.closed_book, on_token=on_token, history=turn.turns,
                          instructions=req.instructions, query=turn.query, **cancel_kw(cancel, pipe.generator))
        ans.timings["queue_ms"] = queue_ms
        rewrite = turn.rewrite
        if rewrite is not None:
            ans.timings["rewrite_ms"] = rewrite.ms
            ans.rewrite = {"question": rewrite.question, "method": rewrite.method}
        return ans

    return run


def cancel_kw(cancel: threading.Event, gen: Generator) -> dict:
    """{'cancel': event} when Pipeline.answer and the backend's generate take it (llama.cpp: Stop
    also stops prompt reading); other backends stop at their next token through on_token."""
    takes = "cancel" in inspect.signature(gen.generate).parameters
    return {"cancel": cancel} if PIPELINE_TAKES_CANCEL and takes else {}


def failure(e: BaseException) -> oa.ApiError:
    if isinstance(e, oa.ApiError):
        return e
    if isinstance(e, BackendError):
        return oa.ApiError(502, str(e), type="server_error", code="backend_error")
    if isinstance(e, RagkitError):
        return oa.ApiError(400, str(e))
    return oa.ApiError(500, f"the server failed: {type(e).__name__}", type="server_error")


async def json_reply(request: Request, slot: Slot, pipe: Pipeline, req: oa.ChatRequest, model_id: str,
                     metrics: Metrics):
    cancel = threading.Event()
    run = answer_job(pipe, req, cancel)

    def on_token(_piece: str) -> None:
        if cancel.is_set():
            raise GenerationCancelled()

    fut = slot.submit(lambda: run(on_token), cancel)
    if fut is None:
        raise queue_full(slot)
    waiting = asyncio.wrap_future(fut)
    while not waiting.done():
        await asyncio.wait({waiting}, timeout=0.25)
        if not waiting.done() and await request.is_disconnected():
            slot.cancel(fut, cancel)
            return Response(status_code=499)  # nobody reads it; llama.cpp stops between prompt slices, others at a token
    try:
        ans = waiting.result()
    except Exception as e:
        raise failure(e) from None
    metrics.answered(ans.timings, ans.prompt_tokens, ans.completion_tokens)
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


def stream_reply(slot: Slot, pipe: Pipeline, req: oa.ChatRequest, model_id: str,
                 metrics: Metrics) -> StreamingResponse:
    cancel = threading.Event()
    tokens = TokenStream(cancel)
    fut = slot.submit(tokens.run(answer_job(pipe, req, cancel)), cancel)
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
                metrics.answered(value.timings, value.prompt_tokens, value.completion_tokens)
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
