"""The server's front door, as one pure ASGI middleware: the API key first, then the body size.

A body over `max_body_bytes` is refused with 413 before anything parses it: by its
Content-Length when it declares one, else while it is read (chunked uploads), so a client
cannot make the server buffer more than the limit. Every `/v1/*` route needs
`Authorization: Bearer KEY` when a key is set; the key is compared with `secrets.compare_digest`
(time independent of where the strings differ) and a missing or wrong key gets 401 with an
OpenAI-style body. Only `/healthz` and the page itself (`/`, which holds no data) are public (an
allow-list: a route added later is guarded unless it is named here); the
page sends the key it keeps in sessionStorage with each API call. CORS preflights (OPTIONS) are
answered by the CORS middleware outside this one, and only when `--cors-origin` allows one.
"""

from __future__ import annotations

import json
import secrets

from .openai_api import error_body

PUBLIC = frozenset({"/", "/healthz"})  # everything else needs the key when one is set


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
    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.key is not None and scope["path"] not in PUBLIC and scope["method"] != "OPTIONS":
            given = bearer(scope["headers"])
            if not given:
                return await send_json(send, 401, error_body(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                    code="invalid_api_key"), {"www-authenticate": "Bearer"})
            if not secrets.compare_digest(given.encode("utf-8", "replace"), self.key):
                return await send_json(send, 401, error_body("Incorrect API key provided.", code="invalid_api_key"),
                                       {"www-authenticate": "Bearer"})
        if scope["method"] in ("POST", "PUT", "PATCH"):
            receive = await self._bounded_body(scope, receive, send)
            if receive is None:
                return
        return await self.app(scope, receive, send)

    async def _bounded_body(self, scope, receive, send):
        """The request's body read in full, at most max_body bytes, replayed to the app; None (413
        already sent) when it is larger."""
        length = next((v for k, v in scope["headers"] if k.lower() == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(send)
            return None
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            size += len(msg.get("body", b""))
            if size > self.max_body:
                await self._too_large(send)
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

    async def _too_large(self, send) -> None:
        await send_json(send, 413, error_body(
            f"the request body is larger than {self.max_body} bytes (the server's --max-body-bytes)",
            code="request_too_large"))
