"""Stage `validate`: a Great Expectations suite that blocks bad data and loses nothing.

GE evaluates every expectation; this module decides what the results mean,
because GE marks a run failed even for warning-level expectations:

- row checks (blank text, unknown label, encoding damage, duplicates, label
  conflicts, leakage into the held-out test rows, ...) name the rows that
  break them. While those rows are at most `validate.max_quarantine_share` of
  the primary data (every row but labelled feedback) they are quarantined,
  each with its reasons, and the rest go on; above that share the dataset is
  rejected whole. accepted + quarantined = input.
- the same share is judged per feedback batch: a batch above it is excluded
  whole (every row quarantined, the reason naming the batch) and the checks
  run again without it, so its conflicts no longer mark the rows it clashed
  with. Batches are never rewritten: were a bad one to reject the dataset,
  every later run would fail too and the loop would stop for good.
- table checks (columns and types, row count, class shares, every declared
  class present, the quarantine share itself) are critical: one failure
  rejects the batch, the stage exits non-zero and `dvc repro` or the Airflow
  task stops.
- warnings (a shift of text lengths or label mix against the last accepted
  batch, an excluded feedback batch) are reported and never stop anything.

Each failed check prints one line with its observed value; a JSON summary and
a self-contained HTML page (no CDN, no script) say the same for people.
The suite and its run are mlops/adapters/great_expectations_suite.py; the
summary and the page, mlops/ml/validation_report.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from mlops.adapters.great_expectations_suite import Outcome, build_checks, derive_columns, run_suite
from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path, read_json, write_json, write_table
from mlops.core.labels import declared_labels
from mlops.core.raw_tables import read_as_dataset
from mlops.core.stage_io import StageIO
from mlops.ml.validation_report import Verdict, batch_report, render_html, summarise

if TYPE_CHECKING:
    from mlops.core.settings import Settings

COLUMNS = ["text", "label", "subset"]


class ValidationFailed(MlopsError):
    """The batch is rejected; the message lists the failed checks."""


def table_checks(frame: pd.DataFrame, accepted: pd.DataFrame, quarantined_share: float,
                 settings: Settings) -> list[Outcome]:
    """Checks GE has no expectation for: column types, per-class share bounds, the primary data's quarantine
    share (`quarantined_share`, feedback batches being judged on their own)."""
    bounds = settings.validate_
    missing = [column for column in COLUMNS if column not in frame.columns]
    wrong_type = [c for c in ("text", "label") if c in frame and not (pd.api.types.is_string_dtype(frame[c])
                                                                      or frame[c].dtype == object)]
    shares = accepted["label"].value_counts(normalize=True) if len(accepted) else pd.Series(dtype=float)
    outside = {str(k): round(float(v), 4) for k, v in shares.items()
               if not bounds.min_class_share <= v <= bounds.max_class_share}
    return [
        Outcome("columns", "table", "columns text, label, subset are present, text and label are strings",
                not missing and not wrong_type,
                {"missing": missing, "not_strings": wrong_type} if missing or wrong_type else list(frame.columns)),
        Outcome("class_share", "table",
                f"every class has {bounds.min_class_share:.0%} to {bounds.max_class_share:.0%} of the accepted rows",
                not outside and len(shares) > 0,
                outside or {str(k): round(float(v), 4) for k, v in shares.items()}),
        Outcome("quarantine_share", "table",
                f"at most {bounds.max_quarantine_share:.1%} of the primary rows (all but feedback) need quarantine",
                quarantined_share <= bounds.max_quarantine_share, round(quarantined_share, 4)),
    ]


def profile(frame: pd.DataFrame) -> dict[str, Any]:
    lengths = frame["text"].astype("string").str.len()
    batches = sorted(frame["batch"].astype(str).unique()) if "batch" in frame else []
    return {"rows": len(frame), "length_quantiles": [float(q) for q in lengths.quantile([0.1, 0.25, 0.5, 0.75, 0.9])],
            "label_shares": {str(k): float(v) for k, v in frame["label"].value_counts(normalize=True).items()},
            "batches": batches}


def shift_warnings(current: dict[str, Any], previous: dict[str, Any] | None, settings: Settings) -> list[Outcome]:
    """Compare with the last accepted batch: length quantiles and label mix."""
    if previous is None:
        return []
    bounds = settings.validate_
    before, after = np.array(previous["length_quantiles"]), np.array(current["length_quantiles"])
    length_shift = float(np.max(np.abs(after - before) / np.maximum(before, 1.0)))
    labels = set(previous["label_shares"]) | set(current["label_shares"])
    label_shift = 0.5 * sum(abs(current["label_shares"].get(k, 0.0) - previous["label_shares"].get(k, 0.0))
                            for k in labels)
    return [
        Outcome("length_shift", "warning",
                f"text-length quantiles within {bounds.max_length_shift:.0%} of the last accepted batch",
                length_shift <= bounds.max_length_shift,
                {"max_relative_change": round(length_shift, 4), "before": before.tolist(), "after": after.tolist()}),
        Outcome("label_mix_shift", "warning",
                f"label mix within total-variation distance {bounds.max_label_shift} of the last accepted batch",
                label_shift <= bounds.max_label_shift, round(label_shift, 4)),
    ]


EXCLUDED = "batch_excluded:"  # the quarantine reason of every row of an excluded feedback batch, then its name


def row_reasons(frame: pd.DataFrame, keep: np.ndarray, settings: Settings) -> tuple[list[Outcome],
                                                                                     dict[int, list[str]]]:
    """The suite on the rows `keep` marks; its outcomes, and each failing row's check names, by row of `frame`."""
    positions = np.flatnonzero(keep)
    outcomes = run_suite(derive_columns(frame.iloc[positions].reset_index(drop=True)),
                         build_checks(settings, declared_labels(settings)))
    reasons: dict[int, list[str]] = {}
    for outcome in outcomes:
        outcome.rows = [int(positions[row]) for row in outcome.rows]
        if outcome.kind == "row":
            for row in outcome.rows:
                reasons.setdefault(row, []).append(outcome.name)
    return outcomes, reasons


def feedback_batches(frame: pd.DataFrame) -> pd.Series:
    """Each row's feedback batch, or None for the primary data (the source's rows and the test source's)."""
    feedback = frame["subset"].eq("feedback") if "subset" in frame else pd.Series(False, index=frame.index)
    names = frame["batch"].astype(str) if "batch" in frame else pd.Series("feedback", index=frame.index)
    return names.where(feedback, None)


def validate_frame(frame: pd.DataFrame, settings: Settings, previous: dict[str, Any] | None = None) -> Verdict:
    """Run the whole suite; split the batch into accepted and quarantined rows.

    A feedback batch whose own quarantined share is above the limit is
    excluded whole and the suite runs again on the rest, until no batch is
    (cross-row checks can only flag fewer rows with fewer rows to compare).
    """
    frame = frame.reset_index(drop=True)
    if "text" not in frame or "label" not in frame:
        missing = [c for c in ("text", "label") if c not in frame]
        outcome = Outcome("columns", "table", "columns text, label, subset are present", False,
                          {"missing": missing})
        return Verdict([outcome], frame, frame.iloc[0:0].assign(row=0, reason=""))
    limit = settings.validate_.max_quarantine_share
    batch = feedback_batches(frame)
    keep = np.ones(len(frame), dtype=bool)
    excluded: dict[str, float] = {}
    excluded_reasons: dict[int, list[str]] = {}
    while True:
        outcomes, reasons = row_reasons(frame, keep, settings)
        bad = np.zeros(len(frame), dtype=bool)
        bad[list(reasons)] = True
        shares = pd.Series(bad[keep], index=batch[keep]).groupby(level=0).mean()  # None (primary) is dropped
        over = {str(name): round(float(share), 4) for name, share in shares.items() if share > limit}
        if not over:
            break
        excluded |= over
        for row in np.flatnonzero(keep & batch.isin(list(over)).to_numpy()):
            excluded_reasons[int(row)] = [*reasons.get(int(row), []), EXCLUDED + str(batch[row])]
        keep &= ~batch.isin(list(over)).to_numpy()
    reasons |= excluded_reasons
    bad = np.zeros(len(frame), dtype=bool)
    bad[list(reasons)] = True
    accepted = frame[~bad].reset_index(drop=True)
    quarantined = frame[bad].assign(row=np.flatnonzero(bad), reason=[";".join(reasons[i]) for i in
                                                                      np.flatnonzero(bad)]).reset_index(drop=True)
    primary = batch.isna().to_numpy()
    share = float(bad[primary].mean()) if primary.any() else 0.0
    outcomes += table_checks(frame, accepted, share, settings)
    outcomes += declared_classes_present(accepted, declared_labels(settings))
    if batch.notna().any():
        outcomes.append(Outcome("feedback_batch_quarantine", "warning",
                                f"every feedback batch has at most {limit:.1%} of its rows in quarantine "
                                "(a batch above is excluded whole)", not excluded,
                                {"excluded": excluded} if excluded else "none excluded"))
    if len(accepted):
        outcomes += shift_warnings(profile(accepted), previous, settings)
    return Verdict(outcomes, accepted, quarantined, excluded)


def declared_classes_present(accepted: pd.DataFrame, labels: list[str] | None) -> list[Outcome]:
    """The label set's other direction: a declared class with no accepted row in the whole dataset is
    critical, since a model trained on it could never predict that class (one feedback batch may lack
    classes; the data the model trains on may not). Unknown labels are the row check `label_known`."""
    if labels is None:
        return []
    missing = sorted(set(labels) - set(accepted["label"].astype(str)))
    return [Outcome("declared_labels_present", "table",
                    f"every declared class ({', '.join(labels)}) has accepted rows",
                    not missing, {"missing": missing} if missing else "all present")]


def locked_output(path: Path) -> Path | None:
    """Where the DVC cache holds the version of `path` that dvc.lock records, if any.

    `dvc repro` deletes a stage's outputs before running it. The profile of the last accepted batch is an
    ordinary cached output (a `persist: true` one would turn DVC's run-cache off for this stage), so the
    previous version is read back from the cache by the hash the lock file recorded for it."""
    try:
        from dvc.repo import Repo

        repo = Repo(os.getcwd())
    except Exception:  # not a DVC project (a hand run elsewhere): nothing to compare with
        return None
    with repo:
        lock = Path(repo.root_dir) / "dvc.lock"
        if not lock.is_file():
            return None
        wanted = Path(path).resolve()
        for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
            for out in stage.get("outs", []):
                if (Path(repo.root_dir) / out["path"]).resolve() == wanted and "md5" in out:
                    cached = Path(repo.cache.local.oid_to_path(out["md5"]))
                    return cached if cached.is_file() else None
    return None


def previous_profile(profile_path: Path | None) -> dict[str, Any] | None:
    """The last accepted batch's profile: the file itself when it is there (a hand run), else the version
    dvc.lock recorded (inside `dvc repro`, which removed the file before running the stage)."""
    if profile_path is None:
        return None
    source = Path(profile_path) if Path(profile_path).is_file() else locked_output(profile_path)
    return read_json(source) if source is not None else None


class ValidateIO(StageIO):
    """The dataset read, the report folder, and what an accepted batch writes: a hand run may leave those out."""

    stage = "validate"
    data: Path
    report_dir: Path
    out: Path | None = None
    quarantine: Path | None = None
    profile: Path | None = None


def run(settings: Settings, io: ValidateIO) -> dict[str, Any]:
    """Validate `io.data`; write accepted and quarantined rows only if the batch is accepted."""
    frame = read_as_dataset(settings, io.data)
    previous = previous_profile(io.profile)
    verdict = validate_frame(frame, settings, previous)
    summary = summarise(verdict, str(io.data)) | batch_report(verdict, previous)
    write_json(summary, io.report_dir / "summary.json")
    with atomic_path(io.report_dir / "report.html") as tmp:
        tmp.write_text(render_html(verdict, summary), encoding="utf-8")
    for outcome in verdict.outcomes:
        if not outcome.success:
            print(f"validate: {outcome.severity.upper()} {outcome.name}: expected {outcome.description}; "
                  f"observed {outcome.observed}")
    if not verdict.success:
        failed = [f"{o.name}: missing {', '.join(map(str, o.observed['missing']))}"
                  if isinstance(o.observed, dict) and o.observed.get("missing") else o.name
                  for o in verdict.outcomes if o.kind == "table" and not o.success]
        raise ValidationFailed(f"data validation failed ({'; '.join(failed)}); the batch is rejected "
                               f"whole, see {io.report_dir / 'report.html'}")
    if io.out is not None:
        write_table(verdict.accepted, io.out)
    if io.quarantine is not None:
        write_table(verdict.quarantined, io.quarantine)
    if io.profile is not None:  # an excluded batch was seen: the next run does not call it new
        accepted = profile(verdict.accepted)
        write_json(accepted | {"batches": sorted({*accepted["batches"], *verdict.excluded})}, io.profile)
    if verdict.excluded:
        print("validate: feedback batches excluded whole: " + ", ".join(
            f"{name} ({share:.1%} of its rows quarantined)" for name, share in verdict.excluded.items()))
    if summary["new_batches"]:
        print("validate: new batches: " + ", ".join(f"{name} ({summary['batches'][name]['accepted']} of "
                                                      f"{summary['batches'][name]['rows']} rows accepted)"
                                                      for name in summary["new_batches"]))
    print(f"validate: ACCEPTED {len(verdict.accepted)} rows, quarantined {len(verdict.quarantined)} "
          f"({summary['quarantine_reasons'] or 'none'}), {len(summary['warnings'])} warnings "
          f"-> {io.out or '(report only)'}")
    return summary
