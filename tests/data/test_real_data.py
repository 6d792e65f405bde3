"""Data tests on real text: AG News from ../shared/data through ingest, validate and split."""

import pytest
import yaml

from mlops.core.params import merge
from mlops.core.settings import parse_settings
from mlops.stages import ingest, split, validate
from tests.helpers import ROOT, SHARED_DATA

if not (SHARED_DATA / "ag_news" / "test.csv").is_file():
    pytest.skip(f"real data not found at {SHARED_DATA}: these tests need ../shared/data", allow_module_level=True)


@pytest.fixture(scope="module")
def settings():
    preset = yaml.safe_load((ROOT / "configs" / "ag_news.yaml").read_text())
    for source in ("source", "test_source"):  # the preset's paths are relative to the project root
        preset["data"][source]["path"] = str(ROOT / preset["data"][source]["path"])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    merge(params, preset)
    return parse_settings(params)


def test_ag_news_ingest_validate_split(settings, tmp_path):
    frame = ingest.ingest(settings)
    assert frame["subset"].value_counts().to_dict() == {"test": 7600, "main": 5000}
    assert set(frame["label"]) == {"World", "Sports", "Business", "Sci/Tech"}
    assert frame[frame["subset"] == "test"]["label"].value_counts().eq(1900).all()
    sample = frame[frame["text"].str.startswith("Fears for T N pension after talks")]
    assert sample["label"].tolist() == ["Business"]  # first row of test.csv: class 3, title + description joined
    frame.to_parquet(tmp_path / "ingested.parquet")
    summary = validate.run(settings, validate.ValidateIO(data=tmp_path / "ingested.parquet",
                                                         out=tmp_path / "validated.parquet", report_dir=tmp_path / "r"))
    assert summary["success"], summary["failed"]
    parts = split.split(frame, settings)
    assert len(parts["test"]) == 7600 and len(parts["train"]) + len(parts["validation"]) == 5000
    assert len(parts["validation"]) == 500


def test_ag_news_with_corrupted_labels_is_rejected(settings, tmp_path):
    frame = ingest.ingest(settings)
    frame.loc[frame.index % 15 == 0, "label"] = "Weather"  # 6.7%: above the quarantine share
    labelled = settings.model_copy(update={"validate_": settings.validate_.model_copy(
        update={"labels": ("World", "Sports", "Business", "Sci/Tech")})})
    verdict = validate.validate_frame(frame, labelled)
    outcomes = {o.name: o for o in verdict.outcomes}
    assert not verdict.success and not outcomes["quarantine_share"].success
    assert not outcomes["label_known"].success and "Weather" in str(outcomes["label_known"].observed)
