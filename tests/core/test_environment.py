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


def test_no_module_but_the_environment_module_reads_an_mlops_variable():
    """Given the project's code, when it is scanned for reads of the environment (os.environ[...], .get, getenv)
    naming an MLOPS_ variable, then only mlops/core/environment.py has any: everything else asks environment()."""
    import ast

    root = Path(__file__).resolve().parents[2]
    readers = []
    for path in [p for folder in ("mlops", "dags", "plugins") for p in (root / folder).rglob("*.py")]:
        if path == root / "mlops" / "core" / "environment.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = None
            if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ") \
                    and isinstance(node.ctx, ast.Load):
                name = node.slice
            elif isinstance(node, ast.Call) and (ast.unparse(node.func).endswith(("environ.get", "getenv"))) \
                    and node.args:
                name = node.args[0]
            if isinstance(name, ast.Constant) and str(name.value).startswith("MLOPS_"):
                readers.append(f"{path.relative_to(root)}:{node.lineno} reads {name.value}")
    assert readers == []


def test_the_scan_would_see_a_direct_read(tmp_path):
    """The scan above is not vacuous: the three forms of a read it looks for are each found."""
    import ast

    source = 'import os\nos.environ["MLOPS_A"]\nos.environ.get("MLOPS_B")\nos.getenv("MLOPS_C")\n'
    found = [ast.unparse(n) for n in ast.walk(ast.parse(source))
             if (isinstance(n, ast.Subscript) and ast.unparse(n.value).endswith("environ"))
             or (isinstance(n, ast.Call) and ast.unparse(n.func).endswith(("environ.get", "getenv")))]
    assert len(found) == 3


def test_an_empty_variable_counts_as_unset():
    """Given variables set to "" or blanks, when the environment is read, then each has its default."""
    from mlops.core.environment import environment

    env = environment({"MLOPS_GPU_QUEUE": "", "MLOPS_ALERT_CONN_ID": "  ", "MLOPS_TRAFFIC_DIR": "",
                       "MLOPS_DVC_PUSH": "", "MLOPS_WORKSPACE_MODE": " "})
    assert (env.gpu_queue, env.alert_conn_id, env.traffic_dir, env.dvc_push, env.workspace_mode) == (
        "gpu", "mlops_alerts", None, False, "shared")
    env = environment({"MLOPS_GPU_QUEUE": "a100", "MLOPS_DVC_PUSH": "1", "MLOPS_KEEP_WORKDIRS": "0",
                       "MLOPS_SERVER_PID": "42", "MLOPS_TRAFFIC_DIR": "/srv/traffic"})
    assert (env.gpu_queue, env.dvc_push, env.keep_workdirs, env.server_pid, env.traffic_dir) == (
        "a100", True, False, 42, Path("/srv/traffic"))


def test_it_is_read_afresh_on_each_call(monkeypatch):
    from mlops.core.environment import environment

    monkeypatch.setenv("MLOPS_GPU_QUEUE", "first")
    assert environment().gpu_queue == "first"
    monkeypatch.setenv("MLOPS_GPU_QUEUE", "second")
    assert environment().gpu_queue == "second"


def test_a_value_of_the_wrong_type_is_an_error_naming_the_variable():
    import pytest

    from mlops.core.environment import environment
    from mlops.core.errors import MlopsError

    for name, value in (("MLOPS_DVC_PUSH", "perhaps"), ("MLOPS_SERVER_PID", "pid"),
                        ("MLOPS_WORKSPACE_MODE", "cloud"), ("MLOPS_PROGRESS", "2")):
        with pytest.raises(MlopsError, match=rf"{name}={value!r}"):
            environment({name: value})


def test_keys_are_secret_and_never_shown(monkeypatch):
    """Given keys in the environment, then they are SecretStr: not in the settings' repr, nor in an error."""
    import pytest

    from mlops.core.environment import environment, secret
    from mlops.core.errors import MlopsError

    env = environment({"MLOPS_API_KEY": "sk-visible", "MLOPS_TRAFFIC_SALT": "salty"})
    assert env.api_key is not None and env.api_key.get_secret_value() == "sk-visible"
    assert "sk-visible" not in repr(env) and "salty" not in str(env)
    assert secret("CLIENT_KEY", {"CLIENT_KEY": "k"}).get_secret_value() == "k"
    assert secret("CLIENT_KEY", {"CLIENT_KEY": ""}) is None
    with pytest.raises(MlopsError) as raised:
        environment({"MLOPS_API_KEY": "sk-visible", "MLOPS_DVC_PUSH": "perhaps"})
    assert "sk-visible" not in str(raised.value)


def test_the_reference_page_lists_every_variable():
    """docs/reference/environment.md's table is the model's: regenerate with `python -m mlops.core.environment`."""
    from mlops.core.environment import REFERENCE, rendered_reference, variable_names

    page = REFERENCE.read_text()
    assert page == rendered_reference(page), "stale: run python -m mlops.core.environment"
    assert all(f"`{name}`" in page for name in variable_names())
