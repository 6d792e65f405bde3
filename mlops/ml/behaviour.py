"""Behavioural tests of a classifier (CheckList style), from a YAML suite.

Aggregate metrics hide whether a model is right for the right reasons. Three
kinds of case, each a small promise about behaviour:

- min_functionality: a plain text must get its label;
- invariance: texts that differ only in what should not matter (a name, a
  typo, letter case) must all get the same label;
- directional: appending a phrase must raise (or lower) one label's
  probability.

The gate requires a minimum pass rate over all cases.
"""

from __future__ import annotations

import itertools
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlops.core.errors import MlopsError
from mlops.core.sections.base import format_validation_error


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MinimumFunctionality(Strict):
    text: str = Field(min_length=1)
    label: str


class Invariance(Strict):
    name: str
    texts: list[str] | None = Field(default=None, min_length=2)
    template: str | None = None
    fill: dict[str, list[str]] | None = None

    @model_validator(mode="after")
    def check_variants(self) -> Invariance:
        """Refuse a case that cannot make its variants when the suite loads, not after evaluate has scored."""
        if self.texts:
            return self
        if not self.template or not self.fill:
            raise ValueError(f"invariance case {self.name!r}: give `texts`, or `template` with `fill`")
        placeholders = {field for _, field, _, _ in string.Formatter().parse(self.template) if field is not None}
        if placeholders != set(self.fill):
            raise ValueError(f"invariance case {self.name!r}: template placeholders {sorted(placeholders)} "
                             f"differ from the `fill` keys {sorted(self.fill)}")
        return self

    def variants(self) -> list[str]:
        if self.texts:
            return list(self.texts)
        assert self.template and self.fill  # check_variants
        keys = list(self.fill)
        return [self.template.format(**dict(zip(keys, values, strict=True)))
                for values in itertools.product(*(self.fill[k] for k in keys))]


class Directional(Strict):
    text: str = Field(min_length=1)
    append: str = Field(min_length=1)
    label: str
    direction: Literal["up", "down"] = "up"


class Suite(Strict):
    min_functionality: list[MinimumFunctionality] = []
    invariance: list[Invariance] = []
    directional: list[Directional] = []

    def labels(self) -> set[str]:
        return {case.label for case in [*self.min_functionality, *self.directional]}


def load_suite(path: Path) -> Suite:
    path = Path(path)
    if not path.is_file():
        raise MlopsError(f"behaviour suite not found: {path}")
    try:
        return Suite.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except ValidationError as error:
        raise MlopsError(format_validation_error(error, str(path))) from None


def run_suite(suite: Suite, labels: list[str], predict_proba: Any) -> dict[str, Any]:
    """Run every case with `predict_proba(texts) -> array[n, len(labels)]`; summarise."""
    unknown = suite.labels() - set(labels)
    if unknown:
        raise MlopsError(f"behaviour suite names labels the model does not predict: {sorted(unknown)} "
                         f"(model labels: {labels})")
    results: list[dict[str, Any]] = []
    if suite.min_functionality:
        proba = predict_proba([case.text for case in suite.min_functionality])
        for case, row in zip(suite.min_functionality, proba, strict=True):
            predicted = labels[int(row.argmax())]
            results.append({"kind": "min_functionality", "case": case.text, "passed": predicted == case.label,
                            "expected": case.label, "observed": predicted})
    for case in suite.invariance:
        variants = case.variants()
        predicted = [labels[int(row.argmax())] for row in predict_proba(variants)]
        results.append({"kind": "invariance", "case": case.name, "passed": len(set(predicted)) == 1,
                        "expected": "one label for all variants",
                        "observed": dict(zip(variants, predicted, strict=True)) if len(set(predicted)) > 1
                        else predicted[0]})
    for case in suite.directional:
        before, after = predict_proba([case.text, case.text + case.append])
        index = labels.index(case.label)
        change = float(after[index] - before[index])
        passed = change > 0 if case.direction == "up" else change < 0
        results.append({"kind": "directional", "case": f"{case.text} + {case.append!r}", "passed": passed,
                        "expected": f"P({case.label}) goes {case.direction}", "observed": round(change, 4)})
    by_kind = {
        kind: {"passed": sum(r["passed"] for r in group), "total": len(group)}
        for kind, group in itertools.groupby(sorted(results, key=lambda r: r["kind"]), key=lambda r: r["kind"])
        for group in [list(group)]
    }
    total = len(results)
    return {"pass_rate": round(sum(r["passed"] for r in results) / total, 4) if total else 1.0, "cases": total,
            "by_kind": by_kind, "failures": [r for r in results if not r["passed"]]}
