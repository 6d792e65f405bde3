"""The Great Expectations suite of the validate stage: its checks, the columns they need, and one run of them.

GE has no expectation for facts across rows (a duplicate, a text with two
labels, a training text that is also a test text), so `derive_columns` adds
them as flag columns GE checks like any other. `run_suite` evaluates the
checks in an ephemeral context (no files, no network) and returns one
`Outcome` per check, in the suite's order, with the rows that broke it; what
the outcomes mean for the batch is the stage's decision (mlops/stages/validate.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlops.core.settings import Settings

ROW_ID = "_row"
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
    """One check's result: passed or not, what it observed, and the rows (of the checked frame) that broke it."""

    name: str
    kind: str
    description: str
    success: bool
    observed: Any
    rows: list[int] = field(default_factory=list, repr=False)

    @property
    def severity(self) -> str:
        """How a failure counts: critical (rejects the batch), quarantine (its rows), warning (reported only)."""
        return {"table": "critical", "row": "quarantine", "warning": "warning"}[self.kind]


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
    """The suite: the row checks that quarantine, the table checks that reject, bounded by `validate.*`."""
    import great_expectations as gx  # seconds to import: only when a suite is built, not with the module

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
    """What an expectation saw, in a line a person reads: GE's observed value, else counts and a few examples."""
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
    import great_expectations as gx  # as in build_checks: imported when the suite runs

    from mlops.adapters.great_expectations_config import silence_progress_bars  # imports GE too

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
