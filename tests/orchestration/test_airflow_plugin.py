"""The project's Airflow plugin: /reports serves the project's reports, plots and metrics, and nothing else."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mlops.orchestration.airflow_plugin import MlopsPlugin, RunNoteListener, reports_app, require_login


@pytest.fixture
def project(tmp_path):
    (tmp_path / "reports/gate").mkdir(parents=True)
    (tmp_path / "reports/gate/decision.json").write_text('{"accepted": false}')
    (tmp_path / "reports/gate/model_card.md").write_text("# Model card\n")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots/confusion_matrix.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "params.yaml").write_text("secret: 1\n")
    (tmp_path / "outside.txt").write_text("not a report")
    (tmp_path / "reports/escape.txt").symlink_to(tmp_path / "outside.txt")  # in the project, not a report
    (tmp_path / "reports/away").symlink_to(tmp_path.parent)  # out of the project
    return tmp_path


@pytest.fixture
def client(project):
    app = reports_app(project)
    app.dependency_overrides[require_login] = lambda: None  # a logged-in user: Airflow's login is tested below
    return TestClient(app)


def test_a_report_under_the_served_folders_is_served(client):
    answer = client.get("/reports/gate/decision.json")
    assert answer.status_code == 200 and answer.json() == {"accepted": False}
    assert answer.headers["content-security-policy"].startswith("sandbox")  # never runs as the Airflow UI
    card = client.get("/reports/gate/model_card.md")
    assert card.text == "# Model card\n" and card.headers["content-type"].startswith("text/plain")
    assert client.get("/plots/confusion_matrix.png").headers["content-type"] == "image/png"


def test_a_folder_is_listed_with_links_to_its_files(client):
    listing = client.get("/plots")
    assert listing.status_code == 200 and 'href="/plots/confusion_matrix.png"' in listing.text


REFUSED = ["/params.yaml", "/outside.txt", "/reports/../params.yaml", "/reports/%2e%2e/params.yaml",
           "/reports/escape.txt", "/reports/away", "/reports/gate/missing.json", "/", "//etc/passwd",
           "/.dvc/config"]


@pytest.mark.parametrize("path", REFUSED)
def test_anything_else_is_refused(client, path):
    assert client.get(path).status_code == 404


def test_without_airflows_login_nothing_is_served(project):
    answer = TestClient(reports_app(project)).get("/reports/gate/decision.json")
    assert answer.status_code == 401


def test_the_plugin_mounts_reports_and_listens_for_finished_runs():
    assert [(app["url_prefix"], app["name"]) for app in MlopsPlugin.fastapi_apps] == [("/reports", "mlops reports")]
    assert [type(listener) for listener in MlopsPlugin.listeners] == [RunNoteListener]
