"""The server's front door, as one pure ASGI middleware: the API key and its scope first, then the body size.

A body over `max_body_bytes` is refused with 413 before anything parses it: by its
Content-Length when it declares one, else while it is read (chunked uploads), so a client
cannot make the server buffer more than the limit. Every `/v1/*` route needs
`Authorization: Bearer KEY` when a key is set (keys.py: --api-key and --keys, compared in
constant time); a missing or wrong key gets 401 with an OpenAI-style body, and a read key on a
route that changes knowledge bases gets 403. An upload (POST /v1/vector_stores/NAME/files) may be
up to --max-upload-bytes, every other body up to --max-body-bytes. Only `/healthz`, the page itself (`/`, which holds no data) and, with --docs, the OpenAPI
page and schema are public (an allow-list: a route added later is guarded unless it is named here); the
page sends the key it keeps in sessionStorage with each API call. CORS preflights (OPTIONS) are
answered by the CORS middleware outside this one, and only when `--cors-origin` allows one.
"""

from __future__ import annotations

import json
import re

from .keys import ApiKey, match_key, scope_needed
from .openai_api import error_body

PUBLIC = frozenset({"/", "/healthz"})  # everything else needs the key when one is set
UPLOAD_PATH = re.compile(r"^/v1/vector_stores/[^/]+/files$")  # bodies up to --max-upload-bytes


async def send_json(send, status: int, body: dict, headers: dict | None = None) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for k, v in headers:
        if k.lower() == b"authorization":
            scheme, _, token = v.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


class Guard:
    def __init__(self, app, keys: list[ApiKey], max_body_bytes: int, max_upload_bytes: int | None = None,
                 public: frozenset[str] = PUBLIC):
        self.app = app
        self.public = public
        self.keys = keys
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes or max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.keys and scope["path"] not in self.public and scope["method"] != "OPTIONS":
            given = bearer(scope["headers"])
            if not given:
                return await send_json(send, 401, error_body(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                    code="invalid_api_key"), {"www-authenticate": "Bearer"})
            key = match_key(given, self.keys)
            if key is None:
                return await send_json(send, 401, error_body("Incorrect API key provided.", code="invalid_api_key"),
                                       {"www-authenticate": "Bearer"})
            if not key.allows(scope_needed(scope["method"], scope["path"])):
                return await send_json(send, 403, error_body(
                    f"the key '{key.name}' has the read scope; creating, uploading and deleting need an admin key",
                    type="permission_error", code="insufficient_scope"))
            scope.setdefault("state", {})["key_name"] = key.name
        if scope["method"] in ("POST", "PUT", "PATCH"):
            limit = self.max_upload if UPLOAD_PATH.match(scope["path"]) else self.max_body
            receive = await self._bounded_body(scope, receive, send, limit)
            if receive is None:
                return
        return await self.app(scope, receive, send)

    async def _bounded_body(self, scope, receive, send, limit: int):
        """The request's body read in full, at most `limit` bytes, replayed to the app; None (413
        already sent) when it is larger."""
        length = next((v for k, v in scope["headers"] if k.lower() == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._too_large(send, limit)
            return None
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            size += len(msg.get("body", b""))
            if size > limit:
                await self._too_large(send, limit)
                return None
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls: wait for the disconnect as the app expects

        return replay

    async def _too_large(self, send, limit: int) -> None:
        flag = "--max-upload-bytes" if limit == self.max_upload and limit != self.max_body else "--max-body-bytes"
        await send_json(send, 413, error_body(
            f"the request body is larger than {limit} bytes (the server's {flag})",
            code="request_too_large"))
