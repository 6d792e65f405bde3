"""Unit tests of the validation stage on the generated corpus (the AG News catalogue is in test_data_catalogue)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from mlops.stages import validate
from mlops.stages.generate import generate_corpus


@pytest.fixture
def clean(tiny_settings) -> pd.DataFrame:
    frame = generate_corpus(400, tiny_settings.data.generated.classes, seed=3)
    frame["subset"] = "main"
    return frame


def test_clean_data_passes(clean, tiny_settings):
    verdict = validate.validate_frame(clean, tiny_settings)
    assert verdict.success and verdict.quarantined.empty and len(verdict.accepted) == len(clean)
    assert all(o.success for o in verdict.outcomes)


def test_row_problems_are_quarantined_with_reasons(clean, tiny_settings):
    frame = clean.copy()
    frame.loc[3, "text"] = "   "
    frame.loc[7, "label"] = "refunds"
    frame.loc[9, "text"] = frame.loc[9, "text"] + " Ã© broken"
    frame = pd.concat([frame, frame.iloc[[20]]], ignore_index=True)  # an exact duplicate, row 400
    verdict = validate.validate_frame(frame, tiny_settings)
    assert verdict.success
    reasons = dict(zip(verdict.quarantined["row"], verdict.quarantined["reason"], strict=True))
    assert reasons == {3: "text_not_blank", 7: "label_known", 9: "mojibake", 400: "duplicate"}
    assert len(verdict.accepted) + len(verdict.quarantined) == len(frame)


def test_several_reasons_for_one_row(clean, tiny_settings):
    frame = clean.copy()
    frame.loc[5, ["text", "label"]] = ["x\ufffd", "refunds"]
    verdict = validate.validate_frame(frame, tiny_settings)
    assert set(verdict.quarantined.loc[0, "reason"].split(";")) == {"text_length", "label_known",
                                                                      "replacement_char"}


def test_too_many_row_problems_reject_the_batch(clean, tiny_settings):
    frame = clean.assign(label=clean["label"].where(clean.index % 10 != 0, "refunds"))
    verdict = validate.validate_frame(frame, tiny_settings)
    assert not verdict.success
    failed = {o.name for o in verdict.outcomes if not o.success}
    assert {"label_known", "quarantine_share"} <= failed


def test_conflicting_duplicates_flag_every_copy(clean, tiny_settings):
    twin = clean.iloc[[0]].assign(label="feedback" if clean.loc[0, "label"] != "feedback" else "billing")
    verdict = validate.validate_frame(pd.concat([clean, twin], ignore_index=True), tiny_settings)
    assert sorted(verdict.quarantined["row"]) == [0, 400]
    assert set(verdict.quarantined["reason"]) == {"label_conflict"}


def test_leakage_keeps_the_test_row_and_quarantines_the_training_copy(clean, tiny_settings):
    frame = pd.concat([clean, clean.iloc[[4]].assign(subset="test")], ignore_index=True)
    verdict = validate.validate_frame(frame, tiny_settings)
    assert verdict.quarantined[["row", "reason"]].to_dict("records") == [{"row": 4, "reason": "test_leakage"}]
    assert (verdict.accepted["subset"] == "test").sum() == 1


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (lambda f: f.head(20), "row_count"),
        (lambda f: pd.concat([f, f.head(60)], ignore_index=True), "duplicate_share"),
        (lambda f: f.drop(columns="subset"), "columns"),
        (lambda f: f.assign(label="billing"), "two_classes"),
        (lambda f: pd.concat([f[f["label"] != "account"], f[f["label"] == "account"].head(2)]), "class_share"),
    ],
)
def test_table_problems_reject_the_batch(clean, tiny_settings, corrupt, expected):
    verdict = validate.validate_frame(corrupt(clean), tiny_settings)
    assert not verdict.success
    assert expected in {o.name for o in verdict.outcomes if o.kind == "table" and not o.success}


def test_rejection_writes_reports_but_no_data(tmp_path, clean, tiny_settings, capsys):
    data = tmp_path / "in.parquet"
    clean.assign(label=clean["label"].where(clean.index % 10 != 0, "refunds")).to_parquet(data)
    out, quarantine = tmp_path / "validated.parquet", tmp_path / "quarantine.parquet"
    with pytest.raises(validate.ValidationFailed, match="quarantine_share"):
        validate.run(tiny_settings, validate.ValidateIO(data=data, out=out, report_dir=tmp_path / "report",
                                                        quarantine=quarantine))
    assert not out.exists() and not quarantine.exists()
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["success"] is False and summary["failed"] == ["quarantine_share"]
    assert summary["quarantine_reasons"] == {"label_known": 40}
    assert "REJECTED" in (tmp_path / "report" / "report.html").read_text()
    printed = capsys.readouterr().out
    assert "QUARANTINE label_known" in printed and "refunds" in printed
    assert "CRITICAL quarantine_share" in printed


def test_pass_writes_accepted_quarantine_and_profile(tmp_path, clean, tiny_settings):
    data = tmp_path / "in.parquet"
    clean.to_parquet(data)
    summary = validate.run(tiny_settings, validate.ValidateIO(data=data, out=tmp_path / "out.parquet",
                                                              report_dir=tmp_path / "report",
                                                              quarantine=tmp_path / "q.parquet",
                                                              profile=tmp_path / "profile.json"))
    assert summary["success"] and pd.read_parquet(tmp_path / "out.parquet").equals(clean)
    assert pd.read_parquet(tmp_path / "q.parquet").empty
    assert json.loads((tmp_path / "profile.json").read_text())["rows"] == len(clean)
    html = (tmp_path / "report" / "report.html").read_text()
    assert "ACCEPTED" in html and "http" not in html and "<script" not in html  # renders offline


def test_validate_any_csv_on_demand(tmp_path, clean, tiny_settings):
    path = tmp_path / "any.csv"
    clean[["text", "label"]].to_csv(path, index=False)
    assert validate.run(tiny_settings, validate.ValidateIO(data=path, report_dir=tmp_path / "report"))["success"]


def test_report_names_new_batches_and_quarantines_their_bad_rows(tmp_path, clean, tiny_settings):
    first = clean.assign(batch="corpus.csv")
    data = tmp_path / "in.parquet"
    first.to_parquet(data)
    summary = validate.run(tiny_settings, validate.ValidateIO(data=data, out=tmp_path / "out.parquet",
                                                              report_dir=tmp_path / "report",
                                                              quarantine=tmp_path / "q.parquet",
                                                              profile=tmp_path / "profile.json"))
    assert summary["new_batches"] == ["corpus.csv"]
    batch = generate_corpus(30, tiny_settings.data.generated.classes, seed=8).assign(subset="feedback",
                                                                                    batch="batch-1-served.csv")
    batch.loc[0, "label"] = "refund"  # outside the label set: quarantined like any row
    pd.concat([first, batch], ignore_index=True).to_parquet(data)
    summary = validate.run(tiny_settings, validate.ValidateIO(data=data, out=tmp_path / "out.parquet",
                                                              report_dir=tmp_path / "report",
                                                              quarantine=tmp_path / "q.parquet",
                                                              profile=tmp_path / "profile.json"))
    assert summary["new_batches"] == ["batch-1-served.csv"]
    assert summary["batches"]["batch-1-served.csv"] == {"rows": 30, "accepted": 29, "quarantined": 1}
    assert "label_known" in summary["quarantined_by"]
    assert "batch-1-served.csv <b>(new)</b>" in (tmp_path / "report" / "report.html").read_text()


def test_a_declared_class_missing_from_the_whole_dataset_rejects_it(clean, tiny_settings, tmp_path):
    """Given data where a declared class has no accepted row, validation fails, naming the class: a model
    trained on it could never predict that class."""
    verdict = validate.validate_frame(clean[clean["label"] != "billing"], tiny_settings)
    outcome = next(o for o in verdict.outcomes if o.name == "declared_labels_present")
    assert not outcome.success and outcome.severity == "critical" and outcome.observed == {"missing": ["billing"]}
    assert not verdict.success
    assert next(o for o in validate.validate_frame(clean, tiny_settings).outcomes
                if o.name == "declared_labels_present").success
    data = tmp_path / "in.parquet"
    clean[clean["label"] != "billing"].to_parquet(data)
    with pytest.raises(validate.ValidationFailed, match="declared_labels_present: missing billing"):
        validate.run(tiny_settings, validate.ValidateIO(data=data, out=tmp_path / "out.parquet",
                                                        report_dir=tmp_path / "report"))


def test_a_feedback_batch_may_lack_classes(clean, tiny_settings):
    batch = generate_corpus(30, tiny_settings.data.generated.classes, seed=8)
    batch = batch[batch["label"] == "billing"].assign(subset="feedback", batch="batch-1-billing.csv")
    verdict = validate.validate_frame(pd.concat([clean.assign(batch="corpus.csv"), batch], ignore_index=True),
                                      tiny_settings)
    assert verdict.success and verdict.excluded == {}


def bad_feedback_batch(clean, tiny_settings) -> pd.DataFrame:
    """100 labels of which 14 contradict the primary data's label for the same text and 3 carry a control
    character: 17% of the batch to quarantine, and with the primary rows they clash with, more than 5% of
    the whole dataset."""
    batch = generate_corpus(100, tiny_settings.data.generated.classes, seed=9)
    classes = sorted(clean["label"].unique())
    for row in range(14):
        batch.loc[row, "text"] = clean.loc[row, "text"]
        batch.loc[row, "label"] = next(c for c in classes if c != clean.loc[row, "label"])
    for row in range(14, 17):
        batch.loc[row, "text"] = batch.loc[row, "text"] + " \x07bell"
    return batch.assign(subset="feedback", batch="batch-2-bad.csv")


def test_a_bad_feedback_batch_is_excluded_alone_and_the_rest_passes(tmp_path, clean, tiny_settings, capsys):
    """Given the primary data, a good feedback batch and a bad one, validation accepts the dataset: the bad
    batch goes to quarantine whole with a reason naming it, the report lists it with its share, the rows it
    clashed with are accepted, and the good batch stays."""
    good = generate_corpus(30, tiny_settings.data.generated.classes, seed=8).assign(subset="feedback",
                                                                                   batch="batch-1-served.csv")
    frame = pd.concat([clean.assign(batch="corpus.csv"), good, bad_feedback_batch(clean, tiny_settings)],
                      ignore_index=True)
    data = tmp_path / "in.parquet"
    frame.to_parquet(data)
    out, quarantine = tmp_path / "out.parquet", tmp_path / "q.parquet"
    summary = validate.run(tiny_settings, validate.ValidateIO(data=data, out=out, report_dir=tmp_path / "report",
                                                              quarantine=quarantine, profile=tmp_path / "profile.json"))
    accepted, quarantined = pd.read_parquet(out), pd.read_parquet(quarantine)
    assert summary["success"] and summary["excluded_batches"] == {"batch-2-bad.csv": 0.17}
    assert "batch-2-bad.csv" not in set(accepted["batch"])
    assert len(quarantined) == 100 and set(quarantined["batch"]) == {"batch-2-bad.csv"}
    assert quarantined["reason"].str.endswith("batch_excluded:batch-2-bad.csv").all()
    assert quarantined["reason"].str.contains("label_conflict").sum() == 14
    assert summary["batches"]["batch-1-served.csv"] == {"rows": 30, "accepted": 30, "quarantined": 0}
    assert summary["batches"]["corpus.csv"] == {"rows": 400, "accepted": 400, "quarantined": 0}
    assert "feedback_batch_quarantine" in summary["warnings"]
    assert "(excluded: 17.0% quarantined)" in (tmp_path / "report" / "report.html").read_text()
    assert "batch-2-bad.csv (17.0% of its rows quarantined)" in capsys.readouterr().out
    assert "batch-2-bad.csv" in json.loads((tmp_path / "profile.json").read_text())["batches"]  # not new next time


def test_the_primary_datas_own_quarantine_share_still_rejects(clean, tiny_settings):
    primary = clean.assign(label=clean["label"].where(clean.index % 10 != 0, "refunds"), batch="corpus.csv")
    good = generate_corpus(30, tiny_settings.data.generated.classes, seed=8).assign(subset="feedback",
                                                                                   batch="batch-1-served.csv")
    verdict = validate.validate_frame(pd.concat([primary, good], ignore_index=True), tiny_settings)
    assert not verdict.success and verdict.excluded == {}
    assert not next(o for o in verdict.outcomes if o.name == "quarantine_share").success
def test_previous_profile_comes_back_through_dvc_lock_when_dvc_removed_the_file(tmp_path, monkeypatch):
    """Inside `dvc repro` the profile output is deleted before validate runs: the locked version is read."""
    import hashlib
    import subprocess

    from tests.helpers import BIN

    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=tmp_path, check=True,
                   env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    content = json.dumps({"rows": 7, "length_quantiles": [1, 2, 3, 4, 5], "label_shares": {"a": 1.0}}).encode()
    md5 = hashlib.md5(content).hexdigest()
    cached = tmp_path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content)
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  validate:\n    cmd: mlops validate\n    outs:\n"
        f"    - path: reports/validation/profile.json\n      hash: md5\n      md5: {md5}\n      size: {len(content)}\n")
    monkeypatch.chdir(tmp_path)
    profile = Path("reports/validation/profile.json")
    assert validate.previous_profile(profile)["rows"] == 7  # from the cache, by the lock's hash
    profile.parent.mkdir(parents=True)
    profile.write_text(json.dumps({"rows": 9}))
    assert validate.previous_profile(profile) == {"rows": 9}  # a hand run: the file itself
    assert validate.previous_profile(None) is None
    assert validate.previous_profile(Path("reports/other.json")) is None  # not in the lock: nothing to compare
