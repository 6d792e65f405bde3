"""The parameter reference: every field described, the committed page current, `mlops params explain`."""

import subprocess
import sys

import pytest
import yaml
from pydantic import Field

from mlops.core.errors import MlopsError
from mlops.core.params_reference import (
    REFERENCE_PAGE,
    REGENERATE,
    describe_type,
    explain,
    read_raw,
    render_reference,
    undescribed,
    walk,
)
from mlops.core.settings import ServeSettings, Settings, Strict
from tests.helpers import ROOT


def test_every_settings_field_has_a_description():
    # given the settings model as it is now (fields others add included: the walk finds them)
    # then none lacks a description, or the reference page would show an empty cell for it
    assert undescribed(Settings) == [], "add Field(description=...) to these keys in mlops/core/settings.py"


def test_a_field_added_without_a_description_is_found():
    # given a settings model with one more field, nested two levels down, without a description
    class Extra(Strict):
        described: int = Field(default=1, description="Has one.")
        bare: int = 2

    class Outer(Strict):
        extra: Extra = Field(default=Extra(), description="A section.")

    # when the reference walks it, then the bare field is named by its dotted key
    assert undescribed(Outer) == ["extra.bare"]


def test_the_committed_reference_page_is_current():
    # given the repository's settings and params.yaml, when the page is rendered, then it is what is committed
    rendered = render_reference(Settings, read_raw(ROOT / "params.yaml"))
    committed = (ROOT / REFERENCE_PAGE).read_text(encoding="utf-8")
    assert committed == rendered, f"{REFERENCE_PAGE} is stale: run `{REGENERATE}`"


def test_every_params_yaml_key_is_on_the_page():
    # given every dotted key params.yaml sets (top level and nested)
    def keys(mapping, prefix=""):
        for key, value in mapping.items():
            yield prefix + key
            if isinstance(value, dict):
                yield from keys(value, f"{prefix}{key}.")

    page = (ROOT / REFERENCE_PAGE).read_text(encoding="utf-8")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    # then each appears on the page as a code span, and every top-level one heads a section
    missing = [key for key in keys(raw) if f"`{key}`" not in page]
    assert missing == []
    assert [key for key in raw if f"## `{key}`" not in page] == []


def test_the_page_shows_type_default_constraints_and_the_shipped_value():
    # given the rendered page, then a row carries what a reader needs to set the key
    page = render_reference(Settings, {"serve": {"max_batch_tokens": 512}})
    row = next(line for line in page.splitlines() if line.startswith("| `serve.max_batch_tokens` |"))
    assert "integer or null" in row and "`null`" in row and "params.yaml: `512`" in row and ">= 1" in row
    assert "model.max_length" in row  # the description, with the cross-field rule the validator enforces


def test_types_read_as_words():
    assert describe_type(ServeSettings.model_fields["model_calls"].annotation) == "integer or `auto`"
    assert describe_type(Settings.model_fields["data"].annotation) == "section"


def test_a_model_met_twice_is_described_once():
    # data.test_source has data.source's fields: one row pointing at data.source, not a second copy
    keys = [doc.key for doc in walk(Settings)]
    assert "data.source.path" in keys and "data.test_source" in keys
    assert not any(key.startswith("data.test_source.") for key in keys)


def test_explain_names_type_default_constraints_and_description():
    text = explain("serve.max_body_kb", ROOT / "params.yaml")
    assert "type:        integer" in text and "constraints: >= 1" in text
    assert "params.yaml: 1024" in text and "413" in text


def test_explain_an_unknown_key_names_it_and_suggests_the_near_ones():
    with pytest.raises(MlopsError, match=r"unknown params key: serve\.max_bodykb; did you mean serve\.max_body_kb"):
        explain("serve.max_bodykb", ROOT / "params.yaml")


def mlops(*args):
    return subprocess.run([sys.executable, "-m", "mlops", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_params_explain_command_prints_the_entry():
    result = mlops("params", "explain", "gate.promote_if")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gate.promote_if\n") and "one of `better`, `non_inferior`" in result.stdout


def test_params_explain_command_refuses_an_unknown_key_naming_it():
    result = mlops("params", "explain", "train.epoch_count")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "unknown params key: train.epoch_count" in result.stderr
