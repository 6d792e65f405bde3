"""DVC users' habits on a tiny config: experiments compare side by side, and earlier params come back from
the run-cache instead of being computed again."""

from __future__ import annotations

import json

import pytest

from tests.helpers import BIN, copy_project, run_cmd, tiny_params

pytestmark = pytest.mark.slow


def experiment_metrics(shown: list[dict], name: str) -> dict:
    """The metrics of experiment `name` in `dvc exp show --json` (a list of baselines with their experiments)."""
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs", []):
                if rev.get("name") == name:
                    return {path: (value.get("data") or {}) for path, value in rev["data"]["metrics"].items()}
    raise AssertionError(f"experiment {name} not in dvc exp show")


def test_experiments_show_side_by_side_and_reverted_params_restore(tmp_path, repo_params, tiny_model_dir):
    params = tiny_params(repo_params, tiny_model_dir)
    params["train"]["epochs"] = 2
    project = copy_project(tmp_path / "project", params)
    dvc = str(BIN / "dvc")

    def exp_run(name: str, *overrides: str) -> str:
        args = [dvc, "exp", "run", "-n", name, "evaluate"]
        for override in overrides:
            args += ["-S", override]
        return run_cmd(args, cwd=project, timeout=900).stdout

    run_cmd([dvc, "config", "core.analytics", "false"], cwd=project)
    exp_run("lr-high", "train.lr=0.003", "validate.min_rows=50")
    second = exp_run("lr-low", "train.lr=0.0003", "validate.min_rows=49")
    assert "Running stage 'validate'" in second and "Running stage 'train'" in second

    shown = json.loads(run_cmd([dvc, "exp", "show", "--json"], cwd=project).stdout)
    high, low = experiment_metrics(shown, "lr-high"), experiment_metrics(shown, "lr-low")
    for metrics in (high, low):
        headline = metrics["metrics/evaluate.json"]
        assert {"accuracy", "macro_f1", "ece"} <= set(headline) and "per_class" not in headline
        assert "per_class" in metrics["metrics/evaluate_detail.json"]
        assert "loss" in metrics["dvclive/metrics.json"]  # the training curves' last values, per experiment
    assert high["metrics/evaluate.json"] != low["metrics/evaluate.json"]  # two trainings, two results
    table = run_cmd([dvc, "exp", "show", "--no-pager", "--csv"], cwd=project).stdout
    assert "!" not in "".join(line for line in table.splitlines() if "lr-" in line)
    diff = json.loads(run_cmd([dvc, "metrics", "diff", "lr-high", "lr-low", "--json"], cwd=project).stdout)
    assert "accuracy" in diff["metrics/evaluate.json"] or high["metrics/evaluate.json"]["accuracy"] == \
        low["metrics/evaluate.json"]["accuracy"]

    third = exp_run("lr-high-again", "train.lr=0.003", "validate.min_rows=50")
    for stage in ("validate", "train", "evaluate"):
        assert f"Running stage '{stage}'" not in third, third
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in third, third
    again = experiment_metrics(json.loads(run_cmd([dvc, "exp", "show", "--json"], cwd=project).stdout),
                               "lr-high-again")
    assert again["metrics/evaluate.json"] == high["metrics/evaluate.json"]

    # hand runs of validate and monitor on the experiment's workspace leave the pipeline's outputs alone
    validated = run_cmd([str(BIN / "mlops"), "validate"], cwd=project, check=False).stdout
    monitored = run_cmd([str(BIN / "mlops"), "monitor", "--current", "test", "--no-history"], cwd=project).stdout
    for output, command in ((validated, "validate"), (monitored, "monitor")):
        assert f"{command}: no output folder given; this hand run writes to reports/adhoc/" in output, output
    assert len(list((project / "reports/adhoc").glob("*/summary.json"))) == 2
    assert not (project / "reports/monitoring").exists()
    status = run_cmd([dvc, "status", "evaluate"], cwd=project).stdout
    assert "Data and pipelines are up to date" in status, status
