"""The canary's controller without a server: workers' counts (two routers) drive a promotion in full, a rollback
at the first breach and an end from outside; each decision is in promotion.json, the registry and an alert."""

from __future__ import annotations

import json
import threading
import time

import pytest

from mlops.core import registry
from mlops.core.errors import MlopsError
from mlops.core.settings import parse_settings
from mlops.serving import promotion
from mlops.serving.canary import CANDIDATE, CHAMPION, CanaryRouter
from tests.helpers import webhook_receiver


@pytest.fixture
def settings(repo_params):
    repo_params["promote"].update({"canary_requests": 40, "canary_min_requests": 10, "canary_check_s": 0.05,
                                   "canary_max_latency_ratio": 3.0, "canary_timeout_s": 30})
    return parse_settings(repo_params)


@pytest.fixture
def store(monkeypatch, bentoml_home, tmp_path):
    monkeypatch.setattr(registry, "bento_exists", lambda tag: tag in {"b:1", "b:2"})
    monkeypatch.setattr(promotion, "infra_validate", lambda entry, settings, scored: {
        "passed": True, "failed_check": None, "checks": [{"check": "ready", "passed": True, "detail": "ok"}],
        "served_p95_ms": 9.0})
    monkeypatch.setenv("MLOPS_TRAFFIC_DIR", str(tmp_path / "traffic"))  # no traffic, no labels: no live accuracy
    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", str(tmp_path / "feedback"))
    registry.promote({"model": "m:1", "bento": "b:1"})
    with webhook_receiver("/hook") as (url, received):
        monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS", url)
        yield received


def workers(home, count=2):
    """`count` service workers' routers, following the registry's canary as the service's do."""
    routers = [CanaryRouter(lambda tag: f"model-{tag}", registry.canary, home, poll_s=0.05) for _ in range(count)]
    for index, router in enumerate(routers):
        router.name = f"worker-{index}.json"  # one process here; in a service each worker's pid names its file
    return routers


def serve(routers, stop, fail_candidate=False, candidate_ms=5.0):
    """Requests through the routers until `stop`: what the service does per request, counts included."""
    n = 0
    while not stop.is_set():
        for router in routers:
            if n % 20 == 0:  # the service polls and writes on a timer, not per request
                router.sync()
                router.flush()
            chosen = router.route(f"client-{n}")
            if chosen is not None:
                router.observe(CANDIDATE, None if fail_candidate else candidate_ms,
                               RuntimeError("boom") if fail_candidate else None)
            else:
                router.observe(CHAMPION, 5.0)
            n += 1
        time.sleep(0.0005)


# The controller's first decision imports live quality (pandas) and the alert path (Airflow): seconds, once
watched = pytest.mark.slow


def run_with(routers, promote_call, **serve_kwargs):
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(routers, stop), kwargs=serve_kwargs, daemon=True)
    thread.start()
    try:
        return promote_call()
    finally:
        stop.set()
        thread.join(5)


@watched
def test_a_healthy_canary_is_promoted_in_full_with_the_counts_it_was_judged_on(settings, store, bentoml_home,
                                                                               tmp_path):
    out = tmp_path / "promotion.json"
    result = run_with(workers(bentoml_home), lambda: promotion.promote_entry(
        {"model": "m:2", "bento": "b:2"}, settings, None, out, by="hand", canary=0.25))
    assert result["promoted"] and registry.champion()["model"] == "m:2" and registry.canary() is None
    decision = json.loads(out.read_text())
    assert decision["strategy"] == "canary" and decision["canary"]["outcome"] == "promoted"
    counts = decision["canary"]["counts"]
    assert counts[CANDIDATE]["ok"] >= 40 and counts[CANDIDATE]["errors"] == 0
    share = counts[CANDIDATE]["requests"] / (counts[CANDIDATE]["requests"] + counts[CHAMPION]["requests"])
    assert 0.12 < share < 0.38, share
    assert decision["canary"]["live_accuracy"][CANDIDATE]["status"] == "insufficient_labels"
    assert registry.champion()["canary"]["share"] == 0.25
    events = [e["event"] for e in registry.read_events()]
    assert events[-3:] == ["canary_started", "canary_ended", "promoted"]
    assert store[-1]["body"]["event"] == "canary_ended" and store[-1]["body"]["outcome"] == "promoted"


@watched
def test_a_failing_canary_is_rolled_back_at_the_first_breach(settings, store, bentoml_home, tmp_path):
    out = tmp_path / "promotion.json"
    with pytest.raises(MlopsError, match=r"m:2 NOT promoted: the canary was rolled back: error rate"):
        run_with(workers(bentoml_home), lambda: promotion.promote_entry(
            {"model": "m:2", "bento": "b:2"}, settings, None, out, by="hand", canary=0.5), fail_candidate=True)
    assert registry.champion()["model"] == "m:1" and registry.canary() is None
    decision = json.loads(out.read_text())
    assert not decision["promoted"] and decision["canary"]["outcome"] == "rolled_back"
    assert decision["canary"]["counts"][CANDIDATE]["errors"] >= 1 and decision["canary"]["counts"][CHAMPION]["ok"]
    assert "RuntimeError: boom" in decision["canary"]["reason"]
    body = store[-1]["body"]
    assert body["outcome"] == "rolled_back" and body["champion"] == "m:1" and "canary of m:2 rolled_back" in \
        body["text"]


@watched
def test_a_slow_canary_is_rolled_back_on_its_latency_ratio(settings, store, bentoml_home, tmp_path):
    with pytest.raises(MlopsError, match=r"p95 latency 50.0 ms is 10.00x the champion's 5.0 ms"):
        run_with(workers(bentoml_home), lambda: promotion.promote_entry(
            {"model": "m:2", "bento": "b:2"}, settings, None, tmp_path / "p.json", by="hand", canary=0.5),
            candidate_ms=50.0)


@watched
def test_registry_rollback_ends_a_canary_and_the_champion_stays(settings, store, bentoml_home, tmp_path):
    settings = settings.model_copy(update={"promote": settings.promote.model_copy(update={"canary_requests": 10**6})})
    routers = workers(bentoml_home)
    out = tmp_path / "promotion.json"

    def end_soon():
        while registry.canary() is None:
            time.sleep(0.01)
        time.sleep(0.2)
        registry.rollback()

    threading.Thread(target=end_soon, daemon=True).start()
    with pytest.raises(MlopsError, match="the canary was ended by hand"):
        run_with(routers, lambda: promotion.promote_entry({"model": "m:2", "bento": "b:2"}, settings, None, out,
                                                          by="hand", canary=0.25))
    assert registry.champion()["model"] == "m:1" and registry.read_registry()["history"] == []
    for router in routers:
        router.sync()
        assert router.route("anyone") is None and router.model is None  # no longer routed, model released
    assert json.loads(out.read_text())["canary"]["outcome"] == "ended_by_hand"


def test_strategy_and_share_decide_direct_or_canary(settings, repo_params):
    assert promotion.canary_share(settings, None) is None  # direct by default
    assert promotion.canary_share(settings, 0.3) == 0.3
    with pytest.raises(MlopsError, match="between 0 and 1"):
        promotion.canary_share(settings, 1.5)
    repo_params["promote"]["strategy"] = "canary"
    assert promotion.canary_share(parse_settings(repo_params), None) == repo_params["promote"]["canary_share"]


def test_a_first_model_is_promoted_directly_there_is_no_champion_to_compare(settings, monkeypatch, bentoml_home,
                                                                            tmp_path):
    monkeypatch.setattr(registry, "bento_exists", lambda tag: True)
    monkeypatch.setattr(promotion, "infra_validate", lambda *_: {"passed": True, "checks": [],
                                                                 "served_p95_ms": 1.0})
    result = promotion.promote_entry({"model": "m:1", "bento": "b:1"}, settings, None, tmp_path / "p.json",
                                     by="pipeline", canary=0.25)
    assert result["promoted"] and "no champion to compare with" in result["canary"]
