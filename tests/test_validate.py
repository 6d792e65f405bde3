import json

import pandas as pd
import pytest

from mlops import validate
from mlops.corpus import generate_corpus


@pytest.fixture
def clean(tiny_settings) -> pd.DataFrame:
    frame = generate_corpus(300, tiny_settings.data.generated.classes, seed=3)
    frame["subset"] = "main"
    return frame


def failed(frame, settings) -> set[str]:
    return {o.name for o in validate.validate_frame(frame, settings) if not o.success and o.severity == "critical"}


def test_clean_data_passes(clean, tiny_settings):
    assert failed(clean, tiny_settings) == set()


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (lambda f: f.assign(text=f["text"].where(f.index % 50 != 0, "   ")), "text_not_blank"),
        (lambda f: f.assign(text=f["text"].where(f.index % 50 != 0, None)), "text_not_null"),
        (lambda f: f.assign(label=f["label"].where(f.index % 40 != 0, "refunds")), "label_set"),
        (lambda f: f.head(20), "row_count"),
        (lambda f: pd.concat([f, f.head(60)], ignore_index=True), "text_unique"),
        (lambda f: f.assign(text=f["text"].where(f.index % 70 != 0, "x" * 6000)), "text_length"),
        (lambda f: f.drop(columns="subset"), "columns"),
        (lambda f: f.assign(label="billing"), "two_classes"),
        (lambda f: pd.concat([f[f["label"] != "account"], f[f["label"] == "account"].head(2)]), "class_share"),
    ],
)
def test_corruption_is_caught(clean, tiny_settings, corrupt, expected):
    assert expected in failed(corrupt(clean), tiny_settings)


def test_failure_blocks_output_and_reports(tmp_path, clean, tiny_settings, capsys):
    data = tmp_path / "in.parquet"
    clean.assign(label=clean["label"].where(clean.index % 40 != 0, "refunds")).to_parquet(data)
    out = tmp_path / "validated.parquet"
    with pytest.raises(validate.ValidationFailed, match="label_set"):
        validate.run(tiny_settings, data, out, tmp_path / "report")
    assert not out.exists()
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["success"] is False and summary["failed"] == ["label_set"]
    assert "REJECTED" in (tmp_path / "report" / "report.html").read_text()
    printed = capsys.readouterr().out
    assert "CRITICAL label_set" in printed and "refunds" in printed


def test_pass_writes_output(tmp_path, clean, tiny_settings):
    data = tmp_path / "in.parquet"
    clean.to_parquet(data)
    summary = validate.run(tiny_settings, data, tmp_path / "out.parquet", tmp_path / "report")
    assert summary["success"] and pd.read_parquet(tmp_path / "out.parquet").equals(clean)
    html = (tmp_path / "report" / "report.html").read_text()
    assert "ACCEPTED" in html and "http" not in html  # renders offline: nothing to fetch


def test_validate_any_csv_on_demand(tmp_path, clean, tiny_settings):
    path = tmp_path / "any.csv"
    clean[["text", "label"]].to_csv(path, index=False)
    assert validate.run(tiny_settings, path, None, tmp_path / "report")["success"]
