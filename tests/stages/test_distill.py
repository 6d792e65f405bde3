"""Stage `distill`: a pruned student distilled from the candidate, deterministic and resumable after kill -9."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from mlops.core.errors import MlopsError
from mlops.core.io import file_digest, write_table
from mlops.core.settings import parse_settings
from mlops.stages import distill, split
from mlops.stages.generate import generate_corpus
from tests.conftest import TINY_LABELS
from tests.helpers import BIN, ROOT, kill_9_at, project_env, tiny_params

DISTILL = {"enabled": True, "layers": "every_other", "temperature": 2.0, "alpha": 0.5, "epochs": 2, "lr": 3.0e-3}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir, tiny_classifier_dir):
    """A project folder with params (distillation on), a split of the tiny classifier's 3 labels and the tiny
    classifier as the teacher (its 2 layers: the student keeps 1)."""
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    params["train"].update({"eval_steps": 10, "early_stopping_patience": None})
    params["distill"] = dict(DISTILL)
    root = tmp_path_factory.mktemp("distill")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    settings = parse_settings(params)
    frame = generate_corpus(300, TINY_LABELS, seed=11).assign(subset="main")
    for name, part in split.split(frame, settings).items():
        write_table(part, root / "data" / "split" / f"{name}.parquet")
    return settings, root, tiny_classifier_dir


def run_once(settings, root, teacher, name):
    return distill.run(settings, distill.DistillIO.build(model=teacher, split_dir=root / "data/split",
                                                         out=root / name / "student",
                                                         metrics=root / name / "distill.json"))


def command(name):
    return [str(BIN / "mlops"), "distill", "--model", "teacher", "--split-dir", "data/split", "--out",
            f"{name}/student", "--metrics", f"{name}/distill.json"]


@pytest.mark.slow  # distils a student
def test_a_student_with_half_the_layers_is_distilled_and_saved_like_a_candidate(setup):
    from mlops.ml.model import Classifier

    # given a 2-layer teacher and distill.layers every_other
    settings, root, teacher = setup
    # when distill runs
    summary = run_once(settings, root, teacher, "a")
    # then the student keeps layer 0 of 2, trained 2 epochs on every train row, saved without pickles
    student = root / "a" / "student"
    assert summary["kept_layers"] == [0] and summary["teacher_layers"] == 2 and summary["resumed_from"] is None
    assert summary["steps"] == 2 * -(-summary["train_rows"] // settings.train.batch_size)
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 1
    assert not list(student.glob("*.bin")) and not (root / "a" / ".student-checkpoints").exists()
    assert json.loads((root / "a" / "distill.json").read_text()) == summary
    classifier = Classifier.load(student, device="cpu")
    assert classifier.labels == TINY_LABELS and classifier.predict_proba(["where is my parcel"]).shape == (1, 3)


def test_off_it_writes_its_marker_alone(setup, tmp_path):
    settings, _, teacher = setup
    off = settings.model_copy(update={"distill": settings.distill.model_copy(update={"enabled": False})})
    summary = distill.run(off, distill.DistillIO.build(model=teacher, split_dir=tmp_path / "split-never-read",
                                                       out=tmp_path / "student", metrics=tmp_path / "m.json"))
    assert summary["enabled"] is False
    assert [p.name for p in (tmp_path / "student").iterdir()] == ["distill.json"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("layers", "last_k", r"distill\.layers: Input should be 'every_other' or 'first_k'"),
    ("temperature", 0, r"distill\.temperature: Input should be greater than 0"),
    ("alpha", 1.5, r"distill\.alpha: Input should be less than or equal to 1"),
    ("keep_layers", 0, r"distill\.keep_layers: Input should be greater than or equal to 1"),
    ("epochs", "many", r"distill\.epochs: Input should be a valid number"),
    ("students", 2, r"distill\.students: unknown key"),
])
def test_a_bad_distill_param_fails_naming_the_key(repo_params, key, value, message):
    repo_params["distill"] = {**DISTILL, key: value}
    with pytest.raises(MlopsError, match=message):
        parse_settings(repo_params)


def test_keeping_as_many_layers_as_the_teacher_fails_naming_the_param(setup, tmp_path):
    settings, root, teacher = setup
    first_2 = settings.model_copy(update={"distill": settings.distill.model_copy(
        update={"layers": "first_k", "keep_layers": 2})})
    with pytest.raises(MlopsError, match=r"distill\.keep_layers: 2 keeps every layer of a 2-layer model"):
        distill.run(first_2, distill.DistillIO.build(model=teacher, split_dir=root / "data/split",
                                                     out=tmp_path / "student", metrics=tmp_path / "m.json"))
    with pytest.raises(MlopsError, match="distill: no safetensors model in"):
        distill.run(settings, distill.DistillIO.build(model=tmp_path, split_dir=root / "data/split",
                                                      out=tmp_path / "student", metrics=tmp_path / "m.json"))


@pytest.mark.slow
def test_kill_9_then_resume_ends_with_the_same_student_as_an_uninterrupted_run(setup):
    import shutil

    # given an uninterrupted run's student
    settings, root, teacher = setup
    reference = root / "a" / "distill.json"
    if not reference.exists():
        run_once(settings, root, teacher, "a")
    if not (root / "teacher").exists():
        shutil.copytree(teacher, root / "teacher")
    env = project_env(root)
    # when the same distillation, run by the CLI, is killed with SIGKILL after its first checkpoint
    kill_9_at(command("k"), root, env, root / "k" / ".student-checkpoints" / "checkpoint-10" / "trainer_state.json")
    assert not (root / "k/student/model.safetensors").exists()
    # and started again
    result = subprocess.run(command("k"), cwd=root, env=env, capture_output=True, text=True, timeout=600)
    # then it resumed from a checkpoint and ended with the same student, byte for byte
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distill: resuming from" in result.stdout
    resumed, uninterrupted = (json.loads((root / name / "distill.json").read_text()) for name in ("k", "a"))
    assert resumed["resumed_from"] in ("checkpoint-10", "checkpoint-20")
    for key in ("validation_accuracy", "validation_macro_f1", "steps", "best_step", "kept_layers"):
        assert resumed[key] == uninterrupted[key], key
    assert file_digest(root / "k/student/model.safetensors", "sha256") == \
        file_digest(root / "a/student/model.safetensors", "sha256")
