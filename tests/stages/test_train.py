"""Training: determinism on CPU, resume after kill -9, and what a run leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from mlops.core import registry
from mlops.core.io import write_table
from mlops.core.settings import parse_settings
from mlops.stages import split, train
from mlops.stages.generate import generate_corpus
from tests.helpers import BIN, ROOT, project_env, tiny_params


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    params["train"].update({"epochs": 3, "eval_steps": 20, "early_stopping_patience": None})
    root = tmp_path_factory.mktemp("train")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    settings = parse_settings(params)
    frame = generate_corpus(600, settings.data.generated.classes, seed=11).assign(subset="main")
    for name, part in split.split(frame, settings).items():
        write_table(part, root / "data" / "split" / f"{name}.parquet")
    return settings, root


def run_once(settings, root, name):
    return train.run(settings, root / "data/split", root / name / "model", root / name / "train.json",
                     root / name / "dvclive", root / name / "curves.png")


@pytest.mark.slow
def test_two_runs_on_cpu_are_identical(setup):
    settings, root = setup
    first, second = run_once(settings, root, "a"), run_once(settings, root, "b")
    for key in ("validation_accuracy", "validation_macro_f1", "train_loss", "steps", "best_step"):
        assert first[key] == second[key], key
    assert registry.model_digest(root / "a/model") == registry.model_digest(root / "b/model")  # same weights
    assert (root / "a/curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (root / "a" / ".model-checkpoints").exists()  # checkpoints go once the model is saved


@pytest.mark.slow
def test_kill_9_then_resume_ends_like_an_uninterrupted_run(setup):
    settings, root = setup
    reference = run_once(settings, root, "a") if not (root / "a/train.json").exists() else \
        json.loads((root / "a/train.json").read_text())
    env = project_env(root)
    command = [str(BIN / "mlops"), "train", "--split-dir", "data/split", "--out", "k/model", "--metrics",
               "k/train.json", "--live-dir", "k/dvclive", "--curves", "k/curves.png"]
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    checkpoints = root / "k" / ".model-checkpoints"
    deadline = time.monotonic() + 300
    while not (checkpoints / "checkpoint-40" / "trainer_state.json").exists():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert not (root / "k/model").exists()
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train: resuming from" in result.stdout
    resumed = json.loads((root / "k/train.json").read_text())
    assert resumed["resumed_from"] in ("checkpoint-40", "checkpoint-60")
    for key in ("validation_accuracy", "validation_macro_f1", "steps", "best_step"):
        assert resumed[key] == reference[key], key
    assert registry.model_digest(root / "k/model") == registry.model_digest(root / "a/model")


@pytest.mark.slow
def test_checkpoints_of_other_settings_are_not_resumed(setup, tmp_path):
    settings, root = setup
    checkpoints = tmp_path / ".model-checkpoints"
    assert train.resumable_checkpoint(checkpoints, "key-1") is None
    (checkpoints / "checkpoint-20").mkdir()
    (checkpoints / "checkpoint-20" / "trainer_state.json").write_text("{}")
    assert train.resumable_checkpoint(checkpoints, "key-1").endswith("checkpoint-20")
    assert train.resumable_checkpoint(checkpoints, "key-2") is None  # other data or settings: start clean
    assert not (checkpoints / "checkpoint-20").exists()


def test_dvc_plots_template_renders_offline():
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    template = (ROOT / ".dvc" / config["plots"]["html_template"]).resolve()
    page = template.read_text()
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN script tags have nowhere to go
    assert "<script src=" not in page and "vegaEmbed" in page


@pytest.mark.slow
def test_torchrun_two_processes_train_one_model(setup):
    """The multi-GPU path, exercised on CPU: DDP over gloo, only rank 0 writes."""
    settings, root = setup
    command = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "mlops", "train",  # a free port
               "--split-dir", "data/split",
               "--out", "ddp/model", "--metrics", "ddp/train.json", "--live-dir", "ddp/dvclive", "--curves",
               "ddp/curves.png"]
    result = subprocess.run(command, cwd=root, env=project_env(root), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((root / "ddp/train.json").read_text())
    assert summary["processes"] == 2
    single_process_steps = int(settings.train.epochs) * -(-summary["train_rows"] // settings.train.batch_size)
    assert summary["steps"] < single_process_steps  # each rank sees half of the rows
    assert (root / "ddp/model/model.safetensors").is_file()
    assert result.stdout.count("train: 420 rows") == 1  # one summary line: rank 0 alone reports and writes
