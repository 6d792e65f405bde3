"""Training: determinism on CPU, resume after kill -9, and what a run leaves behind."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from mlops.core import registry
from mlops.core.io import read_table, write_table
from mlops.core.settings import parse_settings
from mlops.ml.training.checkpoints import resumable_checkpoint
from mlops.ml.training.refitting import refit_steps
from mlops.ml.training.start import load_base, plan_start
from mlops.stages import split, train
from mlops.stages.generate import generate_corpus
from tests.helpers import BIN, ROOT, kill_9_at, project_env, tiny_params


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
    return train.run(settings, train.TrainIO.build(split_dir=root / "data/split", out=root / name / "model",
                                                   metrics=root / name / "train.json", live_dir=root / name / "dvclive",
                                                   curves=root / name / "curves.png"))


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
    kill_9_at(command, root, env, root / "k" / ".model-checkpoints" / "checkpoint-40" / "trainer_state.json")
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
    assert resumable_checkpoint(checkpoints, "key-1") is None
    (checkpoints / "checkpoint-20").mkdir()
    (checkpoints / "checkpoint-20" / "trainer_state.json").write_text("{}")
    assert resumable_checkpoint(checkpoints, "key-1").endswith("checkpoint-20")
    assert resumable_checkpoint(checkpoints, "key-2") is None  # other data or settings: start clean
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


def store_champion(model_dir, base, labels):
    """Register `model_dir` (with `labels` in its label map) as the champion of a private store."""
    from mlops.core.io import write_json
    from mlops.ml.model import save_label_map

    save_label_map(model_dir, labels, 64)
    tag = registry.register_model("tiny", model_dir, {"params": json.dumps({"model": {"base": base}})})
    write_json({**registry.read_registry(), "champion": {"model": tag}}, registry.registry_path())
    return tag


def with_feedback(frame, rows):
    return frame.assign(origin=["feedback" if i < rows else "main" for i in range(len(frame))])


def test_without_feedback_rows_training_starts_from_the_base(tiny_settings, bentoml_home):
    frame = generate_corpus(50, tiny_settings.data.generated.classes, seed=1).assign(origin="main")
    rows, settings, tag, path, why = plan_start(tiny_settings, frame, sorted(set(frame["label"])))
    assert tag is None and path is None and len(rows) == 50 and settings is tiny_settings
    assert "no labelled feedback" in why


def test_feedback_with_no_champion_starts_from_the_base_and_says_so(tiny_settings, bentoml_home):
    frame = with_feedback(generate_corpus(50, tiny_settings.data.generated.classes, seed=1), 10)
    _, _, tag, _, why = plan_start(tiny_settings, frame, sorted(set(frame["label"])))
    assert tag is None and "no champion yet" in why


def test_feedback_and_a_matching_champion_continue_on_feedback_plus_a_replay(tiny_settings, bentoml_home, tmp_path):
    # given a champion fine-tuned from the same base with the same labels
    frame = with_feedback(generate_corpus(300, tiny_settings.data.generated.classes, seed=1), 40)
    labels = sorted(set(frame["label"]))
    champion = tmp_path / "champion"
    champion.mkdir()
    tag = store_champion(champion, tiny_settings.model.base, labels)
    options = tiny_settings.train.continue_from_champion.model_copy(update={"replay_rows": 100, "epochs": 2.0})
    given = tiny_settings.model_copy(update={"train": tiny_settings.train.model_copy(
        update={"continue_from_champion": options})})
    # when training plans its start
    rows, settings, started, path, why = plan_start(given, frame, labels)
    # then it continues from the champion on every feedback row and 100 replayed original rows
    assert started == tag and path is not None and (path / "label_map.json").is_file()
    assert (rows["origin"] == "feedback").sum() == 40 and (rows["origin"] == "main").sum() == 100
    assert settings.train.epochs == 2.0 and settings.train.lr == options.lr
    assert f"continuing from champion {tag}" in why
    # and the same plan twice is the same rows (seeded replay)
    again = plan_start(given, frame, labels)[0]
    assert again["text"].tolist() == rows["text"].tolist()


def test_a_champion_with_other_labels_or_base_is_not_continued(tiny_settings, bentoml_home, tmp_path):
    frame = with_feedback(generate_corpus(50, tiny_settings.data.generated.classes, seed=1), 10)
    labels = sorted(set(frame["label"]))
    (tmp_path / "a").mkdir()
    store_champion(tmp_path / "a", tiny_settings.model.base, labels[:-1])
    assert "has labels" in plan_start(tiny_settings, frame, labels)[4]
    (tmp_path / "b").mkdir()
    store_champion(tmp_path / "b", "another-base", labels)
    assert "was fine-tuned from 'another-base'" in plan_start(tiny_settings, frame, labels)[4]


def test_continuing_can_be_turned_off(tiny_settings, bentoml_home):
    frame = with_feedback(generate_corpus(50, tiny_settings.data.generated.classes, seed=1), 10)
    options = tiny_settings.train.continue_from_champion.model_copy(update={"enabled": False})
    off = tiny_settings.model_copy(update={"train": tiny_settings.train.model_copy(
        update={"continue_from_champion": options})})
    assert "continue_from_champion is off" in plan_start(off, frame, sorted(set(frame["label"])))[4]


@pytest.mark.slow
def test_a_retrain_on_feedback_continues_from_the_champions_weights(setup, bentoml_home, tmp_path):
    # given a trained champion in the store and a training split with feedback rows
    settings, root = setup
    reference = root / "a" / "model"
    if not reference.is_dir():
        run_once(settings, root, "a")
    labels = json.loads((reference / "label_map.json").read_text())["labels"]
    shutil.copytree(reference, tmp_path / "champion")
    tag = store_champion(tmp_path / "champion", settings.model.base, labels)
    split_dir = tmp_path / "data" / "split"
    shutil.copytree(root / "data" / "split", split_dir)
    frame = read_table(split_dir / "train.parquet")
    write_table(with_feedback(frame, 30), split_dir / "train.parquet")
    # when train runs
    summary = train.run(settings, train.TrainIO.build(split_dir=split_dir, out=tmp_path / "c/model",
                                                      metrics=tmp_path / "c/train.json", live_dir=tmp_path / "c/live"))
    # then it started from the champion, on the feedback rows and the replay, and kept its last weights
    options = settings.train.continue_from_champion
    assert summary["started_from"] == tag and summary["best_step"] is None
    assert summary["train_rows"] == 30 + min(options.replay_rows, len(frame) - 30)
    assert summary["epochs"] == options.epochs


def test_refit_steps_are_the_best_steps_epochs_on_the_larger_set(tiny_settings):
    # given a selection run whose best checkpoint was step 300 of 141-step epochs (4,500 rows, batch 32)
    settings = tiny_settings.model_copy(update={"train": tiny_settings.train.model_copy(
        update={"batch_size": 32, "grad_accum_steps": 1})})
    # when the refit adds the 500 validation rows (157-step epochs), it runs as many epochs' worth of steps
    assert refit_steps(300, 4500, 5000, settings) == round(300 * 157 / 141)
    # and gradient accumulation counts optimiser steps, not batches
    accumulated = settings.model_copy(update={"train": settings.train.model_copy(update={"grad_accum_steps": 2})})
    assert refit_steps(150, 4500, 5000, accumulated) == round(150 * 79 / 71)


def refit_command(out: str) -> list[str]:
    return [str(BIN / "mlops"), "train", "--split-dir", "data/split", "--out", f"{out}/model", "--metrics",
            f"{out}/train.json", "--live-dir", f"{out}/dvclive"]


@pytest.mark.slow
def test_refit_trains_on_train_and_validation_and_resumes_after_kill_9(setup):
    # given the tiny project with train.refit on
    settings, root = setup
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["refit"] = True
    refit_root = root / "refit"
    shutil.copytree(root / "data", refit_root / "data")
    (refit_root / "params.yaml").write_text(yaml.safe_dump(params))
    env = project_env(refit_root)
    # when it trains uninterrupted
    result = subprocess.run(refit_command("r"), cwd=refit_root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((refit_root / "r/train.json").read_text())
    rows = {name: len(read_table(root / "data/split" / f"{name}.parquet")) for name in ("train", "validation")}
    # then the refit learnt from both splits for the selection's best step scaled to them, and the model is its
    assert summary["refit"]["rows"] == rows["train"] + rows["validation"]
    assert summary["refit"]["steps"] == refit_steps(summary["best_step"], rows["train"], sum(rows.values()),
                                                          parse_settings(params))
    selection = run_once(settings, root, "a") if not (root / "a/train.json").exists() else \
        json.loads((root / "a/train.json").read_text())
    assert summary["best_step"] == selection["best_step"]  # the same selection run as without the refit
    assert summary["validation_accuracy"] == selection["validation_accuracy"]  # its figures, not the refit's
    assert registry.model_digest(refit_root / "r/model") != registry.model_digest(root / "a/model")
    assert not (refit_root / "r/.model-checkpoints").exists()
    assert not (refit_root / "r/.model-refit-checkpoints").exists()
    # when another run is killed in the middle of its refit, then started again
    kill_9_at(refit_command("k"), refit_root, env,
              refit_root / "k/.model-refit-checkpoints/checkpoint-20/trainer_state.json")
    assert not (refit_root / "k/model").exists()
    result = subprocess.run(refit_command("k"), cwd=refit_root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # then it does not train the selection again, resumes the refit, and ends with the same model
    assert "the selection run finished before" in result.stdout
    assert "refit resuming from" in result.stdout
    assert registry.model_digest(refit_root / "k/model") == registry.model_digest(refit_root / "r/model")


REPAIRS = [{"pattern": "&?#39;", "replacement": "'"}, {"pattern": "\\\\", "replacement": " "}]


def with_repairs(settings):
    return parse_settings(settings.model_dump(by_alias=True) | {
        "model": settings.model.model_dump() | {"text_repairs": REPAIRS}})


@pytest.mark.parametrize("from_champion", [False, True])
def test_training_tokenises_with_this_runs_text_repairs(setup, tiny_classifier_dir, from_champion):
    settings, _ = setup
    labels = json.loads((tiny_classifier_dir / "label_map.json").read_text())["labels"]
    tokenizer, _ = load_base(with_repairs(settings), labels, tiny_classifier_dir if from_champion else None)
    assert tokenizer("Haiti #39;s line\\break")["input_ids"] == tokenizer("Haiti's line break")["input_ids"]


@pytest.mark.slow
def test_a_trained_model_records_its_text_repairs_and_serves_with_them(setup):
    from mlops.ml.model import Classifier

    settings, root = setup
    settings = with_repairs(settings)
    settings = settings.model_copy(update={"train": settings.train.model_copy(update={"epochs": 1})})
    run_once(settings, root, "repaired")
    label_map = json.loads((root / "repaired/model/label_map.json").read_text())
    assert label_map["text_repairs"] == [[r["pattern"], r["replacement"]] for r in REPAIRS]
    classifier = Classifier.load(root / "repaired/model", device="cpu")
    raw, clean = classifier.tokenize(["Haiti #39;s line\\break", "Haiti's line break"])["input_ids"]
    assert raw == clean
