"""ASGI middleware in front of the service: request size limit, and who may ask what.

BentoML validates a request only after reading all of it, so a 100 MB body
costs memory and seconds before the 400; this guard refuses it (413) as soon
as the declared or streamed size passes the limit. BentoML also parses any
body it does not recognise as JSON; a POST that does not declare JSON gets 415
here instead. Every endpoint but the health and docs endpoints needs a
credential of the right role (mlops/serving/credentials.py): a client or a
labeller key for `/classify` and `/feedback`, the metrics key for `/metrics`
when one is configured; 401 without one, 403 with the wrong role. The
request's identity travels on in its scope (`IDENTITY`) for `/feedback` to
record as the label's source. Keys never come from a config file.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mlops.serving.credentials import Credentials, Identity, key_of

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PUBLIC_PATHS = ("/livez", "/readyz", "/healthz", "/docs", "/static_content/")  # and "/", the docs UI
METRICS_PATH = "/metrics"
IDENTITY = "mlops.identity"  # the scope key under which the request's Identity travels


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
    def __init__(self, app: Any, max_body_bytes: int, credentials: Credentials) -> None:
        self.app, self.max_body_bytes, self.credentials = app, max_body_bytes, credentials

    def identify(self, scope: Scope, headers: dict[bytes, bytes]) -> Identity | None:
        """The request's identity: its key's credential, else who a keyless request is (None: refused)."""
        key = key_of(headers)
        if key:
            return self.credentials.identify(key)
        peer = (scope.get("client") or (None,))[0]
        return self.credentials.anonymous(peer)

    def refusal(self, scope: Scope, identity: Identity | None) -> tuple[int, str] | None:
        """The status and message a request is refused with, or None when its identity may make it."""
        variables = self.credentials.variables
        if scope["path"].startswith(METRICS_PATH):
            if not self.credentials.metrics_guarded or (identity is not None and identity.role == "metrics"):
                return None
            return 401, f"/metrics needs the metrics key (set by {variables.get('metrics')} on the server)"
        if identity is None:
            if self.credentials.guarded:
                return 401, (f"missing or wrong API key (set {variables.get('client')} or {variables.get('labeller')} "
                             "on the server; send Authorization: Bearer <key>)")
            return 401, ("this service has no keys and answers anonymous requests from loopback only: set "
                         f"{variables.get('client')} and {variables.get('labeller')} on the server (or "
                         "serve.allow_anonymous: true)")
        if identity.role == "metrics":
            return 403, "the metrics key reads /metrics only; use a client or labeller key"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/" or scope["path"].startswith(PUBLIC_PATHS):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        identity = self.identify(scope, headers)
        refused = self.refusal(scope, identity)
        if refused is not None:
            await drain(receive, self.max_body_bytes)
            return await reply(send, refused[0], refused[1],
                               [(b"www-authenticate", b"Bearer")] if refused[0] == 401 else None)
        scope[IDENTITY] = identity
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
