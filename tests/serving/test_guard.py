"""The ASGI guard in front of the service: body size limit and optional API key."""

import asyncio
import json

import pytest

from mlops.serving.guard import RequestGuard


async def downstream(scope, receive, send):
    message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"echo:" + message["body"]})


def call(guard, path="/classify", headers=(), chunks=(b"{}",), method="GET", unread=None):
    sent, queue = [], [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                       for i, c in enumerate(chunks)]

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start" and unread is not None:
            unread.append(len(queue))  # body chunks the client was still sending when the answer began
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [(k.encode(), v.encode()) for k, v in headers]}
    asyncio.run(guard(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


@pytest.fixture
def guard(monkeypatch):
    monkeypatch.delenv("TEST_KEY", raising=False)
    return RequestGuard(downstream, max_body_bytes=100, api_key_env="TEST_KEY")


def test_small_body_passes_through_unchanged(guard):
    assert call(guard, chunks=(b'{"texts":', b' ["a"]}')) == (200, b'echo:{"texts": ["a"]}')


def test_declared_oversize_is_refused_before_reading(guard):
    status, body = call(guard, headers=[("content-length", "5000")])
    assert status == 413 and "5000 bytes exceeds the limit of 100" in json.loads(body)["error"]


def test_streamed_oversize_is_refused(guard):
    status, _ = call(guard, chunks=(b"x" * 60, b"x" * 60))
    assert status == 413


def test_oversize_body_is_drained_before_the_answer_within_a_bound(guard):
    """A client that sends its whole body before reading (urllib) must get the 413, not a broken pipe."""
    unread = []
    assert call(guard, headers=[("content-length", "500")], chunks=[b"x" * 50] * 10, unread=unread)[0] == 413
    assert call(guard, chunks=[b"x" * 50] * 10, unread=unread)[0] == 413
    assert unread == [0, 0]
    unread.clear()  # beyond 8x the limit the guard stops reading and answers
    assert call(guard, headers=[("content-length", "50000")], chunks=[b"x" * 100] * 500, unread=unread)[0] == 413
    assert 0 < unread[0] < 500


def test_api_key_required_when_configured(guard, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "s3cret")
    assert call(guard)[0] == 401
    assert call(guard, headers=[("authorization", "Bearer wrong")])[0] == 401
    assert call(guard, headers=[("authorization", "Bearer s3cret")])[0] == 200
    assert call(guard, headers=[("x-api-key", "s3cret")])[0] == 200
    assert call(guard, path="/readyz")[0] == 200  # probes and metrics stay open
    assert call(guard, path="/")[0] == call(guard, path="/docs")[0] == 200  # and the docs
    assert call(guard, path="/static_content/swagger-ui.css")[0] == 200
    assert call(guard, path="/classify/")[0] == 401


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/vnd.bentoml+pickle"])
def test_post_that_is_not_json_gets_415(guard, content_type):
    headers = [("content-type", content_type)] if content_type else []
    status, body = call(guard, headers=headers, method="POST")
    assert status == 415 and "must be application/json" in json.loads(body)["error"]


def test_post_json_with_charset_passes(guard):
    headers = [("content-type", "application/json; charset=utf-8")]
    assert call(guard, headers=headers, method="POST")[0] == 200
