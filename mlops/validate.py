"""Stage `validate`: a Great Expectations suite that blocks bad data.

GE evaluates the expectations; this module decides what they mean. GE marks a
whole run failed even for warning-level expectations, so severity is ours:
critical failures stop the lifecycle (non-zero exit, `dvc repro` and the
Airflow task stop) and warnings are only reported. Each failed expectation is
printed as one line with its observed value, and written to a JSON summary and
an HTML report that needs no network to render.
"""

from __future__ import annotations

import html
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.errors import MlopsError
from mlops.io import atomic_path, write_json, write_table
from mlops.settings import Settings

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@dataclass(frozen=True)
class Check:
    """One expectation of the suite, with the words a data owner needs."""

    name: str
    severity: str  # "critical" | "warning"
    description: str
    expectation: Any


@dataclass(frozen=True)
class Outcome:
    name: str
    severity: str
    description: str
    success: bool
    observed: Any


class ValidationFailed(MlopsError):
    """Critical expectations failed; the message lists them."""


def known_labels(settings: Settings) -> list[str] | None:
    """The label set to enforce: declared in validate.labels, else the names labels map to."""
    if settings.validate_.labels is not None:
        return list(settings.validate_.labels)
    if settings.data.source.label_names:
        return sorted(set(settings.data.source.label_names.values()))
    return None


def build_checks(settings: Settings, labels: list[str] | None) -> list[Check]:
    import great_expectations as gx

    bounds = settings.validate_
    e = gx.expectations
    checks = [
        Check("columns", "critical", "the table has exactly the columns text, label, subset",
              e.ExpectTableColumnsToMatchSet(column_set=["text", "label", "subset"], exact_match=True)),
        Check("row_count", "critical", f"between {bounds.min_rows} and {bounds.max_rows} rows",
              e.ExpectTableRowCountToBeBetween(min_value=bounds.min_rows, max_value=bounds.max_rows)),
        Check("text_not_null", "critical", "every row has a text",
              e.ExpectColumnValuesToNotBeNull(column="text")),
        Check("label_not_null", "critical", "every row has a label",
              e.ExpectColumnValuesToNotBeNull(column="label")),
        Check("text_not_blank", "critical", "no text is empty or whitespace only",
              e.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"^\s*$")),
        Check("text_length", "critical",
              f"every text has {bounds.min_text_chars} to {bounds.max_text_chars} characters",
              e.ExpectColumnValueLengthsToBeBetween(column="text", min_value=bounds.min_text_chars,
                                                    max_value=bounds.max_text_chars)),
        Check("text_unique", "critical", f"at most {bounds.max_duplicate_share:.0%} of texts are duplicates",
              e.ExpectColumnProportionOfUniqueValuesToBeBetween(column="text",
                                                                min_value=1 - bounds.max_duplicate_share)),
        Check("two_classes", "critical", "at least two classes",
              e.ExpectColumnUniqueValueCountToBeBetween(column="label", min_value=2)),
    ]
    if labels is not None:
        checks.append(Check("label_set", "critical", f"labels are among {labels}",
                            e.ExpectColumnValuesToBeInSet(column="label", value_set=labels)))
    return checks


def run_suite(frame: pd.DataFrame, checks: list[Check]) -> list[Outcome]:
    """Evaluate the checks with an ephemeral GE context (no files, no network)."""
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("lifecycle")
        .add_dataframe_asset("dataset")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="text_classification"))
    by_id: dict[str, Check] = {}
    for check in checks:
        expectation = suite.add_expectation(check.expectation)
        by_id[str(expectation.id)] = check
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="lifecycle", data=batch, suite=suite)
    )
    result = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
    outcomes = {}
    for item in result.results:
        check = by_id[str(item.expectation_config.id)]
        outcomes[check.name] = Outcome(check.name, check.severity, check.description, bool(item.success),
                                       summarise_observed(item.result))
    return [outcomes[check.name] for check in checks]  # GE returns them unordered


def summarise_observed(result: dict[str, Any]) -> Any:
    if "observed_value" in result:
        return result["observed_value"]
    summary = {key: result[key] for key in ("unexpected_count", "unexpected_percent") if key in result}
    if result.get("partial_unexpected_list"):
        summary["examples"] = [str(value)[:80] for value in result["partial_unexpected_list"][:3]]
    return summary


def check_class_shares(frame: pd.DataFrame, min_share: float) -> Outcome:
    """Per-class share bound: GE has no expectation for a share of each value."""
    shares = frame["label"].value_counts(normalize=True)
    small = {str(label): round(float(share), 4) for label, share in shares.items() if share < min_share}
    return Outcome("class_share", "critical", f"every class has at least {min_share:.0%} of the rows",
                   not small, small or {str(k): round(float(v), 4) for k, v in shares.items()})


def render_html(outcomes: list[Outcome], rows: int, source: str) -> str:
    """A self-contained page: inline CSS, no scripts, nothing fetched."""
    failed = [o for o in outcomes if not o.success and o.severity == "critical"]
    verdict = "REJECTED" if failed else "ACCEPTED"
    body = "".join(
        f"<tr class='{'ok' if o.success else o.severity}'><td>{html.escape(o.name)}</td>"
        f"<td>{o.severity}</td><td>{html.escape(o.description)}</td>"
        f"<td>{'pass' if o.success else 'FAIL'}</td><td><code>{html.escape(str(o.observed))[:400]}</code></td></tr>"
        for o in outcomes
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Data validation: {verdict}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}h1 span{{padding:.1em .5em;border-radius:4px;
color:#fff;background:{'#b3261e' if failed else '#1e7b34'}}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:.4em;text-align:left;vertical-align:top}}th{{background:#f0f0f0}}
tr.critical td{{background:#fde8e7}}tr.warning td{{background:#fff6db}}code{{font-size:.85em}}</style></head>
<body><h1>Data validation <span>{verdict}</span></h1><p>{rows} rows from <code>{html.escape(source)}</code>;
{len(outcomes)} checks, {len(failed)} critical failures.</p><table><tr><th>check</th><th>severity</th>
<th>expectation</th><th>result</th><th>observed</th></tr>{body}</table></body></html>"""


def validate_frame(frame: pd.DataFrame, settings: Settings) -> list[Outcome]:
    outcomes = run_suite(frame, build_checks(settings, known_labels(settings)))
    if len(frame):
        outcomes.append(check_class_shares(frame, settings.validate_.min_class_share))
    return outcomes


def write_reports(outcomes: list[Outcome], rows: int, source: str, report_dir: Path) -> dict[str, Any]:
    failed = [o.name for o in outcomes if not o.success and o.severity == "critical"]
    warnings = [o.name for o in outcomes if not o.success and o.severity == "warning"]
    summary = {"success": not failed, "rows": rows, "source": source, "failed": failed, "warnings": warnings,
               "checks": [asdict(o) for o in outcomes]}
    write_json(summary, report_dir / "summary.json")
    with atomic_path(report_dir / "report.html") as tmp:
        tmp.write_text(render_html(outcomes, rows, source), encoding="utf-8")
    return summary


def run(settings: Settings, data: Path, out: Path | None, report_dir: Path) -> dict[str, Any]:
    """Validate `data`; write the accepted table to `out` only if it passes."""
    if not Path(data).is_file():
        raise MlopsError(f"data file not found: {data}")
    frame = pd.read_parquet(data) if str(data).endswith(".parquet") else None
    if frame is None:
        from mlops.ingest import map_columns, read_raw

        source = settings.data.source.model_copy(update={"path": str(data)})
        frame = map_columns(read_raw(source), source, "main")
    outcomes = validate_frame(frame, settings)
    summary = write_reports(outcomes, len(frame), str(data), report_dir)
    for outcome in outcomes:
        if not outcome.success:
            print(f"validate: {outcome.severity.upper()} {outcome.name}: expected {outcome.description}; "
                  f"observed {outcome.observed}")
    if not summary["success"]:
        raise ValidationFailed(
            f"data validation failed ({', '.join(summary['failed'])}); see {report_dir / 'report.html'}"
        )
    if out is not None:
        write_table(frame, out)
    print(f"validate: {len(frame)} rows passed {len(outcomes)} checks -> {out or '(report only)'}")
    return summary
