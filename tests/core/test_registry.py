import json

import pytest

from mlops.core import registry
from mlops.core.errors import MlopsError


@pytest.fixture
def bentos(monkeypatch, bentoml_home):
    """Pretend the named Bentos exist in the store."""
    present = {"b:1", "b:2", "b:3"}
    monkeypatch.setattr(registry, "bento_exists", lambda tag: tag in present)
    return present


def test_empty_registry(bentoml_home):
    assert registry.champion() is None
    assert registry.read_registry() == {"champion": None, "challenger": None, "history": []}


def test_promote_keeps_history_writes_atomically_and_logs(bentos, bentoml_home):
    first = registry.promote({"model": "m:1", "bento": "b:1", "digest": "a"})
    second = registry.promote({"model": "m:2", "bento": "b:2", "digest": "b"})
    assert registry.champion() == second
    assert registry.read_registry()["history"] == [first]
    assert sorted(p.name for p in bentoml_home.iterdir()) == ["registry-events.jsonl", "registry.json"]
    events = [json.loads(line)["event"] for line in (bentoml_home / "registry-events.jsonl").read_text().splitlines()]
    assert events == ["promoted", "promoted"]


def test_promote_refuses_a_model_without_its_bento(bentos, bentoml_home):
    registry.promote({"model": "m:1", "bento": "b:1", "digest": "a"})
    with pytest.raises(MlopsError, match="Bento b:9 is not in the store"):
        registry.promote({"model": "m:9", "bento": "b:9", "digest": "z"})
    assert registry.champion()["model"] == "m:1"


def test_rollback_restores_the_previous_champion(bentos, bentoml_home):
    registry.promote({"model": "m:1", "bento": "b:1", "digest": "a"})
    registry.promote({"model": "m:2", "bento": "b:2", "digest": "b"})
    restored = registry.rollback()
    assert restored["model"] == "m:1" and registry.champion()["model"] == "m:1"
    assert registry.read_registry()["history"] == []
    with pytest.raises(MlopsError, match="nothing to roll back to"):
        registry.rollback()


def test_model_digest_changes_with_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"one")
    first = registry.model_digest(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"two")
    assert registry.model_digest(tmp_path) != first
