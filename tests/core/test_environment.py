"""Environment defaults: applied once, never over what the user set."""

from __future__ import annotations

import os

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
