"""The ASGI guard in front of the service: body size limit, and credentials with roles."""

import asyncio
import json

import pytest

from mlops.core.settings import ServeSettings
from mlops.serving.credentials import Credentials, digest_of
from mlops.serving.guard import IDENTITY, RequestGuard

SEEN = []  # the identity each request reached the app with


async def downstream(scope, receive, send):
    SEEN.append(scope.get(IDENTITY))
    message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"echo:" + message["body"]})


def call(guard, path="/classify", headers=(), chunks=(b"{}",), method="GET", unread=None, peer="127.0.0.1"):
    sent, queue = [], [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                       for i, c in enumerate(chunks)]

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start" and unread is not None:
            unread.append(len(queue))  # body chunks the client was still sending when the answer began
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "client": (peer, 50000),
             "headers": [(k.encode(), v.encode()) for k, v in headers]}
    asyncio.run(guard(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


SERVE = {"api_key_env": "TEST_CLIENT_KEY", "label_key_env": "TEST_LABEL_KEY", "metrics_key_env": "TEST_METRICS_KEY",
         "keys_file_env": "TEST_KEYS_FILE"}


def serve_settings(repo_params, **overrides):
    return ServeSettings(**{**repo_params["serve"], **SERVE, **overrides})


def keyed(repo_params, environ, **overrides):
    return RequestGuard(downstream, max_body_bytes=100,
                        credentials=Credentials.from_environment(serve_settings(repo_params, **overrides), environ))


@pytest.fixture
def guard(repo_params):
    return keyed(repo_params, {})


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


def test_keys_are_required_on_every_api_path_when_configured(repo_params):
    guard = keyed(repo_params, {"TEST_CLIENT_KEY": "s3cret"})
    assert call(guard)[0] == 401
    assert call(guard, headers=[("authorization", "Bearer wrong")])[0] == 401
    assert call(guard, headers=[("authorization", "Bearer s3cret")])[0] == 200
    assert call(guard, headers=[("x-api-key", "s3cret")])[0] == 200
    assert call(guard, path="/feedback")[0] == 401  # loopback is no exemption once keys exist
    assert call(guard, path="/readyz")[0] == 200  # probes stay open
    assert call(guard, path="/metrics")[0] == 200  # and metrics, while no metrics key is set
    assert call(guard, path="/")[0] == call(guard, path="/docs")[0] == 200  # and the docs
    assert call(guard, path="/static_content/swagger-ui.css")[0] == 200
    assert call(guard, path="/classify/")[0] == 401


def test_each_key_names_its_role_and_source(repo_params):
    """Given a client key and a labeller key, when each calls, then the app sees who called and in what role."""
    guard = keyed(repo_params, {"TEST_CLIENT_KEY": "client-key", "TEST_LABEL_KEY": "label-key"})
    SEEN.clear()
    assert call(guard, path="/feedback", headers=[("authorization", "Bearer client-key")])[0] == 200
    assert call(guard, path="/feedback", headers=[("x-api-key", "label-key")])[0] == 200
    assert [(i.name, i.role) for i in SEEN] == [("client", "client"), ("labeller", "labeller")]


def test_named_keys_from_a_hashed_keys_file(repo_params, tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"- {{name: alice, role: labeller, sha256: {digest_of('alice-key').hex()}}}\n"
                    f"- {{name: shop-frontend, role: client, sha256: {digest_of('shop-key').hex()}}}\n")
    guard = keyed(repo_params, {"TEST_KEYS_FILE": str(keys)})
    SEEN.clear()
    assert call(guard, headers=[("authorization", "Bearer alice-key")])[0] == 200
    assert call(guard, headers=[("authorization", "Bearer shop-key")])[0] == 200
    assert call(guard)[0] == 401 and call(guard, headers=[("x-api-key", digest_of("alice-key").hex())])[0] == 401
    assert [(i.name, i.role) for i in SEEN] == [("alice", "labeller"), ("shop-frontend", "client")]


@pytest.mark.parametrize(("text", "fragment"), [
    ("- {name: a, role: admin, sha256: " + "0" * 64 + "}", "role must be one of"),
    ("- {name: a, role: client, sha256: abc}", "64 hex digits"),
    ("- {name: a, role: client}", "exactly the fields"),
    ("{name: a}", "expected a list"),
])
def test_a_bad_keys_file_is_refused_naming_the_entry(repo_params, tmp_path, text, fragment):
    from mlops.core.errors import MlopsError

    keys = tmp_path / "keys.yaml"
    keys.write_text(text)
    with pytest.raises(MlopsError, match=fragment):
        keyed(repo_params, {"TEST_KEYS_FILE": str(keys)})


def test_metrics_key_guards_metrics_and_nothing_else(repo_params):
    guard = keyed(repo_params, {"TEST_CLIENT_KEY": "c", "TEST_METRICS_KEY": "m"})
    assert call(guard, path="/metrics")[0] == 401
    assert call(guard, path="/metrics", headers=[("authorization", "Bearer c")])[0] == 401  # a client is not it
    assert call(guard, path="/metrics", headers=[("authorization", "Bearer m")])[0] == 200
    assert call(guard, headers=[("authorization", "Bearer m")])[0] == 403  # it classifies nothing


def test_without_keys_only_loopback_is_answered_as_the_local_operator(guard):
    SEEN.clear()
    assert call(guard, path="/feedback", peer="127.0.0.1")[0] == 200
    assert call(guard, path="/feedback", peer="::1")[0] == 200
    status, body = call(guard, path="/feedback", peer="10.1.2.3")
    assert status == 401 and "loopback only" in json.loads(body)["error"]
    assert [(i.name, i.role) for i in SEEN] == [("local", "labeller")] * 2


def test_allow_anonymous_admits_remote_callers_as_untrusted_clients(repo_params):
    guard = keyed(repo_params, {}, allow_anonymous=True)
    SEEN.clear()
    assert call(guard, path="/feedback", peer="10.1.2.3")[0] == 200
    assert [(i.name, i.role) for i in SEEN] == [("anonymous", "client")]


@pytest.mark.parametrize(("host", "environ", "allowed"), [
    ("127.0.0.1", {}, True), ("localhost", {}, True), ("0.0.0.0", {}, False), ("::", {}, False),
    ("0.0.0.0", {"TEST_CLIENT_KEY": "k"}, True), ("0.0.0.0", {"TEST_METRICS_KEY": "k"}, False)])
def test_binding_beyond_loopback_needs_keys(repo_params, host, environ, allowed):
    refusal = Credentials.from_environment(serve_settings(repo_params), environ).refusal(host)
    assert (refusal is None) == allowed
    if refusal:
        assert "TEST_CLIENT_KEY" in refusal and "TEST_LABEL_KEY" in refusal


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/vnd.bentoml+pickle"])
def test_post_that_is_not_json_gets_415(guard, content_type):
    headers = [("content-type", content_type)] if content_type else []
    status, body = call(guard, headers=headers, method="POST")
    assert status == 415 and "must be application/json" in json.loads(body)["error"]


def test_post_json_with_charset_passes(guard):
    headers = [("content-type", "application/json; charset=utf-8")]
    assert call(guard, headers=headers, method="POST")[0] == 200


def test_make_serve_beyond_loopback_without_keys_refuses_to_start():
    """As a user types it: `make serve HOST=0.0.0.0` with no key in the environment stops before any server starts,
    with one line naming the variables to set."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    result = subprocess.run(["make", "-s", "serve", "HOST=0.0.0.0", "PORT=1"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without keys" in result.stderr and "MLOPS_LABEL_KEY" in result.stderr
    assert "serving" not in result.stdout  # the registry was never asked for a Bento, nothing was started
