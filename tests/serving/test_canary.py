"""Canary in the service: who a client is, where it falls, what the judge says; then one served champion (2
workers, tiny classifiers) through a canary at 0.25 under 16 clients, `mlops registry rollback`, a broken
candidate rolled back by itself, and a healthy one promoted in full, every client answered throughout."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import yaml

from mlops.core.settings import parse_settings
from mlops.serving.canary import (
    CANDIDATE,
    CHAMPION,
    CanaryRouter,
    client_id,
    judge,
    placement,
    prune_stats,
    stats_dir,
)
from mlops.serving.credentials import Identity
from mlops.serving.guard import IDENTITY
from tests.helpers import (
    BIN,
    ROOT,
    free_port,
    project_env,
    start_server,
    stop,
    tiny_params,
    wait_ready,
    webhook_receiver,
)


def test_a_client_is_its_header_else_its_named_credential_else_nobody_in_particular():
    assert client_id({"headers": [(b"x-client-id", b"shop-42")]}) == "client:shop-42"
    assert client_id({"headers": [], IDENTITY: Identity("acme", "client")}) == "key:acme"
    assert client_id({"headers": [], IDENTITY: Identity("local", "labeller")}) is None  # keyless loopback
    assert client_id({"headers": [], IDENTITY: Identity("anonymous", "client")}) is None


def test_placement_is_sticky_per_client_and_canary_and_fills_the_share():
    assert placement("client:a", "c1") == placement("client:a", "c1")
    inside = sum(placement(f"client:{i}", "c1") < 0.25 for i in range(4000)) / 4000
    assert 0.22 < inside < 0.28, inside
    moved = sum((placement(f"client:{i}", "c1") < 0.25) != (placement(f"client:{i}", "c2") < 0.25)
                for i in range(4000))
    assert moved > 500  # a new canary draws its clients afresh


def arms(candidate_requests=0, errors=0, candidate_p95=5.0, champion_ok=200, champion_p95=5.0):
    return {CANDIDATE: {"requests": candidate_requests, "errors": errors, "ok": candidate_requests - errors,
                        "p95_ms": candidate_p95, "last_error": "ValueError: x" if errors else None},
            CHAMPION: {"requests": champion_ok, "errors": 0, "ok": champion_ok, "p95_ms": champion_p95,
                       "last_error": None}}


def test_the_judge_rolls_back_at_the_first_breach_and_promotes_after_enough_healthy_answers(repo_params):
    config = parse_settings(repo_params).promote  # 500 requests, 50 minimum, 2% errors, 1.5x latency, 0.02 drop
    assert judge(arms(10, errors=1), {}, config)[0] is None  # 1 error is 1/50: tolerated
    verdict, reason = judge(arms(10, errors=2), {}, config)
    assert verdict == "rollback" and "2 of 10 canary requests failed" in reason and "ValueError: x" in reason
    assert judge(arms(40, candidate_p95=50), {}, config)[0] is None  # too few answers to judge latency
    assert judge(arms(60, candidate_p95=50), {}, config)[0] == "rollback"
    measured = {CANDIDATE: {"status": "measured", "accuracy": 0.6, "accuracy_ci": [0.5, 0.7], "labelled": 80},
                CHAMPION: {"status": "measured", "accuracy": 0.9, "accuracy_ci": [0.85, 0.93], "labelled": 300}}
    verdict, reason = judge(arms(60), measured, config)
    assert verdict == "rollback" and "live accuracy 0.6" in reason
    measured[CANDIDATE]["accuracy_ci"] = [0.8, 0.95]  # the labels do not rule out that it is as good
    assert judge(arms(60), measured, config)[0] is None
    assert judge(arms(500), measured, config)[0] == "promote"


def test_a_router_routes_only_a_loaded_canary_that_has_not_expired(tmp_path):
    record = {"id": "c1", "model": "m:2", "share": 0.5,
              "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    router = CanaryRouter(lambda tag: f"model-{tag}", lambda: record, tmp_path, poll_s=1)
    router.sync()
    routed = {router.route(f"client:{i}") is not None for i in range(50)}
    assert routed == {True, False} and router.route("client:0") == router.route("client:0")
    record["expires_at"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()  # its watcher died
    router.sync()
    assert router.route("client:0") is None and router.model is None


# ---- served: one service, several canaries in a row (the tests below run in order and share it) ----

KEY = "canary-test-key"
LABELS = ["billing", "delivery", "technical"]


def register(root, env, sources) -> list[str]:
    """Store each (name, model dir, labels) in the project's BentoML store; their tags."""
    script = ("import sys, json, shutil\nfrom pathlib import Path\nfrom mlops.ml.model import save_label_map\n"
              "from mlops.core.registry import register_model\n"
              f"for name, source, labels in json.loads({json.dumps(json.dumps(sources))}):\n"
              f"    out = Path({str(root)!r}) / name\n"
              "    shutil.copytree(source, out)\n"
              "    save_label_map(out, labels, 48)\n"
              "    print(register_model('text-classifier', out, {}))\n")
    done = subprocess.run([str(BIN / "python"), "-c", script], env=env, cwd=root, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip().splitlines()[-len(sources):]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_classifier_dir, tiny_model_dir):
    from mlops.core import registry
    from mlops.serving import promotion

    root = tmp_path_factory.mktemp("canary-served")
    env = project_env(root) | {"PYTHONPATH": str(ROOT)}
    # the broken candidate loads, and raises on every request: its label map names 2 labels for a 3-way head
    champion, candidate, broken = register(root, env, [("champion", str(tiny_classifier_dir), LABELS),
                                                       ("candidate", str(tiny_classifier_dir), LABELS),
                                                       ("broken", str(tiny_classifier_dir), LABELS[:2])])
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    params["serve"].update({"workers": 2, "registry_poll_s": 1.0})
    # a tiny model answers in milliseconds: on a busy machine noise alone moves the latency ratio
    params["promote"].update({"canary_requests": 10**6, "canary_check_s": 0.2, "canary_max_latency_ratio": 50.0,
                              "canary_timeout_s": 600})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env |= {"MLOPS_PARAMS": str(root / "params.yaml"), "MLOPS_API_KEY": KEY,
            "MLOPS_FEEDBACK_DIR": str(root / "logs" / "feedback")}
    with pytest.MonkeyPatch.context() as patch, webhook_receiver("/hook") as (url, alerts):
        for name in ("BENTOML_HOME", "MLOPS_TRAFFIC_DIR", "MLOPS_FEEDBACK_DIR"):
            patch.setenv(name, env[name])  # the controller below works on the service's registry and logs
        patch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", url)
        patch.setattr(registry, "bento_exists", lambda tag: True)  # no Bento is built: the service runs from source
        # infra validation starts the candidate's own Bento (tests/integration/test_promotion.py); here the canary
        # is about the champion's service
        patch.setattr(promotion, "infra_validate", lambda *_: {"passed": True, "checks": [], "served_p95_ms": 1.0})
        registry.promote({"model": champion, "bento": "text-classifier:champion"})
        port = free_port()
        server = start_server("mlops.serving.service:TextClassifier", ROOT, env, port, root / "server.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, server, timeout=180)
            yield SimpleNamespace(root=root, env=env, base=base, champion=champion, candidate=candidate,
                                  broken=broken, settings=parse_settings(params), alerts=alerts, state={})
        finally:
            stop(server)


def ask(base: str, text: str, client: str | None) -> tuple[int | str, str | None]:
    """One classification with the test's key, as `client`; its status and the version that answered."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}",
               **({"X-Client-Id": client} if client else {})}
    request = urllib.request.Request(f"{base}/classify", data=json.dumps({"text": text}).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())["model_version"]
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError as error:
        return f"error: {error}", None


def load(base: str, clients: list[str | None], texts: int = 1) -> list[tuple[str | None, int | str, str | None]]:
    """Every client's requests from 16 at a time: (client, status, version) per answer."""
    jobs = [(client, f"my parcel {i} is late and the invoice is wrong") for i, client in enumerate(clients)
            for _ in range(texts)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda job: (job[0], *ask(base, job[1], job[0])), jobs))


def canary_in_background(served, model: str, share: float, settings=None) -> threading.Thread:
    """`mlops registry promote --canary SHARE MODEL`'s promotion (infra validation aside), in a thread."""
    from mlops.core.errors import MlopsError
    from mlops.serving import promotion

    def run():
        try:
            served.state["result"] = promotion.promote_entry(
                {"model": model, "bento": f"text-classifier:{model.split(':')[1]}"}, settings or served.settings,
                None, served.root / "reports" / "promotion.json", by="hand", canary=share)
        except MlopsError as error:
            served.state["result"] = {"error": str(error)}

    served.state.pop("result", None)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def decision(served) -> dict:
    return json.loads((served.root / "reports" / "promotion.json").read_text())


def until_answered_by(served, version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        if ask(served.base, "where is my order", f"probe-{n}")[1] == version:
            return
        n += 1
    raise AssertionError(f"{version} never answered within {timeout} s")


@pytest.mark.slow
def test_a_quarter_canary_under_16_clients_serves_a_quarter_sticky_per_client_with_no_client_error(served):
    served.state["thread"] = canary_in_background(served, served.candidate, 0.25)
    until_answered_by(served, served.candidate)
    time.sleep(2.5)  # both workers have loaded it (each polls the registry every second)
    answers = load(served.base, [f"user-{i}" for i in range(400)])
    sticky = load(served.base, [f"shop-{i % 8}" for i in range(64)] + [None] * 16)  # None: by the key's name
    failed = [a for a in answers + sticky if a[1] != 200]
    assert not failed, failed[:5]
    share = sum(version == served.candidate for *_, version in answers) / len(answers)
    by_client: dict = {}
    for client, _, version in sticky:
        by_client.setdefault(client, set()).add(version)
    print(f"canary 0.25: {share:.3f} of {len(answers)} answers from the candidate; "
          f"{sum(v == {served.candidate} for v in by_client.values())} of {len(by_client)} sticky clients on it")
    assert 0.12 <= share <= 0.38, share
    assert all(len(versions) == 1 for versions in by_client.values()), by_client
    assert {v for *_, v in answers} == {served.champion, served.candidate}
    assert served.state["thread"].is_alive()  # still watching: canary_requests is far away


@pytest.mark.slow
def test_registry_rollback_ends_a_canary_within_30_s(served):
    assert served.state["thread"].is_alive(), "the canary of the previous test is not running"
    done = subprocess.run([str(BIN / "mlops"), "registry", "rollback"], cwd=served.root, env=served.env,
                          capture_output=True, text=True, timeout=120)
    ended = time.monotonic()
    assert done.returncode == 0 and f"canary of {served.candidate} ended" in done.stdout, done.stderr
    last_candidate, streak, n = None, 0, 0
    while streak < 60 and time.monotonic() - ended < 60:  # 60 champion answers in a row: p = 0.75^60 otherwise
        status, version = ask(served.base, "refund please", f"after-{n}")
        assert status == 200
        if version == served.candidate:
            last_candidate, streak = time.monotonic(), 0
        else:
            streak += 1
        n += 1
    served.state["thread"].join(30)
    took = (last_candidate or ended) - ended
    print(f"rollback: last canary answer {took:.1f} s after `mlops registry rollback`")
    assert streak >= 60 and took < 30
    outcome = decision(served)["canary"]
    assert outcome["outcome"] == "ended_by_hand" and "NOT promoted" in served.state["result"]["error"]
    assert subprocess.run([str(BIN / "mlops"), "registry", "show", "--field", "model"], cwd=served.root,
                          env=served.env, capture_output=True, text=True).stdout.strip() == served.champion


@pytest.mark.slow
def test_a_broken_candidate_is_rolled_back_by_itself_and_no_client_sees_its_error(served):
    thread = canary_in_background(served, served.broken, 0.5)
    answers = []
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline:
        answers += load(served.base, [f"user-b{len(answers) + i}" for i in range(32)])
    thread.join(5)
    assert not thread.is_alive(), "the broken canary was not rolled back within 120 s"
    failed = [a for a in answers if a[1] != 200]
    assert not failed, failed[:5]
    assert {v for *_, v in answers} == {served.champion}  # its every answer failed and was given by the champion
    outcome = decision(served)["canary"]
    print(f"broken canary: rolled back after {outcome['counts'][CANDIDATE]['errors']} failed canary answers; "
          f"{len(answers)} client answers, 0 errors; reason: {outcome['reason'][:160]}")
    assert outcome["outcome"] == "rolled_back" and "error rate" in outcome["reason"]
    assert "ValueError" in outcome["reason"]
    alert = served.alerts[-1]["body"]
    assert alert["event"] == "canary_ended" and alert["outcome"] == "rolled_back" and alert["model"] == served.broken


@pytest.mark.slow
def test_a_healthy_canary_is_promoted_in_full_and_then_answers_everyone(served):
    quick = served.settings.model_copy(update={"promote": served.settings.promote.model_copy(
        update={"canary_requests": 40, "canary_min_requests": 20})})
    thread = canary_in_background(served, served.candidate, 0.5, quick)
    answers = []
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline:
        answers += load(served.base, [f"user-h{len(answers) + i}" for i in range(32)])
    thread.join(5)
    assert served.state["result"].get("promoted"), served.state["result"]
    assert decision(served)["canary"]["outcome"] == "promoted"
    moment = time.monotonic()
    streak = 0
    while streak < 20 and time.monotonic() - moment < 30:  # the hot swap: everyone on the new champion
        streak = streak + 1 if ask(served.base, "app crashes", f"all-{streak}")[1] == served.candidate else 0
    assert streak >= 20
    assert not [a for a in answers if a[1] != 200]


def test_pruning_keeps_only_the_running_canarys_counts(tmp_path):
    # given the counts of two ended canaries and of the running one
    for canary_id in ("old1", "old2", "now"):
        folder = stats_dir(tmp_path, canary_id)
        folder.mkdir(parents=True)
        (folder / "worker-1.json").write_text("{}")
    # when the running canary's start prunes, then its end does
    assert prune_stats(tmp_path, keep="now") == ["old1", "old2"]
    assert [p.name for p in (tmp_path / "canary").iterdir()] == ["now"]
    assert prune_stats(tmp_path) == ["now"]
    # then nothing is left, and a home without canaries is no error
    assert list((tmp_path / "canary").iterdir()) == [] and prune_stats(tmp_path / "elsewhere") == []
