from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlops.errors import MlopsError
from mlops.settings import Settings, load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[1]


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
