"""Data tests: a catalogue of corruptions of the real AG News data, each with its verdict.

Every case states what the validation must decide (accept, accept with rows
quarantined, reject the batch) and which check must fire; every rejection
must name the problem in its message. Whatever the verdict, no row is lost:
accepted + quarantined = input.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from mlops.core.params import merge
from mlops.core.settings import parse_settings
from mlops.stages import ingest, validate
from tests.helpers import ROOT, SHARED_DATA

if not (SHARED_DATA / "ag_news" / "test.csv").is_file():
    pytest.skip(f"real data not found at {SHARED_DATA}: these tests need ../shared/data", allow_module_level=True)


@pytest.fixture(scope="module")
def settings():
    preset = yaml.safe_load((ROOT / "configs" / "ag_news.yaml").read_text())
    for source in ("source", "test_source"):
        preset["data"][source]["path"] = str(ROOT / preset["data"][source]["path"])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    merge(params, preset)
    return parse_settings(params)


@pytest.fixture(scope="module")
def clean(settings) -> pd.DataFrame:
    return ingest.ingest(settings)


def every(n: int):
    return lambda frame: frame.index % n == 0


def with_text(mask, value):
    def corrupt(frame):
        frame = frame.copy()
        selected = mask(frame)
        frame.loc[selected, "text"] = value(frame.loc[selected, "text"]) if callable(value) else value
        return frame
    return corrupt


def with_label(mask, value):
    def corrupt(frame):
        frame = frame.copy()
        frame.loc[mask(frame), "label"] = value
        return frame
    return corrupt


def conflicting_copies(share):
    def corrupt(frame):
        main = frame[frame["subset"] == "main"]
        copies = main.sample(frac=share, random_state=1)
        flipped = copies.assign(label=copies["label"].map({"World": "Sports", "Sports": "World",
                                                           "Business": "Sci/Tech", "Sci/Tech": "Business"}))
        return pd.concat([frame, flipped], ignore_index=True)
    return corrupt


def exact_copies(share):
    return lambda frame: pd.concat([frame, frame.sample(frac=share, random_state=2)], ignore_index=True)


def leaked_test_rows(share):
    def corrupt(frame):
        leaked = frame[frame["subset"] == "test"].sample(frac=share, random_state=3).assign(subset="main")
        return pd.concat([frame, leaked], ignore_index=True)
    return corrupt


def shrink_class(label, keep):
    def corrupt(frame):
        drop = frame[frame["label"] == label].index[keep:]
        return frame.drop(index=drop).reset_index(drop=True)
    return corrupt


# (id, corruption, verdict, check that must fire)
CATALOGUE = [
    ("clean", lambda f: f, "accepted", None),
    ("no label column", lambda f: f.drop(columns="label"), "rejected", "columns"),
    ("texts are numbers", lambda f: f.assign(text=range(len(f))), "rejected", "columns"),
    ("too few rows", lambda f: f.head(40), "rejected", "row_count"),
    ("a few blank texts", with_text(every(150), "   "), "quarantined", "text_not_blank"),
    ("many blank texts", with_text(every(5), " \t "), "rejected", "text_not_blank"),
    ("many null texts", with_text(every(8), None), "rejected", "text_not_null"),
    ("null labels", with_label(every(9), None), "rejected", "label_not_null"),
    ("unknown label", with_label(every(10), "Weather"), "rejected", "label_known"),
    ("a few over-long texts", with_text(every(200), lambda s: s + " filler" * 1000), "quarantined", "text_length"),
    ("too-short texts", with_text(every(6), "ok"), "rejected", "text_length"),
    ("U+FFFD characters", with_text(every(120), lambda s: s.str.replace("e", "\ufffd", n=1)),
     "quarantined", "replacement_char"),
    ("control characters", with_text(every(7), lambda s: s + "\x00\x1b[0m"), "rejected", "control_chars"),
    ("C1 cp1252 damage", with_text(every(150), lambda s: s.str.replace("'", "\x92", regex=False) + " it\x92s"),
     "quarantined", "control_chars"),
    ("mojibake", with_text(every(6), lambda s: s + " cafÃ© â€™quotedâ€™"), "rejected", "mojibake"),
    ("conflicting duplicates", conflicting_copies(0.01), "quarantined", "label_conflict"),
    ("exact duplicates", exact_copies(0.1), "rejected", "duplicate_share"),
    ("a few exact duplicates", exact_copies(0.005), "quarantined", "duplicate"),
    ("test rows leaked into training", leaked_test_rows(0.005), "quarantined", "test_leakage"),
    ("a class almost gone", shrink_class("Sports", 30), "rejected", "class_share"),
]


@pytest.mark.parametrize("case, corrupt, verdict, check", CATALOGUE, ids=[case[0] for case in CATALOGUE])
def test_catalogue(case, corrupt, verdict, check, clean, settings, tmp_path, capsys):
    frame = corrupt(clean)
    path = tmp_path / "batch.parquet"
    frame.to_parquet(path)
    outputs = {"out": tmp_path / "accepted.parquet", "quarantine": tmp_path / "quarantine.parquet"}
    if verdict == "rejected":
        with pytest.raises(validate.ValidationFailed) as error:
            validate.run(settings, validate.ValidateIO(data=path, out=outputs["out"], report_dir=tmp_path / "report",
                                                       quarantine=outputs["quarantine"]))
        printed = capsys.readouterr().out
        assert f" {check}:" in printed, printed  # one console line per failed check, naming it
        summary = pd.read_json(tmp_path / "report" / "summary.json", typ="series")
        assert check in summary["failed"] + summary["quarantined_by"]
        assert "rejected" in str(error.value) and all(name in str(error.value) for name in summary["failed"])
        assert not any(p.exists() for p in outputs.values())  # nothing half-written
        return
    summary = validate.run(settings, validate.ValidateIO(data=path, out=outputs["out"], report_dir=tmp_path / "report",
                                                         quarantine=outputs["quarantine"]))
    accepted, quarantined = (pd.read_parquet(p) for p in outputs.values())
    assert len(accepted) + len(quarantined) == len(frame)  # nothing lost
    if verdict == "accepted":
        assert quarantined.empty and summary["quarantined_by"] == []
    else:
        assert check in summary["quarantined_by"] and len(quarantined) > 0
        assert quarantined["reason"].str.contains(check).all() or check in ";".join(quarantined["reason"])
        assert set(quarantined["row"]) <= set(range(len(frame)))


@pytest.mark.parametrize("case, corrupt, verdict, check", CATALOGUE, ids=[case[0] for case in CATALOGUE])
def test_nothing_is_lost(case, corrupt, verdict, check, clean, settings):
    frame = corrupt(clean)
    result = validate.validate_frame(frame, settings)
    assert len(result.accepted) + len(result.quarantined) == len(frame)
    together = pd.concat([result.accepted["text"], result.quarantined["text"]]).astype(str)
    assert sorted(together) == sorted(frame["text"].astype(str))


def test_shift_against_last_accepted_batch_warns_only(clean, settings, tmp_path):
    path, profile = tmp_path / "batch.parquet", tmp_path / "profile.json"
    clean.to_parquet(path)
    validate.run(settings, validate.ValidateIO(data=path, out=tmp_path / "a.parquet", report_dir=tmp_path / "r1",
                                               profile=profile))
    shifted = pd.concat([clean[clean["label"] == "World"], clean], ignore_index=True)
    shifted = shifted.assign(text=shifted["text"] + " " + shifted.index.astype(str) + " more words" * 20)
    shifted.to_parquet(path)
    summary = validate.run(settings, validate.ValidateIO(data=path, out=tmp_path / "b.parquet",
                                                         report_dir=tmp_path / "r2", profile=profile))
    assert summary["success"] and {"length_shift", "label_mix_shift"} <= set(summary["warnings"])
