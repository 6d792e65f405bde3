"""Environment defaults: applied once, never over what the user set."""

from __future__ import annotations

import os
from pathlib import Path

from mlops.core.environment import FIXED_DEFAULTS, apply_defaults, project_defaults


def test_defaults_fill_gaps_and_keep_user_values(monkeypatch, tmp_path):
    for key in [*FIXED_DEFAULTS, "BENTOML_HOME"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the user's choice wins
    apply_defaults(tmp_path)
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["DVC_NO_ANALYTICS"] == "1" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert os.environ["BENTOML_HOME"] == str(tmp_path.resolve() / ".bentoml")


def test_without_a_project_the_bentoml_home_is_left_alone(monkeypatch):
    monkeypatch.delenv("BENTOML_HOME", raising=False)
    apply_defaults()
    assert "BENTOML_HOME" not in os.environ


def test_project_defaults_name_the_project_home(tmp_path):
    assert project_defaults(tmp_path)["BENTOML_HOME"] == str(tmp_path.resolve() / ".bentoml")


def test_traffic_and_feedback_folders_follow_one_rule(tmp_path, monkeypatch):
    """Given `bentoml serve` running inside the Bento's store folder, the logs still land in the project: the
    variable when set and not empty, else the project's logs/ (never a folder relative to where serve runs)."""
    from mlops.core.environment import feedback_dir, traffic_dir

    monkeypatch.chdir(tmp_path)
    for variable in ("MLOPS_TRAFFIC_DIR", "MLOPS_FEEDBACK_DIR", "MLOPS_PROJECT_DIR"):
        monkeypatch.delenv(variable, raising=False)
    assert (traffic_dir(), feedback_dir()) == (tmp_path / "logs/traffic", tmp_path / "logs/feedback")
    monkeypatch.setenv("MLOPS_PROJECT_DIR", "/srv/project")
    monkeypatch.setenv("MLOPS_TRAFFIC_DIR", "")  # empty counts as unset, everywhere
    assert (traffic_dir(), feedback_dir()) == (Path("/srv/project/logs/traffic"), Path("/srv/project/logs/feedback"))
    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", "/shared/feedback")
    assert feedback_dir() == feedback_dir(tmp_path) == Path("/shared/feedback")
    assert traffic_dir(tmp_path) == tmp_path / "logs/traffic"


def test_the_makefile_gives_the_service_absolute_log_folders():
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "export MLOPS_FEEDBACK_DIR ?= $(CURDIR)/logs/feedback" in makefile
    assert "export MLOPS_TRAFFIC_DIR ?= $(CURDIR)/logs/traffic" in makefile
