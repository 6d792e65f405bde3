"""What makes `package` build a new Bento around a champion it already has."""

import shutil
from pathlib import Path

import pytest

from mlops.core.records import GateDecision
from mlops.core.settings import parse_settings
from mlops.ml.bento_build import build_digest

ROOT = Path(__file__).resolve().parents[2]


def bento_sources(tmp_path: Path) -> Path:
    """bentofile.yaml and the files it includes, in a folder of their own."""
    shutil.copy2(ROOT / "bentofile.yaml", tmp_path / "bentofile.yaml")
    shutil.copytree(ROOT / "mlops", tmp_path / "mlops", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy2(ROOT / "requirements.lock", tmp_path / "requirements.lock")
    return tmp_path / "bentofile.yaml"


def test_build_digest_follows_serving_code_and_settings_only(tmp_path, repo_params):
    bentofile = bento_sources(tmp_path)
    base = build_digest(bentofile, parse_settings(repo_params))
    assert build_digest(bentofile, parse_settings(repo_params)) == base  # stable

    repo_params["gate"]["min_accuracy"] = 0.5  # not serving: the same Bento would be built
    assert build_digest(bentofile, parse_settings(repo_params)) == base

    repo_params["serve"]["micro_batch"] += 1
    changed_serve = build_digest(bentofile, parse_settings(repo_params))
    assert changed_serve != base

    service = tmp_path / "mlops" / "serving" / "service.py"
    service.write_text(service.read_text() + "\n# a change\n")
    assert build_digest(bentofile, parse_settings(repo_params)) not in (base, changed_serve)

    (tmp_path / "mlops" / "train.py").write_text("# not in the Bento\n")
    unchanged = build_digest(bentofile, parse_settings(repo_params))
    (tmp_path / "mlops" / "train.py").write_text("# still not in the Bento\n")
    assert build_digest(bentofile, parse_settings(repo_params)) == unchanged


def test_build_digest_follows_the_lock(tmp_path, repo_params):
    """A new pin in requirements.lock builds a new Bento around the same model."""
    bentofile = bento_sources(tmp_path)
    base = build_digest(bentofile, parse_settings(repo_params))
    lock = tmp_path / "requirements.lock"
    lock.write_text(lock.read_text().replace(f"safetensors=={locked('safetensors')}", "safetensors==0.0.1"))
    assert build_digest(bentofile, parse_settings(repo_params)) != base


# the Bento's Python packages: exact pins from requirements.lock

def locked(name: str) -> str:
    """The lock's version of `name` (the lock spells some names with underscores)."""
    from packaging.utils import canonicalize_name

    pins = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line)
    return next(version for locked_name, version in pins.items() if canonicalize_name(locked_name) == name)


def test_the_bentos_packages_and_what_they_need_are_pinned_from_the_lock():
    from mlops.ml.bento_build import pinned_bentofile

    packages = pinned_bentofile(ROOT / "bentofile.yaml")["python"]["packages"]
    for name in ("torch", "transformers", "bentoml", "tokenizers", "huggingface-hub", "numpy", "starlette"):
        assert f"{name}=={locked(name)}" in packages  # named, bentoml itself, and their dependencies
    assert all("==" in package for package in packages)
    assert not any(package.startswith(("apache-airflow", "dvc", "great-expectations")) for package in packages)


def test_a_specifier_the_lock_does_not_satisfy_is_named(tmp_path):
    import pytest

    from mlops.core.errors import MlopsError
    from mlops.ml.bento_build import pinned_packages

    shutil.copy2(ROOT / "requirements.lock", tmp_path / "requirements.lock")
    with pytest.raises(MlopsError, match="asks for transformers<5 but requirements.lock pins transformers==5"):
        pinned_packages(["transformers<5"], tmp_path / "requirements.lock")
    (tmp_path / "requirements.lock").write_text("torch==2.13.0\n")
    with pytest.raises(MlopsError, match="requirements.lock has no pin for .*regenerate the lock"):
        pinned_packages(["torch"], tmp_path / "requirements.lock")


@pytest.mark.slow  # builds a Bento
def test_the_built_bento_requires_the_locks_exact_versions(tiny_classifier_dir, tmp_path):
    """`bentoml build` (offline, as `package` runs it) writes the lock's versions into the Bento.

    In a process of its own: BentoML fixes its model store's home at its first use in a process, so a home set
    here afterwards would reach the `bentoml build` subprocess but not the registration.
    """
    import os
    import subprocess
    import sys

    (tmp_path / "src").mkdir()
    sources = bento_sources(tmp_path / "src")
    script = (
        "import bentoml, sys; from pathlib import Path\n"
        "from mlops.core import registry\n"
        "from mlops.stages.package import build_bento\n"
        f"tag = registry.register_model('text-classifier', Path({str(tiny_classifier_dir)!r}), {{'note': 'pins'}})\n"
        f"bento = build_bento(tag, Path({str(sources)!r}))\n"
        "print(Path(bentoml.bentos.get(bento).path) / 'env' / 'python' / 'requirements.txt')\n")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = Path(result.stdout.strip().splitlines()[-1]).read_text().splitlines()
    for name in ("torch", "transformers", "bentoml"):
        assert f"{name}=={locked(name)}" in lines
    assert not [line for line in lines if line.strip() and not line.startswith("#") and "==" not in line]


# the serving variant the gate chose travels inside the stored model

def test_the_chosen_onnx_variant_is_stored_with_the_model_and_served_from_it(tiny_classifier_dir, tmp_path,
                                                                             repo_params, bentoml_home):
    import json

    from mlops.core import registry
    from mlops.ml.variants import load_served, served_variant
    from mlops.stages import optimize
    from mlops.stages.package import stage_variant

    repo_params["optimize"] = {"variants": ["onnx_int8"]}
    optimize.run(parse_settings(repo_params), optimize.OptimizeIO.build(model=tiny_classifier_dir,
                                                                        out_dir=tmp_path / "optimized"))
    staged = tmp_path / "staged"
    shutil.copytree(tiny_classifier_dir, staged)
    stage_variant("onnx_int8", tmp_path / "optimized", staged)
    assert json.loads((staged / "serving.json").read_text()) == {"variant": "onnx_int8"}
    tag = registry.register_model("tiny", staged, {"serve_variant": "onnx_int8"})
    stored = registry.model_path(tag)
    assert (stored / "onnx_int8" / "model.onnx").is_file()  # sub-directories are stored too
    assert served_variant(stored, "auto") == "onnx_int8" and served_variant(stored, "fp32") == "fp32"
    served = load_served(stored, "auto")
    assert served.precision == "onnx_int8" and served.predict_proba(["where is my parcel"]).shape == (1, 3)
    assert load_served(stored, "torch_int8").precision == "int8"


def test_a_torch_variant_stores_only_its_name_and_a_missing_onnx_one_is_named(tiny_classifier_dir, tmp_path):
    import json

    import pytest

    from mlops.core.errors import MlopsError
    from mlops.ml.variants import served_variant
    from mlops.stages.package import stage_variant

    stage_variant("fp32", None, tmp_path)
    assert json.loads((tmp_path / "serving.json").read_text()) == {"variant": "fp32"}
    assert served_variant(tiny_classifier_dir, "auto") == "fp32"  # stored before variants: fp32
    with pytest.raises(MlopsError, match="the gate chose onnx_fp32 but .*nowhere/onnx_fp32 has no model.onnx"):
        stage_variant("onnx_fp32", tmp_path / "nowhere", tmp_path)


@pytest.mark.slow  # builds a Bento
def test_a_student_variant_is_stored_with_the_model_and_served_from_it(tiny_classifier_dir, tiny_student_dir,
                                                                       tmp_path, repo_params, bentoml_home):
    from mlops.core import registry
    from mlops.ml.variants import load_served
    from mlops.stages import optimize
    from mlops.stages.package import stage_variant

    repo_params["optimize"] = {"variants": ["onnx_int8"]}
    optimize.run(parse_settings(repo_params), optimize.OptimizeIO.build(
        model=tiny_classifier_dir, out_dir=tmp_path / "optimized", student=tiny_student_dir))
    staged = tmp_path / "staged"
    shutil.copytree(tiny_classifier_dir, staged)
    stage_variant("student_torch_int8", tmp_path / "optimized", staged)  # torch int8 of the student's weights
    stored = registry.model_path(registry.register_model("tiny", staged, {"serve_variant": "student_torch_int8"}))
    assert (stored / "student_fp32" / "model.safetensors").is_file() and not (stored / "onnx_int8").exists()
    served = load_served(stored, "auto")
    assert served.precision == "int8" and served.predict_proba(["where is my parcel"]).shape == (1, 3)
    assert served.model.config.num_hidden_layers == 1  # the student, not the candidate
    assert load_served(stored, "fp32").model.config.num_hidden_layers == 2
    # and a student's ONNX variant is its own self-contained directory: the student's weights stay behind
    onnx = tmp_path / "onnx"
    shutil.copytree(tiny_classifier_dir, onnx)
    stage_variant("student_onnx_int8", tmp_path / "optimized", onnx)
    assert (onnx / "student_onnx_int8" / "model.onnx").is_file() and not (onnx / "student_fp32").exists()
    assert load_served(onnx, "auto").precision == "student_onnx_int8"  # what serving.json names, from inside


def refusing_student_metrics(labels):
    """Evaluate's metrics for a candidate that passes every absolute check, whose fastest variant, a student,
    loses 5 accuracy points against fp32."""
    return {"accuracy": 0.9, "macro_f1": 0.9, "ece": 0.01, "labels": labels, "size_mb": 1.0, "latency": {"p95_ms": 1.0},
            "behaviour": {"pass_rate": 1.0}, "per_class": {label: {"recall": 0.9} for label in labels},
            "variants": {"fp32": {"accuracy": 0.9, "accuracy_drop_points": 0.0, "texts_per_s": 100.0, "size_mb": 1.0},
                         "torch_int8": {"accuracy": 0.9, "accuracy_drop_points": 0.0, "texts_per_s": 150.0,
                                        "size_mb": 0.5},
                         "student_onnx_int8": {"accuracy": 0.85, "accuracy_drop_points": 5.0, "texts_per_s": 900.0,
                                               "size_mb": 0.3}}}


def test_a_student_the_gate_refused_is_never_packaged_to_serve(tiny_classifier_dir, tmp_path, repo_params,
                                                               bentoml_home, monkeypatch):
    from mlops.core import registry
    from mlops.ml.model import read_label_map
    from mlops.stages import gate, package

    # given a student 5 points below fp32 (threshold 1) that is the fastest variant
    metrics = refusing_student_metrics(read_label_map(tiny_classifier_dir)["labels"])
    staged = []
    monkeypatch.setattr(registry, "register_model", lambda name, path, meta: staged.append(
        sorted(p.name for p in path.iterdir())) or "tiny:stored")
    monkeypatch.setattr(package, "build_bento", lambda tag, bentofile: "bento:built")
    card = tmp_path / "card.md"
    card.write_text("# card")
    (tmp_path / "b").mkdir()
    # when the gate decides (auto) and package runs
    settings = parse_settings(repo_params)
    decision = gate.decide(settings, metrics, tiny_classifier_dir, tmp_path / "unused.parquet")
    decision["lineage"] = {"git_commit": "x", "data": {}, "params": {}}
    result = package.package(settings, GateDecision.model_validate(decision), tiny_classifier_dir, metrics,
                             bento_sources(tmp_path / "b"), card,
                             optimized_dir=tmp_path / "optimized")
    # then the model is accepted, the refused student is not what is stored to serve, nor stored at all
    assert decision["accepted"] and decision["variants"]["variants"]["student_onnx_int8"]["accepted"] is False
    assert result.status == "candidate" and result.serve_variant == decision["serve_variant"] == "torch_int8"
    assert not any(name.startswith("student_") for name in staged[0])
    # and forcing it (serve.precision) rejects the model: package stores nothing
    repo_params["serve"]["precision"] = "student_onnx_int8"
    forced = gate.decide(parse_settings(repo_params), metrics, tiny_classifier_dir, tmp_path / "unused.parquet")
    assert not forced["accepted"] and any(r.startswith("serve_variant student_onnx_int8") for r in forced["reasons"])
    assert package.package(parse_settings(repo_params), GateDecision.model_validate(forced), tiny_classifier_dir,
                           metrics, tmp_path / "b" / "bentofile.yaml", card).status == "rejected"
    assert len(staged) == 1
