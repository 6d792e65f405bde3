"""Bad input through the CLI: one line naming the problem, a non-zero exit, no traceback."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.helpers import ROOT, invoke_cli, tiny_params


@pytest.fixture
def workdir(tmp_path, repo_params, tiny_model_dir):
    def write(params):
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        return tmp_path

    return write, tiny_params(repo_params, tiny_model_dir)


def mlops(cwd, *args):
    """The command in this process: the same `main`, its messages and exit codes, without a child's imports."""
    return invoke_cli(list(args), cwd=cwd, check=False)


def mlops_child(cwd, *args):
    """`python -m mlops` as a child process, as a shell or a DVC stage runs it: nothing else (a warning, a log
    line) reaches its stderr, and the status is the process's own."""
    return subprocess.run([sys.executable, "-m", "mlops", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)})


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_misspelt_params_key(workdir):
    write, params = workdir
    params["train"]["epocs"] = params["train"].pop("epochs")
    assert_one_line_error(mlops(write(params), "ingest"), "train.epocs: unknown key")


@pytest.mark.slow  # runs `mlops` as a child process (seconds of imports)
def test_a_bad_distill_param_is_one_line_naming_it(workdir):
    write, params = workdir
    params["distill"] = {"enabled": True, "temperature": -1}
    result = mlops_child(write(params), "distill", "--model", "m", "--split-dir", "s", "--out", "o",
                         "--metrics", "d.json")
    assert_one_line_error(result, "distill.temperature: Input should be greater than 0")


def test_split_takes_its_paths_from_dvc_yaml_and_an_option_replaces_one(workdir, tmp_path):
    from mlops.stages.generate import generate_corpus

    write, params = workdir
    # given a project whose dvc.yaml passes split both its paths
    cwd = write(params)
    (cwd / "dvc.yaml").write_text("stages:\n  split:\n    cmd: mlops split --data rows.parquet --out-dir declared\n")
    generate_corpus(300, params["data"]["generated"]["classes"], seed=3).assign(subset="main").to_parquet(
        cwd / "rows.parquet")
    # when split runs with --out-dir alone
    result = mlops(cwd, "split", "--out-dir", "given")
    # then it reads the rows dvc.yaml names and writes where the option says
    assert result.returncode == 0, result.stderr
    assert (cwd / "given" / "train.parquet").is_file() and not (cwd / "declared").exists()


def test_missing_data_file(workdir):
    write, params = workdir
    params["data"]["source"]["path"] = "data/nowhere.csv"
    assert_one_line_error(mlops(write(params), "ingest"), "data file not found: data/nowhere.csv")


def test_data_file_without_label_column(workdir, tmp_path):
    write, params = workdir
    pd.DataFrame({"text": ["hello world"], "topic": ["x"]}).to_csv(tmp_path / "d.csv", index=False)
    params["data"]["source"]["path"] = "d.csv"
    result = mlops(write(params), "ingest")
    assert_one_line_error(result, "no label column 'label' among its 2 column(s)")
    assert "topic" not in result.stderr  # the file's own column names stay out of logs and alerts


def test_ingest_refuses_a_source_outside_the_allow_list_before_reading_it(workdir, tmp_path):
    write, params = workdir
    # given a file outside the project, whose column names must not reach the logs
    (tmp_path / "project").mkdir()
    outside = tmp_path / "outside.csv"
    outside.write_text("secret_column,other\n1,2\n")
    params["data"]["source"]["path"] = str(outside)
    write(params)
    (tmp_path / "project" / "params.yaml").write_text((tmp_path / "params.yaml").read_text())
    # when `mlops ingest` runs in the project, it refuses the path, naming the setting, before reading it
    result = mlops(tmp_path / "project", "ingest")
    assert_one_line_error(result, f"data.source.path {outside}: outside the project, and not in "
                                  f"data.allowed_sources.paths (none)")
    assert "secret_column" not in result.stderr and not (tmp_path / "project" / "data").exists()
    params["data"]["source"]["path"] = "https://example.com/corpus.csv"
    (tmp_path / "project" / "params.yaml").write_text(yaml.safe_dump(params))
    assert_one_line_error(mlops(tmp_path / "project", "ingest"), "https host 'example.com' is not allowed")
    # and with its folder listed, the file is read (and its columns still not named)
    params["data"]["source"]["path"] = str(outside)
    params["data"]["allowed_sources"]["paths"] = [str(tmp_path)]
    (tmp_path / "project" / "params.yaml").write_text(yaml.safe_dump(params))
    result = mlops(tmp_path / "project", "ingest")
    assert_one_line_error(result, "no text column 'text' among its 2 column(s)")
    assert "secret_column" not in result.stderr


@pytest.mark.slow  # runs `mlops` as a child process (seconds of imports)
def test_failed_validation_exits_non_zero(workdir, tmp_path):
    write, params = workdir
    pd.DataFrame({"text": ["hi there"] * 200, "label": ["billing"] * 200, "subset": "main"}).to_parquet(
        tmp_path / "bad.parquet")
    result = mlops_child(write(params), "validate", "--data", "bad.parquet")
    assert result.returncode == 2
    assert "data validation failed" in result.stderr and "duplicate_share" in result.stderr
    assert "CRITICAL duplicate_share" in result.stdout


def test_hand_run_validate_writes_to_its_own_folder_and_says_where(workdir, tmp_path):
    write, params = workdir
    pd.DataFrame({"text": [f"text number {i}" for i in range(80)], "label": ["billing"] * 80}).to_csv(
        tmp_path / "batch.csv", index=False)
    result = mlops(write(params), "validate", "--data", "batch.csv")
    assert "validate: no output folder given; this hand run writes to reports/adhoc/" in result.stdout
    written = list((tmp_path / "reports/adhoc").glob("*-validate/summary.json"))
    assert len(written) == 1 and not (tmp_path / "reports/validation").exists()


def test_registry_without_champion(workdir):
    write, params = workdir
    assert_one_line_error(mlops(write(params), "registry", "show"), "no champion yet")


def test_exit_and_error_are_reported_to_a_driver_that_asks(workdir):
    """A driver running the command through `dvc repro` learns its exit and error without parsing logs."""
    import json

    write, params = workdir
    params["train"]["epocs"] = params["train"].pop("epochs")
    cwd = write(params)
    exit_file = cwd / "exit.json"
    result = subprocess.run([sys.executable, "-m", "mlops", "ingest"], cwd=cwd, capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd),
                                              "MLOPS_EXIT_FILE": str(exit_file)})
    assert result.returncode == 2
    reported = json.loads(exit_file.read_text())
    assert reported["exit"] == 2 and "train.epocs: unknown key" in reported["error"]


def test_a_candidate_the_gate_rejected_ends_promote_with_exit_3_the_verdict_and_the_labels_needed(tmp_path,
                                                                                                  repo_params):
    """A rejection is an outcome: the verdict and the next step on stdout, exit 3, no error line."""
    import json

    from mlops.core.records import GateDecision
    from mlops.core.settings import parse_settings
    from mlops.stages import package

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    step = ("label about 412 more texts (the queue has 500: reports/labelling/queue.csv) and run again "
            "(mlops retrain-on-drift, or make run)")
    decision = GateDecision(accepted=False, basis="absolute thresholds and a paired bootstrap against the champion",
                            next_step=step,
                            reasons=["better_than_champion_on_recent: observed -0.0047 vs 0.0 (lower bound > 0)"])
    rejected = package.package(parse_settings(repo_params), decision, tmp_path / "model", {}, tmp_path / "b", tmp_path)
    rejected.write(tmp_path / "package.json")  # what the package stage writes for it
    exit_file = tmp_path / "exit.json"
    result = subprocess.run([sys.executable, "-m", "mlops", "promote", "--package-result", "package.json",
                             "--out", "promotion.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
                                 "MLOPS_EXIT_FILE": str(exit_file)})
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "error" not in result.stderr and "Traceback" not in result.stderr
    out = result.stdout.splitlines()
    assert out[0].startswith("promote: nothing promoted: the gate rejected the model: better_than_champion_on_recent")
    assert out[1].startswith("verdict: REJECTED by the gate, nothing promoted; the champion keeps serving (exit 3")
    assert out[2] == f"next step: {step}"
    promotion = json.loads((tmp_path / "promotion.json").read_text())
    assert promotion["rejected"] and not promotion["promoted"] and promotion["next_step"] == step
    assert json.loads(exit_file.read_text())["exit"] == 3  # what a driver (Airflow) learns


def test_promote_without_the_shadow_evidence_it_requires_ends_with_exit_3_and_says_what_is_missing(tmp_path,
                                                                                                    repo_params):
    """promote.require_shadow unmet is an outcome as a gate rejection: the reason and the next step, exit 3."""
    import json

    repo_params["promote"]["require_shadow"] = {"min_answers": 200, "min_agreement": 0.9}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    (tmp_path / "package.json").write_text(json.dumps({"status": "candidate", "model": "m:2", "bento": "b:2"}))
    result = mlops(tmp_path, "promote", "--package-result", "package.json", "--out", "promotion.json")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "error" not in result.stderr and "Traceback" not in result.stderr
    out = result.stdout.splitlines()
    assert out[0] == ("promote: nothing promoted: not enough shadow evidence: promote.require_shadow asks for 200 "
                      "shadowed answers and the shadow has none for m:2 in the newest 5000 shadow records (is "
                      "serve.shadow on, and m:2 the registry's challenger?)")
    assert out[1].startswith("verdict: REJECTED by promote.require_shadow, nothing promoted; the champion keeps")
    assert out[2].startswith("next step: serve with serve.shadow on until the shadow has that evidence")
    assert json.loads((tmp_path / "promotion.json").read_text())["rejected_by"] == "promote.require_shadow"


def test_a_step_reports_the_status_of_the_mlops_command_inside(tmp_path, repo_params, bentoml_home):
    """retrain-on-drift passes on a step's own status: 2 for a refusal behind `dvc repro`'s 1, as for a stage."""
    from mlops.cli_operations import run_step

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    code, own = run_step([sys.executable, "-m", "mlops", "registry", "show"], tmp_path)  # no champion: refused
    assert (code, own) == (2, 2)
