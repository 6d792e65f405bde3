"""`mlops predict`: a file scored with the API's fields, bad input refused in one line, nothing half-written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mlops.core.errors import MlopsError
from mlops.ml.model import Classifier
from mlops.serving import batch
from tests.helpers import ROOT, invoke_cli

LABELS = ["billing", "delivery", "technical"]


@pytest.fixture
def classifier_dir(tiny_classifier_dir):
    """An untrained 3-class classifier on the tiny BERT (conftest's): scoring plumbing needs no training."""
    return tiny_classifier_dir


@pytest.fixture
def texts():
    return [f"my parcel number {i} never arrived" if i % 3 else f"I was charged twice, invoice {i}" for i in
            range(37)]


def test_csv_to_parquet_has_the_api_fields_and_the_models_labels(tmp_path, classifier_dir, tiny_settings, texts):
    pd.DataFrame({"id": range(len(texts)), "text": texts, "label": "truth"}).to_csv(tmp_path / "in.csv", index=False)
    result = batch.run(tiny_settings, tmp_path / "in.csv", tmp_path / "out.parquet", str(classifier_dir),
                       chunk_size=8, progress=False)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert result["rows"] == len(out) == len(texts) and result["texts_per_second"] > 0
    assert list(out.columns) == ["id", "text", "input_label", "label", "score", "probabilities", "model_version"]
    # CSV fields are kept verbatim, as text (an id such as 007 stays 007)
    assert out["id"].tolist() == [str(i) for i in range(len(texts))] and set(out["input_label"]) == {"truth"}
    proba = Classifier.load(classifier_dir).predict_proba(texts)
    assert out["label"].tolist() == [LABELS[i] for i in proba.argmax(axis=1)]
    assert (out["score"] - proba.max(axis=1)).abs().max() < 1e-5
    first = out["probabilities"].iloc[0]
    assert set(first) == set(LABELS) and abs(sum(first.values()) - 1) < 1e-4
    assert set(out["model_version"]) == {str(classifier_dir)}


def test_headerless_csv_with_joined_text_columns_to_jsonl(tmp_path, classifier_dir, tiny_settings, texts):
    rows = pd.DataFrame({"label": "3", "title": texts, "description": [t.upper() for t in texts]})
    rows.to_csv(tmp_path / "in.csv", index=False, header=False)
    batch.run(tiny_settings, tmp_path / "in.csv", tmp_path / "out.jsonl", str(classifier_dir),
              ("title", "description"), ("label", "title", "description"), progress=False)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(out) == len(texts) and out[0]["input_label"] == "3"
    joined = [f"{t} {t.upper()}" for t in texts]
    proba = Classifier.load(classifier_dir).predict_proba(joined)
    assert [row["label"] for row in out] == [LABELS[i] for i in proba.argmax(axis=1)]


def test_champion_from_the_registry_and_a_given_tag(tmp_path, classifier_dir, tiny_settings, bentoml_home,
                                                    monkeypatch, texts):
    from mlops.core import registry

    tag = registry.register_model("text-classifier", classifier_dir, {"digest": "x"})
    pd.DataFrame({"text": texts[:5]}).to_parquet(tmp_path / "in.parquet")
    assert batch.run(tiny_settings, tmp_path / "in.parquet", tmp_path / "a.csv", tag,
                     progress=False)["model_version"] == tag
    scored = pd.read_csv(tmp_path / "a.csv")
    assert set(json.loads(scored["probabilities"][0])) == set(LABELS)
    with pytest.raises(MlopsError, match="no champion yet"):
        batch.run(tiny_settings, tmp_path / "in.parquet", tmp_path / "b.csv", progress=False)
    monkeypatch.setattr(registry, "champion", lambda: {"model": tag})
    assert batch.run(tiny_settings, tmp_path / "in.parquet", tmp_path / "b.csv", progress=False)["model_version"] == tag
    with pytest.raises(MlopsError, match="not in the BentoML store"):
        batch.run(tiny_settings, tmp_path / "in.parquet", tmp_path / "c.csv", "text-classifier:nope", progress=False)


def mlops(cwd, *args):
    """`mlops predict` in this process: its one-line errors and exit codes are what these tests read."""
    return invoke_cli(list(args), cwd=cwd, check=False)


@pytest.mark.parametrize("name, content, output, message", [
    ("in.csv", "id,body\n1,hello\n", "out.csv", "no text column 'text' among its 2 column(s)"),
    ("in.csv", "text\nhello\n\"\"\n", "out.csv", "1 row(s) with no text (first rows, from 0: 1)"),
    ("in.csv", "text\n", "out.csv", "no rows to score"),
    ("in.xlsx", "text\nhello\n", "out.csv", "unsupported format '.xlsx'"),
    ("in.csv", "text\nhello\n", "out.xlsx", "output out.xlsx: unsupported format '.xlsx'"),
    ("in.jsonl", "{\"text\": \"hi\"}\n{not json\n", "out.csv", "cannot read it as jsonl"),
    ("missing.csv", None, "out.csv", "data file not found: missing.csv"),
])
def test_bad_input_one_line_error_and_output_untouched(tmp_path, tiny_settings, classifier_dir, name, content,
                                                       output, message):
    import yaml

    from tests.helpers import tiny_params

    if content is not None:
        (tmp_path / name).write_text(content)
    (tmp_path / output).write_text("previous results\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(yaml.safe_load(
        (ROOT / "params.yaml").read_text()), classifier_dir)))
    result = mlops(tmp_path, "predict", "--input", name, "--output", output, "--model", str(classifier_dir))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert (tmp_path / output).read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{output}")] == []
