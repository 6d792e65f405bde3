"""Screenshots of the Airflow UI for docs/how-to/airflow-local.md, from the Airflow `make airflow` started.

    make airflow
    .venv/bin/python bench/airflow_screenshots.py [--out docs/assets/airflow]

Logs in as `admin` (the password `make airflow` generated under AIRFLOW_HOME), in
Debian's headless Chromium (/usr/bin/chromium) driven by Playwright, and saves:

- dags.png: the DAG list;
- lifecycle-graph.png: the lifecycle DAG's graph (its task groups);
- rejected-run.png: a run whose candidate the gate rejected (the run's note reads REJECTED);
- failed-run.png: a run that failed, its task instances (the failed one, those it stopped).

A rejected or a failed run that the lifecycle DAG does not have yet is triggered
first, with parameters that make it cheap: a missing data source fails
`configure` at once; a gate no candidate passes (min_accuracy 1.0) after one
epoch on 600 generated rows rejects one (a few minutes on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FAIL_CONF = {"data_source": "data/no-such-file.csv"}
REJECT_CONF = {"generated_rows": 600, "max_train_samples": 200, "epochs": 1, "min_accuracy": 1.0}
VIEWPORT = {"width": 1400, "height": 900}


class Api:
    def __init__(self, base: str, password: str) -> None:
        self.base, self.token = base.rstrip("/"), None
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": password})["access_token"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read().decode())

    def runs(self) -> list[dict[str, Any]]:
        return self.call("GET", "/api/v2/dags/lifecycle/dagRuns?limit=100&order_by=-run_after")["dag_runs"]

    def run(self, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v2/dags/lifecycle/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def finished(self, conf: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Trigger a run with `conf` and wait until it ends (and its note is written)."""
        run_id = self.call("POST", "/api/v2/dags/lifecycle/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]
        print(f"triggered {run_id} with {conf}; waiting for it to end", flush=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["state"] in ("success", "failed") and (run["state"] == "failed" or run.get("note")):
                return run
            time.sleep(5)
        raise SystemExit(f"run {run_id} did not end within {timeout:.0f} s")


def rejected_run(api: Api) -> dict[str, Any]:
    for run in api.runs():
        if (run.get("note") or "").startswith("REJECTED"):
            return run
    return api.finished(REJECT_CONF, timeout=3600)


def failed_run(api: Api) -> dict[str, Any]:
    for run in api.runs():
        if run["state"] == "failed":
            return run
    return api.finished(FAIL_CONF, timeout=600)


def failed_task(api: Api, run_id: str) -> str:
    quoted = urllib.parse.quote(run_id, safe="")
    tasks = api.call("GET", f"/api/v2/dags/lifecycle/dagRuns/{quoted}/taskInstances")["task_instances"]
    return next(task["task_id"] for task in tasks if task["state"] == "failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "assets" / "airflow")
    parser.add_argument("--base-url", default=os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--airflow-home", type=Path, default=Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow")))
    args = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import expect, sync_playwright

    passwords = args.airflow_home / "simple_auth_manager_passwords.json.generated"
    try:
        password = json.loads(passwords.read_text())["admin"]
        api = Api(args.base_url, password)
    except (OSError, KeyError, urllib.error.URLError) as error:
        raise SystemExit(f"no Airflow to log in to at {args.base_url} ({error}): `make airflow` first") from None
    failed, rejected = failed_run(api), rejected_run(api)
    args.out.mkdir(parents=True, exist_ok=True)
    base = api.base
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox"] if os.geteuid() == 0 else [])
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{base}/dags")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/dags", timeout=60_000)

        def shot(name: str) -> None:
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(4000)  # charts animate, and the graph is laid out, after the data arrived
            path = args.out / name
            page.screenshot(path=str(path))
            print(f"{path} ({path.stat().st_size // 1024} KB)")

        expect(page.get_by_text("lifecycle").first).to_be_visible(timeout=30_000)
        shot("dags.png")
        page.goto(f"{base}/dags/lifecycle/runs/{urllib.parse.quote(rejected['dag_run_id'], safe='')}")
        expect(page.get_by_text("REJECTED").first).to_be_visible(timeout=30_000)
        shot("rejected-run.png")
        # the run, not its failed task's log: the log's traceback shows where the virtualenv lives
        page.goto(f"{base}/dags/lifecycle/runs/{urllib.parse.quote(failed['dag_run_id'], safe='')}")
        expect(page.get_by_text(failed_task(api, failed["dag_run_id"])).first).to_be_visible(timeout=30_000)
        shot("failed-run.png")
        page.goto(f"{base}/dags/lifecycle")
        page.get_by_role("button", name="Graph").first.click()
        expect(page.locator(".react-flow").first).to_be_visible(timeout=30_000)
        shot("lifecycle-graph.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
