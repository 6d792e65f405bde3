from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings, load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[2]


def test_repository_params_load():
    settings = load_settings(ROOT / "params.yaml")
    assert isinstance(settings, Settings)
    assert settings.model.base == "all-MiniLM-L6-v2"
    assert settings.validate_.min_rows <= settings.validate_.max_rows


def test_settings_are_frozen(repo_params):
    settings = parse_settings(repo_params)
    with pytest.raises(ValidationError, match="frozen"):
        settings.train.lr = 1.0  # type: ignore[misc]


def test_misspelt_key_is_named(repo_params):
    repo_params["train"]["lrr"] = repo_params["train"].pop("lr")
    with pytest.raises(MlopsError) as error:
        parse_settings(repo_params, origin="params.yaml")
    assert "train.lrr: unknown key" in str(error.value)
    assert "train.lr:" in str(error.value)  # and the key it should have been is missing


def test_wrong_type_is_named(repo_params):
    repo_params["train"]["batch_size"] = "thirty-two"
    with pytest.raises(MlopsError, match=r"train\.batch_size: Input should be a valid integer"):
        parse_settings(repo_params)


def test_out_of_range_value_is_named(repo_params):
    repo_params["data"]["split"]["test"] = 0.9
    with pytest.raises(MlopsError, match=r"data\.split\.test"):
        parse_settings(repo_params)


def test_inconsistent_bounds_fail(repo_params):
    repo_params["validate"]["min_rows"] = 10**9
    with pytest.raises(MlopsError, match="min_rows must not exceed max_rows"):
        parse_settings(repo_params)


def test_headerless_source_needs_columns(repo_params):
    repo_params["data"]["source"]["header"] = False
    with pytest.raises(MlopsError, match="headerless file needs `columns`"):
        parse_settings(repo_params)


def test_missing_params_file(tmp_path):
    with pytest.raises(MlopsError, match="params file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: [1, 2\n")
    with pytest.raises(MlopsError, match="not valid YAML"):
        load_settings(path)


def test_non_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(MlopsError, match="expected a mapping"):
        load_settings(path)


@pytest.mark.parametrize(("section", "key", "value", "named"), [
    ("serve", "workers", 0, "serve.workers"),
    ("serve", "workers", "auto", "serve.workers"),
    ("serve", "model_calls", 0, "serve.model_calls"),
    ("serve", "model_calls", "many", "serve.model_calls"),
    ("serve", "precision", "fp16", "serve.precision"),
    ("serve", "precision", "int8", "serve.precision"),
    ("serve", "access_log", "sometimes", "serve.access_log"),
    ("serve", "tracing", [], "serve.tracing"),
    ("optimize", "variants", ["fp32"], "optimize.variants.0"),
    ("serve", "max_batch_size", 1, "serve.max_batch_size"),
    ("serve", "max_batch_tokens", 0, "serve.max_batch_tokens"),
    ("serve", "max_batch_tokens", 63, "must be at least model.max_length"),
    ("monitor", "embedding_threshold", 0.4, "monitor.embedding_threshold"),
    ("monitor", "min_rows", 10_000, "min_rows must not exceed window_rows"),
    ("monitor", "workspace", "", "monitor.workspace"),
])
def test_serving_and_monitoring_values_are_checked(repo_params, section, key, value, named):
    repo_params[section][key] = value
    with pytest.raises(MlopsError, match=named.replace(".", r"\.")):
        parse_settings(repo_params)


def test_auto_model_calls_give_each_call_its_cores(repo_params, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    repo_params["serve"].update({"workers": 1, "threads": 2, "model_calls": "auto"})
    assert parse_settings(repo_params).serve.model_call_count() == 4
    repo_params["serve"]["workers"] = 2  # each process can keep every core busy
    assert parse_settings(repo_params).serve.model_call_count() == 4
    repo_params["serve"]["model_calls"] = 3
    assert parse_settings(repo_params).serve.model_call_count() == 3
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    repo_params["serve"].update({"workers": 1, "model_calls": "auto"})
    assert parse_settings(repo_params).serve.model_call_count() == 1


def test_token_budget_is_optional_and_the_traffic_queue_bounded(repo_params):
    repo_params["serve"]["max_batch_tokens"] = None  # rows only, as before
    assert parse_settings(repo_params).serve.max_batch_tokens is None
    repo_params["serve"]["traffic"]["queue_size"] = 0
    with pytest.raises(MlopsError, match=r"serve\.traffic\.queue_size"):
        parse_settings(repo_params)


def test_unknown_traffic_key_is_named(repo_params):
    repo_params["serve"]["traffic"]["hash_text"] = True
    with pytest.raises(MlopsError, match=r"serve\.traffic\.hash_text: unknown key"):
        parse_settings(repo_params)


def test_a_text_repair_that_does_not_compile_is_named(repo_params):
    repo_params["model"]["text_repairs"] = [{"pattern": "#39;", "replacement": "'"},
                                            {"pattern": "(unclosed", "replacement": ""}]
    with pytest.raises(MlopsError, match=r"model\.text_repairs\.1\.pattern: .*not a valid regular expression"):
        parse_settings(repo_params)


def test_text_repairs_keep_their_order(repo_params):
    repo_params["model"]["text_repairs"] = [{"pattern": "&lt;", "replacement": "<"},
                                            {"pattern": "a", "replacement": "b"}]
    assert parse_settings(repo_params).model.repairs() == [("&lt;", "<"), ("a", "b")]


@pytest.mark.parametrize("pattern", ["a*", "(?:#39;)?", "x|"])
def test_a_text_repair_that_matches_the_empty_string_is_refused(repo_params, pattern):
    repo_params["model"]["text_repairs"] = [{"pattern": pattern, "replacement": " "}]
    with pytest.raises(MlopsError, match=r"model\.text_repairs\.0\.pattern: .*matches the empty string"):
        parse_settings(repo_params)
