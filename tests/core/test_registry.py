import json
import logging
import multiprocessing
import os
import time

import pytest

from mlops.core import registry
from mlops.core.errors import MlopsError


@pytest.fixture
def bentos(monkeypatch, bentoml_home):
    """Pretend the named Bentos exist in the store."""
    present = {"b:1", "b:2", "b:3"}
    monkeypatch.setattr(registry, "bento_exists", lambda tag: tag in present)
    return present


def test_empty_registry(bentoml_home):
    assert registry.champion() is None
    assert registry.read_registry() == {"champion": None, "challenger": None, "history": [], "canary": None}


def test_promote_keeps_history_writes_atomically_and_logs(bentos, bentoml_home):
    first = registry.promote({"model": "m:1", "bento": "b:1", "digest": "a"})
    second = registry.promote({"model": "m:2", "bento": "b:2", "digest": "b"})
    assert registry.champion() == second
    assert registry.read_registry()["history"] == [first]
    assert sorted(p.name for p in bentoml_home.iterdir()) == ["registry-events.jsonl", "registry-events.jsonl.lock",
                                                              "registry.json", "registry.json.lock"]
    events = [json.loads(line)["event"] for line in (bentoml_home / "registry-events.jsonl").read_text().splitlines()]
    assert events == ["promoted", "promoted"]


def test_promote_refuses_a_model_without_its_bento(bentos, bentoml_home):
    registry.promote({"model": "m:1", "bento": "b:1", "digest": "a"})
    with pytest.raises(MlopsError, match="Bento b:9 is not in the store"):
        registry.promote({"model": "m:9", "bento": "b:9", "digest": "z"})
    assert registry.champion()["model"] == "m:1"


def test_rollback_restores_the_previous_champion(bentos, bentoml_home):
    registry.promote({"model": "m:1", "bento": "b:1", "digest": "a"})
    registry.promote({"model": "m:2", "bento": "b:2", "digest": "b"})
    restored = registry.rollback()
    assert restored["model"] == "m:1" and registry.champion()["model"] == "m:1"
    assert registry.read_registry()["history"] == []
    with pytest.raises(MlopsError, match="nothing to roll back to"):
        registry.rollback()


def test_model_digest_changes_with_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"one")
    first = registry.model_digest(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"two")
    assert registry.model_digest(tmp_path) != first


# --- concurrent writers and crashes ----------------------------------------------------------------------------

FORK = multiprocessing.get_context("fork")  # the children inherit the test's BENTOML_HOME and patched Bento store


def slow_candidate(has_read) -> None:
    """set_candidate that dawdles between reading the registry and writing it back, as a busy `package` may."""
    read = registry.read_registry

    def read_then_wait():
        document = read()
        has_read.set()
        time.sleep(1.0)
        return document

    registry.read_registry = read_then_wait
    registry.set_candidate({"model": "m:3", "bento": "b:3"})


def test_a_rollback_racing_a_candidate_is_never_undone(bentos, bentoml_home):
    """Given champion m:2 over m:1, when a rollback runs while another process is between reading and writing the
    registry, then both changes stand: m:1 is champion (m:2 is not resurrected) and m:3 is the challenger."""
    registry.promote({"model": "m:1", "bento": "b:1"})
    registry.promote({"model": "m:2", "bento": "b:2"})
    has_read = FORK.Event()
    writer = FORK.Process(target=slow_candidate, args=(has_read,))
    writer.start()
    assert has_read.wait(30)
    rolling = FORK.Process(target=registry.rollback)
    rolling.start()
    for process in (writer, rolling):
        process.join(30)
        assert process.exitcode == 0
    document = registry.read_registry()
    assert document["champion"]["model"] == "m:1" and document["history"] == []
    assert document["challenger"]["model"] == "m:3"
    events = [event["event"] for event in registry.read_events()]
    assert events == ["promoted", "promoted", "candidate", "rolled_back"]  # the log's order is the registry's


def die_while_writing() -> None:
    """A promote killed after writing the new document's bytes, before they replace the old one."""
    os.replace = lambda *args: os._exit(9)
    registry.promote({"model": "m:3", "bento": "b:3"})


def test_a_writer_killed_mid_write_leaves_the_previous_registry_and_no_lock(bentos, bentoml_home):
    registry.promote({"model": "m:1", "bento": "b:1"})
    before = (bentoml_home / "registry.json").read_text()
    dying = FORK.Process(target=die_while_writing)
    dying.start()
    dying.join(30)
    assert dying.exitcode == 9
    assert (bentoml_home / "registry.json").read_text() == before and registry.champion()["model"] == "m:1"
    registry.promote({"model": "m:2", "bento": "b:2"})  # the dead writer's lock went with it
    assert registry.champion()["model"] == "m:2"


# --- the event log ---------------------------------------------------------------------------------------------

def test_a_torn_last_event_is_skipped_and_the_next_starts_on_its_own_line(bentos, bentoml_home, caplog):
    """Given a crash mid-append (half a line, cut inside a UTF-8 character), readers skip it and warn once, and
    the next event is a whole line."""
    registry.promote({"model": "m:1", "bento": "b:1"})
    registry.promote({"model": "m:2", "bento": "b:2"})
    registry.rollback()
    log = bentoml_home / "registry-events.jsonl"
    with open(log, "ab") as handle:
        handle.write('{"at": "2026-11-30", "event": "promoted", "model": "m:2", "note": "caf\u00e9'.encode()[:-1])
    with caplog.at_level(logging.WARNING, logger="mlops.core.registry"):
        assert registry.retired_by_rollback("m:2")
    assert f"1 torn lines skipped in {log}" in caplog.text
    registry.log_event("candidate", model="m:3")
    assert [event["event"] for event in registry.read_events()] == ["promoted", "promoted", "rolled_back",
                                                                    "candidate"]
    assert log.read_bytes().endswith(b'"model": "m:3"}\n')


def test_a_canary_runs_beside_the_champion_until_rollback_or_promotion_ends_it(bentos, bentoml_home):
    # given a champion
    with pytest.raises(MlopsError, match="needs a champion"):
        registry.start_canary({"model": "m:2", "bento": "b:2"}, 0.25, 60)
    registry.promote({"model": "m:1", "bento": "b:1"})
    # when a canary starts, it is recorded beside the champion, which does not change
    canary = registry.start_canary({"model": "m:2", "bento": "b:2"}, 0.25, 60)
    assert registry.canary() == canary and canary["champion"] == "m:1" and canary["share"] == 0.25
    assert registry.champion()["model"] == "m:1" and canary["expires_at"] > canary["started_at"]
    with pytest.raises(MlopsError, match="a canary of m:2 is running"):
        registry.start_canary({"model": "m:3", "bento": "b:3"}, 0.5, 60)
    # then a rollback ends the canary only: the champion and its history stay
    ended = registry.rollback()
    assert ended["canary_ended"] == "m:2" and ended["model"] == "m:1" and registry.canary() is None
    assert registry.end_canary(canary["id"], "rolled_back", "again") is None  # already over
    # and a promotion ends a running canary: promoted in full (its model) or superseded (another)
    registry.start_canary({"model": "m:2", "bento": "b:2"}, 0.25, 60)
    registry.promote({"model": "m:2", "bento": "b:2"})
    assert registry.canary() is None and registry.champion()["model"] == "m:2"
    outcomes = [(e["event"], e.get("outcome")) for e in registry.read_events() if e["event"].startswith("canary")]
    assert outcomes == [("canary_started", None), ("canary_ended", "rolled_back"), ("canary_started", None),
                        ("canary_ended", "promoted")]
