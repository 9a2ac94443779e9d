"""OpenAI-shaped requests and replies for `ragkit serve`: validation, chat.completion bodies, chunks.

Requests are read by hand (not through pydantic models) so that every bad field gets one
OpenAI-style 400 body that names the field, the same shape clients already handle:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "k", "code": null}}

A reply carries, beside `choices`, what a RAG client needs and OpenAI's schema has no place for:
`sources` (`[n]` in the text is always `sources[n-1]`), `refused` and `timings`. In a stream they
come once, on the last chunk before `data: [DONE]`.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field

from ..generate.citations import parse_citations, strip_citations
from ..index import MODES
from ..lang import tokenize_for_search
from ..types import Answer, Hit


class ApiError(Exception):
    """An error reply: HTTP status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass
class Limits:
    """Caps on what one request may ask for (each breach is a 400 that names the field)."""

    max_question_chars: int = 2000
    max_messages: int = 64
    max_k: int = 20
    max_tokens: int = 2048


@dataclass
class ChatRequest:
    model: str | None
    question: str
    stream: bool
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    k: int | None
    mode: str | None
    closed_book: bool
    history: list[dict] = field(default_factory=list)  # user/assistant turns before the question
    instructions: str | None = None  # the system messages, an instruction under the grounding rules
    knowledge_base: str | None = None


def _field(body: dict, name: str):
    """A field at the top level or inside `extra_body` (the openai client merges extra_body into
    the top level; a hand-written request may nest it)."""
    if name in body:
        return body[name]
    extra = body.get("extra_body")
    return extra.get(name) if isinstance(extra, dict) else None


def _int(body: dict, name: str, lo: int, hi: int) -> int | None:
    v = _field(body, name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ApiError(400, f"'{name}' must be an integer from {lo} to {hi}", param=name)
    return v


def _number(body: dict, name: str, lo: float, hi: float, open_lo: bool = False) -> float | None:
    v = _field(body, name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not (lo < v if open_lo else lo <= v) or v > hi:
        raise ApiError(400, f"'{name}' must be a number in {'(' if open_lo else '['}{lo}, {hi}]", param=name)
    return float(v)


def _bool(body: dict, name: str) -> bool:
    v = _field(body, name)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ApiError(400, f"'{name}' must be true or false", param=name)
    return v


def _mode(body: dict) -> str | None:
    v = _field(body, "mode")
    if v is not None and v not in MODES:
        raise ApiError(400, f"'mode' must be one of {', '.join(MODES)}", param="mode")
    return v


def _text(content) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
    raise ApiError(400, "a message's 'content' must be a string or a list of text parts", param="messages")


def check_question(text: str, limits: Limits, param: str) -> str:
    if not text.strip():
        raise ApiError(400, "the question is empty", param=param)
    if len(text) > limits.max_question_chars:
        raise ApiError(400, f"the question is {len(text)} characters; at most {limits.max_question_chars} "
                       "are accepted", param=param)
    return text.strip()


def parse_chat(body, limits: Limits) -> ChatRequest:
    """A validated chat request: the last user message is the question."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    if len(messages) > limits.max_messages:
        raise ApiError(400, f"{len(messages)} messages sent; at most {limits.max_messages} are accepted",
                       param="messages")
    if not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "each message must be an object with 'role' and 'content'", param="messages")
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        raise ApiError(400, "no message has role 'user'; the last user message is the question", param="messages")
    question = check_question(_text(messages[users[-1]].get("content")), limits, "messages")
    history = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages[: users[-1]]
               if m.get("role") in ("user", "assistant") and m.get("content") is not None]
    system = [_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    instructions = " ".join(" ".join(system).split()) or None
    if instructions and len(instructions) > limits.max_question_chars:
        raise ApiError(400, f"the system message is {len(instructions)} characters; at most "
                       f"{limits.max_question_chars} are accepted", param="messages")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "'model' must be a string", param="model")
    stream = _bool(body, "stream")
    return ChatRequest(
        model=model, question=question, stream=stream,
        max_tokens=_int(body, "max_tokens", 1, limits.max_tokens) or _int(body, "max_completion_tokens", 1,
                                                                          limits.max_tokens),
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0, open_lo=True),
        k=_int(body, "k", 1, limits.max_k), mode=_mode(body), closed_book=_bool(body, "closed_book"),
        history=history, instructions=instructions, knowledge_base=_kb_name(body),
    )


def _kb_name(body: dict) -> str | None:
    """The knowledge base a request names: `knowledge_base`, or the first of OpenAI's `vector_store_ids`."""
    v = _field(body, "knowledge_base")
    if v is None:
        ids = _field(body, "vector_store_ids")
        if ids is not None and (not isinstance(ids, list) or len(ids) != 1):
            raise ApiError(400, "'vector_store_ids' must be a list of one knowledge-base name", param="vector_store_ids")
        v = ids[0] if ids else None
    if v is not None and not isinstance(v, str):
        raise ApiError(400, "'knowledge_base' must be a string", param="knowledge_base")
    return v


def parse_retrieve(body, limits: Limits) -> tuple[str | None, str, int | None, str | None, str | None]:
    """(model, query, k, mode, knowledge_base) of a /v1/retrieve body."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    query = body.get("query")
    if not isinstance(query, str):
        raise ApiError(400, "'query' must be a string", param="query")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "'model' must be a string", param="model")
    return (model, check_question(query, limits, "query"), _int(body, "k", 1, limits.max_k), _mode(body),
            _kb_name(body))


# ------------------------------------------------------------------------------------ replies
def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def highlight(answer: str, n: int, passage: str) -> list[int] | None:
    """[start, end) of the passage text that supports what the answer says with marker [n].

    The answer's sentence carrying [n] (the whole answer when it has no markers), stripped of
    markers: found verbatim in the passage, that occurrence; else the passage sentence sharing
    the most of its words. None when nothing is shared.
    """
    # "… is 5,000 Pa. [1]": a marker after the full stop belongs to the sentence before it.
    answer = re.sub(r"([.!?。！？])((?:\s*[\[【][\d\s,，、;\-–]+[\]】])+)", r"\2\1", answer)
    sentences = re.split(r"(?<=[.!?。！？])\s*", answer)
    cited = [s for s in sentences if n in parse_citations(s, 10**6)] or [answer]
    claim = strip_citations(" ".join(cited)).strip().rstrip(".。")
    if not claim:
        return None
    i = passage.lower().find(claim.lower())
    if i >= 0:
        return [i, i + len(claim)]
    words = {w.lower() for w in tokenize_for_search(claim)}
    best, best_shared = None, 0
    for m in re.finditer(r"[^.!?。！？\n]+[.!?。！？]?", passage):
        shared = len(words & {w.lower() for w in tokenize_for_search(m.group())})
        if shared > best_shared:
            a = m.start() + len(m.group()) - len(m.group().lstrip())
            best, best_shared = [a, m.end()], shared
    return best


def sources(ans: Answer) -> list[dict]:
    cited = {c.number for c in ans.citations}
    return [source(i, h, ans.answer if i in cited else None) for i, h in enumerate(ans.hits, 1)]


def source(n: int, h: Hit, answer: str | None) -> dict:
    return {"n": n, "source": h.source, "page": h.page, "start": h.start, "end": h.end, "score": h.score,
            "text": h.text, "cited": answer is not None,
            "highlight": highlight(answer, n, h.text) if answer is not None else None}


def finish_reason(ans: Answer, max_tokens: int) -> str:
    return "length" if ans.completion_tokens >= max_tokens and not ans.refused else "stop"


def usage(ans: Answer) -> dict:
    return {"prompt_tokens": ans.prompt_tokens, "completion_tokens": ans.completion_tokens,
            "total_tokens": ans.prompt_tokens + ans.completion_tokens}


def rag_fields(ans: Answer) -> dict:
    """`rewrite` ({question, method}) when a follow-up was made standalone for retrieval (app.answer_job)."""
    out = {"sources": sources(ans), "refused": ans.refused, "timings": ans.timings,
           "llm": {"model": ans.model, "backend": ans.backend}}
    if getattr(ans, "rewrite", None):
        out["rewrite"] = ans.rewrite
    return out


def chat_completion(ans: Answer, model: str, max_tokens: int) -> dict:
    return {
        "id": completion_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ans.answer},
                     "finish_reason": finish_reason(ans, max_tokens)}],
        "usage": usage(ans), **rag_fields(ans),
    }


def chunk(cid: str, model: str, delta: dict, finish: str | None = None, **extra) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def last_chunk(cid: str, model: str, ans: Answer, streamed: str, max_tokens: int) -> dict:
    """The closing chunk: what the answer gained after generation (citation markers the pipeline
    inferred), or, when the pipeline replaced the streamed text (a model's own refusal becomes the
    canonical one), the whole final text in `answer`; then sources, refused, usage and timings."""
    extra = {}
    delta = {}
    if ans.answer.startswith(streamed):
        if ans.answer[len(streamed):]:
            delta["content"] = ans.answer[len(streamed):]
    else:
        extra["answer"] = ans.answer
    return chunk(cid, model, delta, finish_reason(ans, max_tokens), usage=usage(ans), **rag_fields(ans), **extra)
