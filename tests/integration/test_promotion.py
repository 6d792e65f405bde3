"""End to end: the pipeline builds and judges, promotion is explicit and checked, the served champion follows it.

On a copy of the project with the tiny config (own DVC cache, BentoML store):
`dvc repro` leaves a candidate and no champion; `mlops promote` starts the
candidate Bento, checks it and promotes it; `dvc exp run -S train.epochs=1`
leaves the champion alone and its candidate can be promoted by hand; a Bento
whose model cannot load is refused while the champion keeps serving; and
under 32 concurrent clients, a promotion then a rollback lose no request while
the answers switch version within 30 s of each.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import BIN, ROOT, copy_project, free_port, post, project_env, run_cmd, stop, tiny_params, wait_ready

pytestmark = pytest.mark.slow


def read_json(path: Path):
    return json.loads(path.read_text())


def mlops(project: Path, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_cmd([str(BIN / "mlops"), *args], cwd=project, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    # any retrained model is acceptable here: these tests are about what happens after the gate. A one-epoch
    # experiment may serve fp32 against an int8 champion, whose p95 ratio on a busy machine passes 20
    params["gate"].update({"promote_if": "expected_gain", "min_gain_probability": 0.0, "max_regression": 1.0,
                           "max_latency_ratio": 1000.0,
                           "min_accuracy": 0.0, "min_macro_f1": 0.0})
    params["promote"]["ready_timeout_s"] = 90
    params["serve"]["registry_poll_s"] = 1.0
    project = copy_project(tmp_path_factory.mktemp("promotion"), params)
    run_cmd([str(BIN / "dvc"), "repro"], cwd=project, timeout=900)
    return project


@pytest.fixture(scope="module")
def state() -> dict:
    """What the ordered tests below hand on to each other."""
    return {}


def test_repro_leaves_a_candidate_and_promote_makes_it_champion(project, state):
    package = read_json(project / "reports/package.json")
    assert package["status"] == "candidate"
    shown = mlops(project, "registry", "show", check=False)
    assert shown.returncode == 2 and "no champion yet" in shown.stderr  # the pipeline promoted nothing
    assert read_json(project / ".bentoml/registry.json")["challenger"]["bento"] == package["bento"]
    output = mlops(project, "promote").stdout
    promotion = read_json(project / "reports/promotion.json")
    assert promotion["promoted"] and promotion["champion"] == package["model"], promotion
    checks = {c["check"]: c for c in promotion["infra_validation"]["checks"]}
    assert all(c["passed"] for c in checks.values()) and list(checks) == [
        "ready", "one_text", "list", "bad_request", "metrics", "agreement", "latency"]
    rows, agreement = promotion["infra_validation"]["rows"], checks["agreement"]["detail"]
    if "int8" in promotion["infra_validation"]["precision"]:  # int8: only near ties may differ from offline
        assert re.fullmatch(rf"\d+ of {rows} rows equal(; \d+ near ties .*)?", agreement), agreement
    else:
        assert agreement == f"{rows} of {rows} rows equal", agreement  # every label as the same variant offline
    assert promotion["infra_validation"]["served_p95_ms"] > 0
    print(f"promote: {output.strip()}")
    assert mlops(project, "registry", "show", "--field", "model").stdout.strip() == package["model"]
    again = mlops(project, "promote").stdout  # `make run` twice: nothing to do the second time
    assert "already the champion" in again
    state["first"] = package["model"]


def test_exp_run_leaves_the_champion_alone(project, state):
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "before the experiment"], cwd=project, check=True)
    before = mlops(project, "registry", "show").stdout
    run_cmd([str(BIN / "dvc"), "exp", "run", "-S", "train.epochs=1"], cwd=project, timeout=900)
    assert mlops(project, "registry", "show").stdout == before
    package = read_json(project / "reports/package.json")
    assert package["status"] == "candidate" and package["model"] != state["first"], package
    state["experiment"] = package["model"]


def start_serve(project: Path) -> tuple[subprocess.Popen, str]:
    link = project / ".venv"
    if not link.exists():
        link.symlink_to(BIN.parent)  # `make` runs the project's .venv
    port = free_port()
    server = subprocess.Popen(["make", "serve", f"PORT={port}"], cwd=project, env=project_env(project),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, server)
    return server, base


class Load:
    """32 loopback clients sending one text per request, back to back, until stopped; every answer is kept."""

    def __init__(self, base: str, clients: int = 32) -> None:
        self.base, self.answers, self.stopped = base, [], threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(clients)]
        self.threads.append(threading.Thread(target=self.probe, daemon=True))
        self.ready: list[int | str] = []  # /readyz every half second, throughout

    def probe(self) -> None:
        import urllib.request

        while not self.stopped.wait(0.5):
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=10) as response:
                    self.ready.append(response.status)
            except OSError as error:
                self.ready.append(f"error: {error}")

    def client(self, index: int) -> None:
        n = 0
        while not self.stopped.is_set():
            started = time.monotonic()
            try:
                status, body = post(f"{self.base}/classify", json.dumps({"text": f"order {index}-{n} arrived late"})
                                    .encode())
                version = json.loads(body).get("model_version") if status == 200 else None
            except OSError as error:
                status, version = f"error: {error}", None
            with self.lock:
                self.answers.append((started, time.monotonic(), status, version))
            n += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def versions_since(self, moment: float) -> list[str | None]:
        with self.lock:
            return [version for started, _, _, version in self.answers if started >= moment]

    def switch_seconds(self, moment: float, old: str, new: str) -> tuple[float, float]:
        """From `moment` to the first answer by `new`, and to the last answer by `old` to a request sent after it."""
        with self.lock:
            after = [(started, ended, version) for started, ended, _, version in self.answers if started >= moment]
        first_new = min((ended for _, ended, version in after if version == new), default=None)
        assert first_new is not None, f"no answer from {new} after the switch"
        last_old = max((ended for _, ended, version in after if version == old), default=moment)
        return first_new - moment, last_old - moment


def registry_written(project: Path) -> float:
    """When registry.json was last replaced, on the monotonic clock the load's timestamps use."""
    return time.monotonic() - (time.time() - (project / ".bentoml/registry.json").stat().st_mtime)


def wait_for(load: Load, moment: float, version: str, timeout: float = 60) -> None:
    """Until 64 answers in a row to requests sent after `moment` came from `version`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recent = load.versions_since(moment)[-64:]
        if len(recent) == 64 and set(recent) == {version}:
            return
        time.sleep(0.5)
    raise AssertionError(f"answers did not switch to {version} within {timeout} s")


def broken_candidate(project: Path) -> str:
    """A stored model whose weights are garbage, with a Bento built around it: its service cannot load."""
    broken = project / "broken-model"
    shutil.copytree(project / "models/candidate", broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    script = ("from pathlib import Path; from mlops.core import registry; from mlops.stages.package import "
              "build_bento; tag = registry.register_model('text-classifier', Path('broken-model'), "
              "{'note': 'broken'}); build_bento(tag, Path('bentofile.yaml')); print(tag)")
    return run_cmd([str(BIN / "python"), "-c", script], cwd=project).stdout.strip().splitlines()[-1]


def test_promotion_and_rollback_under_load_lose_nothing(project, state):
    first, experiment = state["first"], state["experiment"]
    broken = broken_candidate(project)
    server, base = start_serve(project)
    try:
        with Load(base) as load:
            time.sleep(5)
            # A candidate that fails infra validation is not promoted; the champion keeps serving.
            refused = mlops(project, "registry", "promote", broken, check=False)
            assert refused.returncode == 2 and "NOT promoted" in refused.stderr, refused.stderr
            decision = read_json(project / "reports/promotion.json")
            assert not decision["promoted"] and decision["infra_validation"]["failed_check"] == "ready", decision
            assert mlops(project, "registry", "show", "--field", "model").stdout.strip() == first
            moment = time.monotonic()
            time.sleep(3)
            assert set(load.versions_since(moment)) == {first}

            # The experiment's candidate, promoted by hand through the same checks.
            promoted = mlops(project, "registry", "promote", experiment).stdout
            promoted_at = registry_written(project)  # the moment the registry named the new champion
            assert f"champion is now {experiment}" in promoted
            wait_for(load, promoted_at, experiment)
            to_new = load.switch_seconds(promoted_at, first, experiment)

            mlops(project, "registry", "rollback")
            rolled_back_at = registry_written(project)
            wait_for(load, rolled_back_at, first)
            to_old = load.switch_seconds(rolled_back_at, experiment, first)
            time.sleep(2)
    finally:
        stop(server)
    statuses = [status for _, _, status, _ in load.answers]
    failed = [status for status in statuses if status != 200]
    versions = {version for *_, version in load.answers}
    print(f"{len(statuses)} requests from 32 clients: {len(failed)} lost; versions {sorted(versions)}; "
          f"after the registry write: promotion first/last-old answer {to_new[0]:.1f}/{to_new[1]:.1f} s, "
          f"rollback {to_old[0]:.1f}/{to_old[1]:.1f} s; /readyz {len(load.ready)} probes "
          f"{sorted(set(map(str, load.ready)))}; "
          f"refused Bento failed at: {decision['infra_validation']['checks'][-1]['detail'][:160]}")
    assert not failed, failed[:5]
    assert load.ready and set(load.ready) == {200}, [r for r in load.ready if r != 200][:5]
    assert versions == {first, experiment}  # the broken model never answered
    assert max(to_new) < 30 and max(to_old) < 30
