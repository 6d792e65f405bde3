import json

from mlops import registry


def test_empty_registry(bentoml_home):
    assert registry.champion() is None
    assert registry.read_registry() == {"champion": None, "history": []}


def test_promote_keeps_history_and_writes_atomically(bentoml_home):
    first = registry.promote({"model": "m:1", "bento": "b:1", "digest": "a"})
    second = registry.promote({"model": "m:2", "bento": "b:2", "digest": "b"})
    assert registry.champion() == second
    assert registry.read_registry()["history"] == [first]
    assert "promoted_at" in second
    leftovers = [p.name for p in bentoml_home.iterdir() if p.name != "registry.json"]
    assert leftovers == []  # no temp files remain
    json.loads(registry.registry_path().read_text())


def test_model_digest_changes_with_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"one")
    first = registry.model_digest(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"two")
    assert registry.model_digest(tmp_path) != first
