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
"""

from __future__ import annotations

import html
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path, read_json, write_json, write_table
from mlops.core.settings import Settings, declared_labels

ROW_ID = "_row"
COLUMNS = ["text", "label", "subset"]
CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"  # C0 but tab/newline/CR, DEL, C1
# UTF-8 read as Latin-1/cp1252: "Ã©" for "é", "â€™" for "’", "Â " for a no-break space.
MOJIBAKE = r"Ã[\x80-\xbf]|Ã[¡-¿]|â€|Â[\xa0-\xbf ]"


@dataclass(frozen=True)
class Check:
    """One expectation of the suite, with the words a data owner needs."""

    name: str
    kind: str  # "row" (quarantines rows) | "table" (critical) | "warning"
    description: str
    expectation: Any = None


@dataclass
class Outcome:
    name: str
    kind: str
    description: str
    success: bool
    observed: Any
    rows: list[int] = field(default_factory=list, repr=False)

    @property
    def severity(self) -> str:
        return {"table": "critical", "row": "quarantine", "warning": "warning"}[self.kind]


class ValidationFailed(MlopsError):
    """The batch is rejected; the message lists the failed checks."""


def derive_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-row facts GE cannot compute itself, as columns GE can then check."""
    text, label = frame["text"].astype("string"), frame["label"].astype("string")
    key = text.str.strip()
    conflict = label.groupby(key, dropna=True).transform("nunique").fillna(0).gt(1)
    subset = frame["subset"] if "subset" in frame else pd.Series("main", index=frame.index)
    test_texts = set(key[subset == "test"].dropna())
    return pd.DataFrame({
        ROW_ID: np.arange(len(frame)),
        "text": text,
        "label": label,
        # a copy across subsets is leakage, not a duplicate: the test row must stay
        "_duplicate": pd.DataFrame({"s": subset, "t": key, "l": label}).duplicated(keep="first") & key.notna(),
        "_conflict": conflict,
        "_leak": (subset != "test") & key.isin(test_texts),
    })


def build_checks(settings: Settings, labels: list[str] | None) -> list[Check]:
    import great_expectations as gx

    bounds, e = settings.validate_, gx.expectations
    no_flag = [False]
    checks = [
        Check("text_not_null", "row", "every row has a text", e.ExpectColumnValuesToNotBeNull(column="text")),
        Check("text_not_blank", "row", "no text is empty or whitespace only",
              e.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"^\s*$")),
        Check("text_length", "row", f"every text has {bounds.min_text_chars} to {bounds.max_text_chars} characters",
              e.ExpectColumnValueLengthsToBeBetween(column="text", min_value=bounds.min_text_chars,
                                                    max_value=bounds.max_text_chars)),
        Check("label_not_null", "row", "every row has a label", e.ExpectColumnValuesToNotBeNull(column="label")),
        Check("replacement_char", "row", "no U+FFFD replacement character (bytes lost in decoding)",
              e.ExpectColumnValuesToNotMatchRegex(column="text", regex="\ufffd")),
        Check("control_chars", "row", "no control characters (C0 other than tab/newline, DEL, C1)",
              e.ExpectColumnValuesToNotMatchRegex(column="text", regex=CONTROL_CHARS)),
        Check("mojibake", "row", "no mojibake (UTF-8 decoded as Latin-1, e.g. 'Ã©' or 'â€™')",
              e.ExpectColumnValuesToNotMatchRegex(column="text", regex=MOJIBAKE)),
        Check("duplicate", "row", "no exact duplicate (same text and label) of an earlier row",
              e.ExpectColumnValuesToBeInSet(column="_duplicate", value_set=no_flag)),
        Check("label_conflict", "row", "no text appears with two different labels",
              e.ExpectColumnValuesToBeInSet(column="_conflict", value_set=no_flag)),
        Check("test_leakage", "row", "no training text also appears in the held-out test rows",
              e.ExpectColumnValuesToBeInSet(column="_leak", value_set=no_flag)),
        Check("row_count", "table", f"between {bounds.min_rows} and {bounds.max_rows} rows",
              e.ExpectTableRowCountToBeBetween(min_value=bounds.min_rows, max_value=bounds.max_rows)),
        Check("duplicate_share", "table", f"at most {bounds.max_duplicate_share:.0%} of texts are duplicates",
              e.ExpectColumnProportionOfUniqueValuesToBeBetween(column="text",
                                                                min_value=1 - bounds.max_duplicate_share)),
        Check("two_classes", "table", "at least two classes",
              e.ExpectColumnUniqueValueCountToBeBetween(column="label", min_value=2)),
    ]
    if labels is not None:
        checks.insert(4, Check("label_known", "row", f"labels are among {labels}",
                               e.ExpectColumnValuesToBeInSet(column="label", value_set=labels)))
    return checks


def observed_value(result: dict[str, Any]) -> Any:
    if "observed_value" in result:
        return result["observed_value"]
    summary: dict[str, Any] = {key: result[key] for key in ("unexpected_count",) if key in result}
    if "unexpected_percent" in result:
        summary["unexpected_percent"] = round(float(result["unexpected_percent"] or 0), 3)
    examples = result.get("partial_unexpected_list") or []
    if examples:
        summary["examples"] = sorted({str(value)[:80] for value in examples})[:5]
    return summary


def run_suite(frame: pd.DataFrame, checks: list[Check]) -> list[Outcome]:
    """Evaluate the checks with an ephemeral GE context (no files, no network)."""
    import great_expectations as gx

    from mlops.adapters.great_expectations_config import silence_progress_bars

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    silence_progress_bars(context)
    batch = (context.data_sources.add_pandas("lifecycle").add_dataframe_asset("dataset")
             .add_batch_definition_whole_dataframe("whole"))
    suite = context.suites.add(gx.ExpectationSuite(name="text_classification"))
    by_id = {str(suite.add_expectation(check.expectation).id): check for check in checks}
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="lifecycle", data=batch,
                                                                            suite=suite))
    result = definition.run(batch_parameters={"dataframe": frame},
                            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID],
                                           "partial_unexpected_count": 5, "return_unexpected_index_query": False})
    outcomes = {}
    for item in result.results:
        check = by_id[str(item.expectation_config.id)]
        rows = [int(entry[ROW_ID]) for entry in item.result.get("unexpected_index_list") or []]
        observed = observed_value(item.result)
        if check.name == "duplicate_share":  # GE reports the unique proportion; say what the bound is about
            observed = round(1 - float(observed), 4)
        if rows and str(item.expectation_config.kwargs.get("column", "")).startswith("_"):
            observed["examples"] = [str(text)[:80] for text in frame["text"].iloc[rows[:3]]]  # not "True"
        outcomes[check.name] = Outcome(check.name, check.kind, check.description, bool(item.success), observed,
                                       sorted(set(rows)))
    return [outcomes[check.name] for check in checks]  # GE returns them unordered


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


@dataclass
class Verdict:
    """The checks' outcomes and the batch split in two: rows that passed every
    row check, and rows quarantined with their reasons. Together they are the
    input; whether either is written depends on `success`."""

    outcomes: list[Outcome]
    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    excluded: dict[str, float] = field(default_factory=dict)  # feedback batch -> its own quarantined share

    @property
    def success(self) -> bool:
        return not [o for o in self.outcomes if o.kind == "table" and not o.success]


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


def batch_report(verdict: Verdict, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Per batch (source file or feedback batch): rows, accepted, quarantined; and which are new since the
    last accepted run's profile."""
    if "batch" not in verdict.accepted.columns:
        return {"batches": {}, "new_batches": [], "excluded_batches": verdict.excluded}
    count = {name: {"rows": 0, "accepted": 0, "quarantined": 0} for name in
             pd.concat([verdict.accepted["batch"], verdict.quarantined["batch"]]).astype(str).unique()}
    for frame, key in ((verdict.accepted, "accepted"), (verdict.quarantined, "quarantined")):
        for name, rows in frame["batch"].astype(str).value_counts().items():
            count[name][key] += int(rows)
            count[name]["rows"] += int(rows)
    known = set((previous or {}).get("batches", []))
    return {"batches": count, "new_batches": sorted(name for name in count if name not in known),
            "excluded_batches": verdict.excluded}


def render_html(verdict: Verdict, summary: dict[str, Any]) -> str:
    """A self-contained page: inline CSS, no scripts, nothing fetched."""
    status = "ACCEPTED" if verdict.success else "REJECTED"
    colour = "#1e7b34" if verdict.success else "#b3261e"
    rows = "".join(
        f"<tr class='{'ok' if o.success else o.severity}'><td>{html.escape(o.name)}</td><td>{o.severity}</td>"
        f"<td>{html.escape(o.description)}</td><td>{'pass' if o.success else 'FAIL'}</td>"
        f"<td><code>{html.escape(str(o.observed))[:500]}</code></td></tr>"
        for o in verdict.outcomes
    )
    reasons = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
                      for k, v in summary["quarantine_reasons"].items()) or "<tr><td colspan=2>none</td></tr>"
    new, excluded = set(summary.get("new_batches", [])), summary.get("excluded_batches", {})
    batches = "".join(f"<tr><td>{html.escape(name)}{' <b>(new)</b>' if name in new else ''}"
                      + (f" <b>(excluded: {excluded[name]:.1%} quarantined)</b>" if name in excluded else "")
                      + f"</td><td>{c['rows']}</td><td>{c['accepted']}</td><td>{c['quarantined']}</td></tr>"
                      for name, c in summary.get("batches", {}).items()) or "<tr><td colspan=4>none</td></tr>"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Data validation: {status}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;color:#222}}
h1 span{{padding:.1em .5em;border-radius:4px;color:#fff;background:{colour}}}
.cards{{display:flex;gap:1em;margin:1em 0}}.card{{border:1px solid #ccc;border-radius:6px;padding:.6em 1em}}
.card b{{display:block;font-size:1.6em}}table{{border-collapse:collapse;width:100%;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:.4em;text-align:left;vertical-align:top}}th{{background:#eef1f5}}
tr.critical td{{background:#fde8e7}}tr.quarantine td{{background:#fff3e0}}tr.warning td{{background:#fff9db}}
tr.ok td:nth-child(4){{color:#1e7b34}}code{{font-size:.85em;word-break:break-all}}
</style></head><body>
<h1>Data validation <span id="verdict">{status}</span></h1>
<p>Source <code>{html.escape(summary['source'])}</code>.</p>
<div class="cards"><div class="card"><b>{summary['rows']}</b>input rows</div>
<div class="card"><b>{summary['accepted_rows']}</b>accepted</div>
<div class="card"><b>{summary['quarantined_rows']}</b>quarantined</div>
<div class="card"><b>{len(summary['failed'])}</b>critical failures</div>
<div class="card"><b>{len(summary['warnings'])}</b>warnings</div></div>
<h2>Checks</h2><table id="checks"><tr><th>check</th><th>severity</th><th>expectation</th><th>result</th>
<th>observed</th></tr>{rows}</table>
<h2>Batches</h2><table id="batches"><tr><th>batch</th><th>rows</th><th>accepted</th><th>quarantined</th></tr>
{batches}</table>
<h2>Quarantined rows by reason</h2><table id="quarantine"><tr><th>reason</th><th>rows</th></tr>{reasons}</table>
</body></html>"""


def summarise(verdict: Verdict, source: str) -> dict[str, Any]:
    counts = verdict.quarantined["reason"].str.split(";").explode().value_counts() if len(verdict.quarantined) \
        else pd.Series(dtype=int)
    return {
        "success": verdict.success,
        "source": source,
        "rows": len(verdict.accepted) + len(verdict.quarantined),
        "accepted_rows": len(verdict.accepted) if verdict.success else 0,
        "quarantined_rows": len(verdict.quarantined),
        "failed": [o.name for o in verdict.outcomes if o.kind == "table" and not o.success],
        "quarantined_by": [o.name for o in verdict.outcomes if o.kind == "row" and not o.success],
        "warnings": [o.name for o in verdict.outcomes if o.kind == "warning" and not o.success],
        "quarantine_reasons": {str(k): int(v) for k, v in counts.items()},
        "checks": [{k: v for k, v in asdict(o).items() if k != "rows"} | {"severity": o.severity}
                   for o in verdict.outcomes],
    }


def read_any(settings: Settings, data: Path) -> pd.DataFrame:
    """Parquet in the lifecycle's schema as it is; any other file mapped through data.source."""
    if not Path(data).is_file():
        raise MlopsError(f"data file not found: {data}")
    from mlops.stages.ingest import detect_format, map_columns, read_raw

    source = settings.data.source.model_copy(update={"path": str(data), "format": "auto"})
    if detect_format(str(data), "auto") == "parquet":
        frame = pd.read_parquet(data)
        if {"text", "label"} & set(frame.columns):  # ingest's schema: let the suite name what is missing
            return frame if "subset" in frame else frame.assign(subset="main")
        source = source.model_copy(update={"header": True, "columns": None})
    return map_columns(read_raw(source), source, "main")


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


def run(settings: Settings, data: Path, out: Path | None, report_dir: Path, quarantine: Path | None = None,
        profile_path: Path | None = None) -> dict[str, Any]:
    """Validate `data`; write accepted and quarantined rows only if the batch is accepted."""
    frame = read_any(settings, data)
    previous = previous_profile(profile_path)
    verdict = validate_frame(frame, settings, previous)
    summary = summarise(verdict, str(data)) | batch_report(verdict, previous)
    write_json(summary, report_dir / "summary.json")
    with atomic_path(report_dir / "report.html") as tmp:
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
                               f"whole, see {report_dir / 'report.html'}")
    if out is not None:
        write_table(verdict.accepted, out)
    if quarantine is not None:
        write_table(verdict.quarantined, quarantine)
    if profile_path is not None:  # an excluded batch was seen: the next run does not call it new
        accepted = profile(verdict.accepted)
        write_json(accepted | {"batches": sorted({*accepted["batches"], *verdict.excluded})}, profile_path)
    if verdict.excluded:
        print("validate: feedback batches excluded whole: " + ", ".join(
            f"{name} ({share:.1%} of its rows quarantined)" for name, share in verdict.excluded.items()))
    if summary["new_batches"]:
        print("validate: new batches: " + ", ".join(f"{name} ({summary['batches'][name]['accepted']} of "
                                                      f"{summary['batches'][name]['rows']} rows accepted)"
                                                      for name in summary["new_batches"]))
    print(f"validate: ACCEPTED {len(verdict.accepted)} rows, quarantined {len(verdict.quarantined)} "
          f"({summary['quarantine_reasons'] or 'none'}), {len(summary['warnings'])} warnings "
          f"-> {out or '(report only)'}")
    return summary
