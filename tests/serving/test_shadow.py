"""The shadow in-process: its share, its log, its drops, a challenger that raises, and which model is the challenger."""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from mlops.core.traffic_log import list_parts, list_shadow_parts
from mlops.serving.shadow import Shadow, find_challenger
from mlops.serving.shadow_log import ShadowLog
from mlops.serving.traffic import TrafficLog, TrafficWriter

LABELS = ["billing", "delivery", "technical"]


class Fake:
    """A challenger that answers `label` for every text, or raises, or waits for `gate` first."""

    labels = LABELS

    def __init__(self, label="delivery", fail=False, gate=None):
        self.label, self.fail, self.gate, self.calls = label, fail, gate, 0

    def predict(self, texts, batch_size=16, max_batch_tokens=None):
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise RuntimeError("the challenger broke")
        proba = np.full((len(texts), 3), 0.1, dtype=np.float32)
        proba[:, LABELS.index(self.label)] = 0.8
        return proba, np.zeros((len(texts), 4))


def answers(count, start=0, label="billing", version="text-classifier:champion"):
    return [{"id": f"id-{start + i}", "label": label, "score": 0.9, "model_version": version} for i in range(count)]


def shadow_with(model, tmp_path, share=1.0, max_queued=64, version="text-classifier:challenger"):
    writer = TrafficWriter(ShadowLog(tmp_path))
    return Shadow(share, max_queued, lambda tag: model, writer, find=lambda: (version, ""), poll_s=60,
                  gather_s=0.05).start()


def test_shadow_records_go_to_their_own_parts_linked_to_the_served_answers(tmp_path, capsys):
    """Given a challenger answering `delivery` and a champion answering `billing`, when half the requests are
    offered to a shadow with share 0.5, then every second request is scored, its records sit in shadow-*.jsonl
    (none in the served traffic parts), each names the served id, both versions and both answers."""
    TrafficLog(tmp_path).append(["a text"], answers(1), 1.0)  # a served part beside the shadow's
    shadow = shadow_with(Fake(), tmp_path, share=0.5)
    assert "the challenger text-classifier:challenger scores 50% of requests" in capsys.readouterr().out

    taken = [shadow.offer(["t1", "t2"], answers(2, start=2 * n)) for n in range(10)]
    shadow.close()

    assert taken == [False, True] * 5
    records = [json.loads(line) for part in list_shadow_parts(tmp_path) for line in part.read_text().splitlines()]
    assert len(records) == 10 and all(r["shadow"] and "id" not in r for r in records)
    assert {r["shadow_of"] for r in records} == {f"id-{i}" for n in range(1, 10, 2) for i in (2 * n, 2 * n + 1)}
    assert {(r["prediction"], r["model_version"], r["champion_prediction"], r["champion_version"])
            for r in records} == {("delivery", "text-classifier:challenger", "billing", "text-classifier:champion")}
    served = [json.loads(line) for part in list_parts(tmp_path) for line in part.read_text().splitlines()]
    assert len(served) == 1 and "shadow" not in served[0]
    assert shadow.counts == {"offered": 10, "scored": 10, "agreed": 0, "dropped": 0, "errors": 0}


def test_a_challenger_that_raises_or_falls_behind_never_reaches_the_caller(tmp_path):
    """Given a challenger that raises, when requests are offered, then `offer` returns at once and raises nothing,
    and the failures are counted; given one stuck in a model call, a full queue drops shadow work and counts it,
    and `offer` still returns at once."""
    broken = shadow_with(Fake(fail=True), tmp_path)
    assert all(broken.offer(["t"], answers(1, start=n)) for n in range(5))
    broken.close()
    assert broken.counts["errors"] == 5 and broken.counts["scored"] == 0 and not list_shadow_parts(tmp_path)

    gate = threading.Event()
    stuck = shadow_with(Fake(gate=gate), tmp_path / "stuck", max_queued=2)
    started = time.perf_counter()
    results = [stuck.offer(["t"], answers(1, start=n)) for n in range(50)]
    elapsed = time.perf_counter() - started
    gate.set()
    stuck.close()
    assert elapsed < 1.0  # 50 offers against a stuck challenger never waited for it
    assert results.count(True) <= 4 and stuck.counts["dropped"] == results.count(False) >= 46
    assert stuck.counts["scored"] == results.count(True)


def test_the_challenger_is_the_registrys_candidate_that_is_neither_champion_nor_rolled_back(bentoml_home):
    """Given the registry's states, when the shadow looks for its challenger, then it finds the candidate, and
    none (with the reason) when there is no candidate, when it is the champion, or when it was rolled back."""
    from mlops.core import registry

    assert find_challenger() == (None, "the registry has no challenger (no candidate has passed the gate since "
                                       "the last promotion)")
    bentoml_home.mkdir(parents=True)
    with registry.updating() as document:
        document.update(champion={"model": "m:1"}, challenger={"model": "m:2"})
    assert find_challenger() == ("m:2", "")
    with registry.updating() as document:
        document["champion"] = {"model": "m:2"}
    assert find_challenger()[0] is None and "is the champion" in find_challenger()[1]
    with registry.updating() as document:
        document.update(champion={"model": "m:1"}, challenger={"model": "m:2"})
    registry.log_event("promoted", model="m:2")
    registry.log_event("rolled_back", model="m:1", retired="m:2")
    assert find_challenger() == (None, "the registry's challenger m:2 was rolled back")


def test_an_idle_shadow_says_why_and_picks_up_a_challenger_later(tmp_path, capsys):
    """Given no challenger, the shadow starts idle and says why, takes nothing; once the registry names one, the
    next look loads it and the shadow scores; when the challenger goes, it is idle again."""
    found = {"tag": None}
    shadow = Shadow(1.0, 8, lambda tag: Fake(), TrafficWriter(ShadowLog(tmp_path)),
                    find=lambda: (found["tag"], "no challenger here"), poll_s=60, gather_s=0.05).start()
    assert "serve: shadow: idle: no challenger here" in capsys.readouterr().out
    assert not shadow.offer(["t"], answers(1))
    found["tag"] = "m:2"
    assert shadow.sync() and shadow.offer(["t"], answers(1))
    found["tag"] = None
    assert shadow.sync() and shadow.active is None and not shadow.offer(["t"], answers(1))
    shadow.close()
    assert shadow.counts["scored"] == 1
