"""ASGI middleware in front of the service: request size limit and optional API key.

BentoML validates a request only after reading all of it, so a 100 MB body
costs memory and seconds before the 400; this guard refuses it (413) as soon
as the declared or streamed size passes the limit. BentoML also parses any
body it does not recognise as JSON; a POST that does not declare JSON gets 415
here instead. When the API key's
environment variable is set, every endpoint but the health, metrics and docs
endpoints needs `Authorization: Bearer <key>` or `X-API-Key: <key>` (401
otherwise). The key never comes from a config file.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PUBLIC_PATHS = ("/livez", "/readyz", "/healthz", "/metrics", "/docs", "/static_content/")  # and "/", the docs UI


async def reply(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


DRAIN_FACTOR = 8  # an over-limit body is read and dropped up to this many times the limit before the answer


async def drain(receive: Receive, limit: int) -> None:
    """Read and drop what the client is still sending, up to `limit` bytes.

    A client such as urllib or requests sends its whole body before it reads
    the answer; a server that answers and closes mid-body leaves it with a
    broken pipe instead of the 413. Nothing read here is kept.
    """
    dropped = 0
    while dropped <= limit:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return
        dropped += len(message.get("body", b""))


class RequestGuard:
    def __init__(self, app: Any, max_body_bytes: int, api_key_env: str) -> None:
        self.app, self.max_body_bytes, self.api_key_env = app, max_body_bytes, api_key_env

    def authorised(self, headers: dict[bytes, bytes]) -> bool:
        key = os.environ.get(self.api_key_env, "")
        if not key:
            return True
        bearer = headers.get(b"authorization", b"").decode("latin-1")
        given = bearer[7:] if bearer.lower().startswith("bearer ") else headers.get(b"x-api-key", b"").decode("latin-1")
        return hmac.compare_digest(given.encode(), key.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/" or scope["path"].startswith(PUBLIC_PATHS):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if not self.authorised(headers):
            await drain(receive, self.max_body_bytes)
            return await reply(send, 401, f"missing or wrong API key (set {self.api_key_env} on the server; "
                                          "send Authorization: Bearer <key>)", [(b"www-authenticate", b"Bearer")])
        if scope.get("method") == "POST":
            media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if media_type != b"application/json":
                shown = media_type.decode("latin-1") or "none"
                await drain(receive, self.max_body_bytes)
                return await reply(send, 415, f"Content-Type must be application/json, not {shown}")
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await drain(receive, DRAIN_FACTOR * self.max_body_bytes)
            return await reply(send, 413, f"request body of {int(declared)} bytes exceeds the limit of "
                                          f"{self.max_body_bytes} bytes")
        chunks, size = [], 0
        while True:  # read the body here, within the limit, then hand it on
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                if message.get("more_body"):
                    await drain(receive, DRAIN_FACTOR * self.max_body_bytes)
                return await reply(send, 413, f"request body exceeds the limit of {self.max_body_bytes} bytes")
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
