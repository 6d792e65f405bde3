"""End to end through REST API v2 and the UI, on the Airflow `make airflow` starts (not `airflow standalone`).

One Airflow, started once for the module on a copy of the project with the
tiny config, serves every test here, in order:

- REST: a bad parameter is refused at trigger time (HTTP 400 naming it) or,
  when only the merged params can tell, in the run's first task (the run
  fails there, naming the key, and writes a failure summary); a missing local
  data_source fails `configure` at its first try; two runs triggered back to
  back with different parameters queue (one active run at a time), both
  succeed, leave the DAG at one version, the rejected one's note reads
  REJECTED naming the check and the accepted one's not, and each run's record
  under reports/runs/<run id>/ matches its own parameters, not the other run's.
- The UI, in headless Chromium: logged in as the README says, the lifecycle
  DAG's trigger form refuses epochs -1 with a message naming the field, and a
  valid form creates the run.
- Sockets: no process `make airflow` started listens beyond loopback, while
  tasks run and while idle.
- `make airflow-stop` returns once every one of those processes has exited.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time

import pytest
import yaml

from mlops.orchestration.runs import run_dir
from tests.helpers import ROOT, copy_project, free_port, project_env, tiny_params
from tests.integration.airflow_stack import MadeStack, alive, beyond_loopback

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"  # Debian's package (`apt-get install chromium`); Playwright downloads no browser


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, tiny_model_dir):
    """`make airflow` on a copy of the project with the tiny config, its own port and home; stopped at the end."""
    root = tmp_path_factory.mktemp("airflow-made")
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    project = copy_project(root / "project", params)
    port = free_port()
    env = project_env(project) | {"AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5"}
    stack = MadeStack(project, env | {"AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}, root / "logs", port)
    started = time.monotonic()
    try:
        stack.start_made()
        stack.wait_healthy(timeout=180)
        stack.login()
        stack.wait_dag("lifecycle")
        print(f"make airflow up and DAG parsed in {time.monotonic() - started:.0f}s")
        yield stack
    finally:
        stack.stop()


def test_rest_triggered_runs_with_params_are_validated_and_isolated(airflow, repo_params, tiny_model_dir):
    stack, project = airflow, airflow.project
    params_before = (project / "params.yaml").read_bytes()
    started = time.monotonic()
    # Refused at trigger time by the Params' JSON schema, naming the parameter.
    for conf, name in (({"epochs": -1}, "epochs"), ({"data_format": "xml"}, "data_format"),
                       ({"batch_size": "big"}, "batch_size"), ({"min_accuracy": 1.5}, "min_accuracy")):
        status, body = stack.trigger("lifecycle", conf)
        assert 400 <= status < 500, (conf, status, body)
        assert name in json.dumps(body), (conf, body)

    # Only the run can tell: an unknown parameter fails the first task, naming it, with a summary.
    status, bad = stack.trigger("lifecycle", {"epoch": 1})
    assert status == 200, bad
    # A missing local data_source fails configure at its first try, naming the path, before any stage.
    status, missing = stack.trigger("lifecycle", {"data_source": "data/no-such-file.csv"})
    assert status == 200, missing
    # Two good runs, triggered at once: they queue behind the bad one and each other.
    status, first = stack.trigger("lifecycle", {"epochs": 1, "seed": 7, "min_accuracy": 0.0,
                                                "min_macro_f1": 0.0})
    assert status == 200, first
    # The second is rejected: no tiny model reaches accuracy 1.0.
    status, second = stack.trigger("lifecycle", {"epochs": 2, "seed": 7, "learning_rate": 0.002,
                                                 "min_accuracy": 1.0, "min_macro_f1": 0.0})
    assert status == 200, second
    assert first["logical_date"] is None and second["logical_date"] is None

    assert stack.wait_run("lifecycle", bad["dag_run_id"], timeout=120) == "failed"
    states = stack.task_states("lifecycle", bad["dag_run_id"])
    assert states["configure"]["state"] == "failed" and states["configure"]["try"] == 1, states
    assert "unknown trigger parameter(s): epoch" in stack.task_log("lifecycle", bad["dag_run_id"], "configure")
    failure = (run_dir(project, bad["dag_run_id"]) / "failure.md").read_text()
    assert "failed at task `configure`" in failure and "epoch" in failure
    assert len(failure.strip().splitlines()) == 1  # one paragraph
    assert stack.wait_run("lifecycle", missing["dag_run_id"], timeout=120) == "failed"
    states = stack.task_states("lifecycle", missing["dag_run_id"])
    assert states["configure"]["state"] == "failed" and states["configure"]["try"] == 1, states
    assert states["ingest"]["state"] in (None, "upstream_failed"), states
    assert "data/no-such-file.csv" in stack.task_log("lifecycle", missing["dag_run_id"], "configure")
    # While the good runs' tasks run, no process of the tree listens beyond loopback.
    assert not beyond_loopback(stack.listening()), stack.listening()

    for run in (first, second):
        state = stack.wait_run("lifecycle", run["dag_run_id"], timeout=600)
        assert state == "success", (run["dag_run_id"], stack.task_states("lifecycle", run["dag_run_id"]),
                                    stack.log_tails())
    print(f"four runs done in {time.monotonic() - started:.0f}s")

    # Runs with different parameters left the DAG at one version.
    status, versions = stack.request("GET", "/api/v2/dags/lifecycle/dagVersions")
    assert status == 200 and versions["total_entries"] == 1, versions

    # The rejected run reads so in its note (the grid marks it), naming what was compared; the accepted not.
    notes = {}
    for run in (first, second):
        for _ in range(20):  # the plugin's listener writes the note as the run succeeds
            _, body = stack.request("GET", f"/api/v2/dags/lifecycle/dagRuns/{run['dag_run_id']}")
            if body.get("note"):
                break
            time.sleep(1)
        notes[run["dag_run_id"]] = body.get("note") or ""
    rejected, accepted_note = notes[second["dag_run_id"]], notes[first["dag_run_id"]]
    assert rejected.startswith("REJECTED: ") and "accuracy" in rejected.splitlines()[0], rejected
    assert accepted_note and not accepted_note.startswith("REJECTED"), accepted_note

    # Runs did not overlap: the second started after the first ended.
    _, one = stack.request("GET", f"/api/v2/dags/lifecycle/dagRuns/{first['dag_run_id']}")
    _, two = stack.request("GET", f"/api/v2/dags/lifecycle/dagRuns/{second['dag_run_id']}")
    assert one["end_date"] <= two["start_date"], (one, two)

    # Task logs carry the stage's own output.
    train_log = stack.task_log("lifecycle", first["dag_run_id"], "train")
    assert "Running stage 'train'" in train_log and re.search(r"train: \d+ rows x", train_log), train_log[-3000:]

    # Each run's record matches its own parameters.
    for run, epochs, lr, min_accuracy in ((first, 1, tiny_params(repo_params, tiny_model_dir)["train"]["lr"], 0.0),
                                          (second, 2, 0.002, 1.0)):
        record = json.loads((run_dir(project, run["dag_run_id"]) / "run.json").read_text())
        assert record["run_id"] == run["dag_run_id"]
        assert record["params"]["train"]["epochs"] == epochs and record["params"]["train"]["lr"] == lr
        assert record["params"]["seed"] == 7 and record["params"]["gate"]["min_accuracy"] == min_accuracy
        assert record["results"]["metrics/train.json"]["epochs"] == epochs
        accepted = record["results"]["reports/gate/decision.json"]["accepted"]
        status = record["results"]["reports/package.json"]["status"]
        assert status in ("candidate", "unchanged") if accepted else status == "skipped"  # the gate branch
        if accepted:
            assert record["results"]["reports/promotion.json"]["infra_validation"]["passed"] or \
                "already the champion" in record["results"]["reports/promotion.json"]["reason"]
    assert json.loads((run_dir(project, first["dag_run_id"]) / "overrides.json").read_text()) == {
        "train.epochs": 1, "seed": 7, "gate.min_accuracy": 0.0, "gate.min_macro_f1": 0.0}
    # The workspace holds the last run's outputs; params.yaml is as it was before the runs.
    assert json.loads((project / "metrics/train.json").read_text())["epochs"] == 2
    assert (project / "params.yaml").read_bytes() == params_before


def chromium_page(playwright):
    """Headless Chromium, Debian's: a clear failure, not a skip, where it is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the UI test drives Debian's Chromium (apt-get install -y chromium; "
                    ".ci/run installs it as root)")
    # as root (CI containers) Chromium refuses to start inside its own sandbox
    browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                         args=["--no-sandbox"] if os.geteuid() == 0 else [])
    return browser, browser.new_page(viewport={"width": 1400, "height": 1000})


def test_trigger_form_names_the_invalid_field_then_triggers(airflow):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as error:
        pytest.fail(f"playwright is not installed ({error}): make setup installs requirements.lock")
    password = json.loads((airflow.project / ".airflow" / "simple_auth_manager_passwords.json.generated")
                          .read_text())["admin"]
    _, before = airflow.request("GET", "/api/v2/dags/lifecycle/dagRuns?limit=100")
    known = {run["dag_run_id"] for run in before["dag_runs"]}
    with sync_playwright() as playwright:
        browser, page = chromium_page(playwright)
        try:
            # given a user logged in as the README says (`admin`, the generated password)
            page.goto(f"{airflow.base}/dags/lifecycle")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{airflow.base}/dags/lifecycle", timeout=60_000)
            # when they open the trigger form and give epochs -1
            page.get_by_role("button", name="Trigger").first.click()
            form = page.get_by_role("dialog").filter(has_text="Trigger Dag - lifecycle")
            epochs = form.locator("input[name=element_epochs]")
            epochs.fill("-1")
            form.get_by_role("button", name="Trigger", exact=True).click()
            # then the form stays open and says which field is wrong, and why
            message = form.get_by_text("Invalid input for param epochs: -1 is less than or equal to the minimum of 0")
            expect(message).to_be_visible(timeout=30_000)
            toast = page.get_by_role("status").filter(has_text="Failed to Trigger Dag")
            expect(toast.first).to_be_visible()
            page.mouse.move(0, 0)  # a toast under the pointer stays
            expect(toast).to_have_count(0, timeout=60_000)  # it covers the Trigger button until it goes
            # when the value is valid (and the data source missing, so that the run fails at once, training nothing)
            epochs.fill("1")
            form.locator("input[name=element_data_source]").fill("data/no-such-file.csv")
            form.get_by_role("button", name="Trigger", exact=True).click()
            expect(form).to_be_hidden(timeout=30_000)
        finally:
            browser.close()
    # then the run exists, with the form's values in its conf
    _, after = airflow.request("GET", "/api/v2/dags/lifecycle/dagRuns?limit=100")
    created = [run for run in after["dag_runs"] if run["dag_run_id"] not in known]
    assert len(created) == 1, created
    assert created[0]["conf"]["epochs"] == 1 and created[0]["conf"]["data_source"] == "data/no-such-file.csv"
    assert airflow.wait_run("lifecycle", created[0]["dag_run_id"], timeout=180) == "failed"
    states = airflow.task_states("lifecycle", created[0]["dag_run_id"])
    assert states["configure"]["state"] == "failed" and states["train"]["state"] in (None, "upstream_failed")


def test_nothing_make_airflow_started_listens_beyond_loopback(airflow):
    # given the API server, scheduler, DAG processor, triggerer and the executor's workers
    tree = airflow.tree()
    commands = " ".join(" ".join(process.cmdline()) for process in tree)
    for component in ("scheduler", "dag-processor", "triggerer", "api_server"):
        assert component in commands, commands
    # when their listening sockets are listed
    sockets = airflow.listening()
    # then the API server's port is among them (the listing sees what listens) and all are on loopback
    assert any(address.endswith(f":{airflow.port}") for addresses in sockets.values() for address in addresses), \
        sockets
    assert not beyond_loopback(sockets), sockets
    for port in (8793, 8794):  # the task log servers `airflow standalone` would start on every interface
        assert not any(address.endswith(f":{port}") for addresses in sockets.values() for address in addresses)


def test_make_airflow_stop_returns_once_every_process_exited(airflow):
    # given every process `make airflow` started, the leader included
    pids = [process.pid for process in airflow.tree()]
    assert airflow.leader in pids and len(pids) >= 5, pids
    # when `make airflow-stop` returns
    done = airflow.make("airflow-stop", timeout=90)
    # then it said so, and not one of them is still alive, nor the port open
    assert done.returncode == 0 and done.stdout.strip().endswith("Airflow stopped"), (done.stdout, done.stderr)
    assert [pid for pid in pids if alive(pid)] == []
    assert airflow.tree() == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", airflow.port), timeout=2).close()
    assert not (airflow.project / ".airflow" / "standalone.pid").exists()
