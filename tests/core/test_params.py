"""`mlops params apply` and dotted overrides: params.yaml changes only to a valid result, comments kept."""

import shutil

import pytest
import yaml
from ruamel.yaml import YAML

from mlops.core.errors import MlopsError
from mlops.core.params import apply, apply_overrides, merge
from tests.helpers import ROOT

HEADER_COMMENT = "# Every knob of the lifecycle."
INLINE_COMMENT = "# auto | csv | tsv | jsonl | parquet"


@pytest.fixture
def params(tmp_path):
    """A copy of the repository's params.yaml, comments and all."""
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    return path


def values(path):
    return yaml.safe_load(path.read_text())


def no_temporaries(path):
    return [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


# --- merge ---------------------------------------------------------------------------------------------------

def test_merge_keeps_the_siblings_of_a_changed_key():
    target = {"train": {"epochs": 3, "lr": 0.1}, "seed": 1}
    merge(target, {"train": {"epochs": 1}})
    assert target == {"train": {"epochs": 1, "lr": 0.1}, "seed": 1}


def test_merge_adds_new_keys_and_replaces_a_scalar_by_a_mapping():
    target = {"a": 1, "b": {"c": 2}}
    merge(target, {"a": {"x": 1}, "b": {"d": 3}})
    assert target == {"a": {"x": 1}, "b": {"c": 2, "d": 3}}


def test_merge_replaces_a_mapping_by_a_scalar_and_lists_whole():
    target = {"a": {"x": 1}, "l": [1, 2, 3]}
    merge(target, {"a": None, "l": [9]})
    assert target == {"a": None, "l": [9]}


# --- apply_overrides -----------------------------------------------------------------------------------------

def test_override_changes_the_value_and_keeps_the_comments(params):
    before = params.read_text()
    text = apply_overrides({"train.epochs": 7, "data.split.test": 0.2}, params)
    assert text == params.read_text()
    assert values(params)["train"]["epochs"] == 7 and values(params)["data"]["split"]["test"] == 0.2
    assert HEADER_COMMENT in text and INLINE_COMMENT in text
    assert values(params)["train"]["lr"] == yaml.safe_load(before)["train"]["lr"]


def test_override_with_the_current_value_changes_no_byte(params):
    """Round-trip: key order, comments and layout survive; only the changed value differs."""
    before = params.read_text()
    apply_overrides({"seed": yaml.safe_load(before)["seed"]}, params)
    assert params.read_text() == before


def test_override_with_a_bad_value_names_the_key_and_writes_nothing(params):
    before = params.read_text()
    with pytest.raises(MlopsError, match=r"train\.epochs: Input should be a valid number"):
        apply_overrides({"train.epochs": "many"}, params)
    assert params.read_text() == before
    assert no_temporaries(params)


def test_override_of_an_unknown_key_names_it_and_where_it_came_from(params):
    before = params.read_text()
    with pytest.raises(MlopsError, match=r"params\.yaml \+ exp-run: train\.epocs: unknown key"):
        apply_overrides({"train.epocs": 1}, params, origin="exp-run")
    assert params.read_text() == before


def test_conflicting_overrides_are_refused(params):
    before = params.read_text()
    with pytest.raises(MlopsError, match="conflicts with another override"):
        apply_overrides({"train.epochs": 1, "train.epochs.max": 2}, params)
    with pytest.raises(MlopsError, match="not a dotted params key"):
        apply_overrides({"train.": 1}, params)
    assert params.read_text() == before


# --- apply (presets) -----------------------------------------------------------------------------------------

def test_preset_is_merged_and_its_sections_returned(params, tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("train:\n  epochs: 2\nmodel:\n  max_length: 64\n")
    assert apply(preset, params) == ["model", "train"]
    merged = values(params)
    assert merged["train"]["epochs"] == 2 and merged["model"]["max_length"] == 64
    assert merged["train"]["lr"] == yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["lr"]
    assert HEADER_COMMENT in params.read_text()


def test_the_repository_ag_news_preset_applies(params):
    apply(ROOT / "configs" / "ag_news.yaml", params)
    merged = values(params)
    assert merged["data"]["source"]["label_names"] == {"0": "World", "1": "Sports", "2": "Business",
                                                       "3": "Sci/Tech"}
    assert merged["data"]["test_source"]["text"] == ["title", "description"]
    assert merged["evaluate"]["behaviour_suite"] == "configs/behaviour_ag_news.yaml"


def test_bad_preset_names_the_key_and_changes_nothing(params, tmp_path):
    before = params.read_text()
    preset = tmp_path / "bad.yaml"
    preset.write_text("train:\n  batch_size: -4\n")
    with pytest.raises(MlopsError) as error:
        apply(preset, params)
    assert "train.batch_size" in str(error.value) and str(preset) in str(error.value)
    assert params.read_text() == before
    assert no_temporaries(params)


def test_missing_preset_is_named(params, tmp_path):
    with pytest.raises(MlopsError, match=r"preset not found: .*nowhere\.yaml"):
        apply(tmp_path / "nowhere.yaml", params)


@pytest.mark.parametrize("content", ["- a\n- b\n", "", "just text\n"])
def test_preset_that_is_not_a_mapping_is_refused(params, tmp_path, content):
    preset = tmp_path / "list.yaml"
    preset.write_text(content)
    with pytest.raises(MlopsError, match="expected a mapping of settings"):
        apply(preset, params)


def test_null_stays_null_and_a_value_can_be_set_back_to_null(params):
    apply_overrides({"data.test_source": None, "train.max_train_samples": 100}, params)
    text = params.read_text()
    assert "  test_source: null\n" in text
    assert "max_train_samples: 100" in text and "# cap on training rows (null: all)" in text
    apply_overrides({"train.max_train_samples": None}, params)
    assert values(params)["train"]["max_train_samples"] is None
    assert "max_train_samples: null" in params.read_text()


def test_round_trip_loader_sees_the_same_values_as_the_safe_loader(params):
    """The written text is plain YAML: what ruamel kept is what PyYAML (used by the settings loader) reads."""
    apply_overrides({"train.epochs": 5}, params)
    assert YAML(typ="safe").load(params.read_text()) == values(params)
