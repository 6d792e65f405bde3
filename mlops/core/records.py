"""The records stages write and other code reads, each with one reader and one writer.

The gate's decision, the package result and the promotion record are typed models (`Record`): validated when
written and when read, so a reader asks for fields, never for string keys a writer may have renamed.

The evaluation metrics are two files so that `dvc exp show` stays readable: the headline figures in
`metrics/evaluate.json` and everything else (per class, per slice, confusion matrix, behaviour cases, variants) in
its detail file beside it. Readers get the whole document back from `read_metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.core.errors import MlopsError
from mlops.core.io import read_json, write_json

HEADLINE = ("rows", "accuracy", "macro_f1", "ece", "size_mb", "latency")  # one column each in `dvc exp show`



def detail_path(metrics_path: Path) -> Path:
    """metrics/evaluate.json -> metrics/evaluate_detail.json: where the per-class and per-slice figures go."""
    path = Path(metrics_path)
    return path.with_name(f"{path.stem}_detail{path.suffix}")



def write_metrics(metrics: dict[str, Any], metrics_path: Path) -> None:
    """Split the metrics in two files so `dvc exp show` stays readable: the headline figures in `metrics_path`,
    everything else (per class, per slice, confusion matrix, behaviour cases, variants) in its detail file."""
    write_json({key: metrics[key] for key in HEADLINE if key in metrics}, metrics_path)
    write_json({key: value for key, value in metrics.items() if key not in HEADLINE}, detail_path(metrics_path))



def read_metrics(metrics_path: Path, missing_ok: bool = False) -> dict[str, Any]:
    """The whole metrics document again: the headline file merged with its detail file (when there is one).

    missing_ok: no metrics yet (evaluate has not run) reads as {} rather than an error, for reports that say so."""
    if missing_ok and not Path(metrics_path).is_file():
        return {}
    metrics = read_json(metrics_path)
    detail = detail_path(metrics_path)
    return {**metrics, **read_json(detail)} if detail.is_file() else metrics


ENTRY_KEYS = ("model", "bento", "digest", "metrics", "build", "serve_variant", "refit_of")  # a registry entry's


def entry_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """What a package result and a promotion keep of a registry entry: the fields that say which model serves
    how (not when or by whom it was promoted)."""
    return {key: entry[key] for key in ENTRY_KEYS if key in entry}


class Record(BaseModel):
    """A JSON record one stage writes and others read: validated when written and when read, so a reader gets
    typed fields (never a string key that a writer renamed) and a hand-edited or foreign file fails naming it.

    Fields a writer leaves out are left out of the file too (`exclude_unset`): a record reads back as it was
    written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def read(cls, path: Path) -> Self:
        """The record at `path`; a missing, broken or foreign file is an error naming it."""
        try:
            return cls.model_validate(read_json(path))
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}"
                                 for e in error.errors())
            raise MlopsError(f"{path}: not a {cls.__name__} record: {problems}") from None

    @classmethod
    def read_if_present(cls, path: Path) -> Self | None:
        """The record at `path`, or None when no stage has written it yet."""
        return cls.read(path) if Path(path).is_file() else None

    def write(self, path: Path) -> None:
        """Write the record atomically, with the fields its writer set."""
        write_json(self.to_json(), path)

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON document its file holds."""
        return self.model_dump(mode="json", exclude_unset=True)


class Check(Record):
    """One check of a decision: what was measured, against which threshold, by which rule, and the verdict."""

    check: str
    observed: float | str | None
    threshold: float | str | None
    rule: str
    passed: bool


class GateDecision(Record):
    """The gate's decision (dvc.yaml's `gate` `--out`): read by refit, package, promotion, the approval request,
    the run record and the summary."""

    accepted: bool
    basis: str
    reasons: list[str]
    checks: list[Check] = []
    next_step: str | None = None
    champion: str | None = None
    candidate_digest: str | None = None
    comparison: dict[str, Any] | None = None  # the paired bootstrap against the champion (ml/champion_comparison)
    serve_variant: str = "fp32"
    variants: dict[str, Any] | None = None  # every serving variant judged (ml/variant_choice)
    decided_at: str | None = None
    sets: dict[str, Any] | None = None  # rows, accuracy and interval of the test and recent sets
    lineage: dict[str, Any] | None = None  # data hashes, git commit, digest and params


class PackageResult(Record):
    """What `package` did (dvc.yaml's `package` `--out`): `rejected` (nothing stored; the gate's reasons and next
    step travel on), `unchanged` (the champion again) or `candidate` (stored and built): read by `mlops promote`."""

    status: Literal["rejected", "unchanged", "candidate"]
    reasons: list[str] | None = None
    next_step: str | None = None
    model: str | None = None
    bento: str | None = None
    digest: str | None = None
    metrics: dict[str, Any] | None = None
    build: str | None = None  # the digest of what the Bento is built from besides its model
    serve_variant: str | None = None
    refit_of: str | None = None
    rebuilt: bool | None = None
    reused: bool | None = None

    def entry(self) -> dict[str, Any]:
        """The registry entry of the packaged candidate: what promotion deploys and records."""
        return entry_fields(self.to_json())


class PromotionRecord(Record):
    """What `mlops promote` (or `registry promote`) decided (reports/promotion.json): promoted or not, why, and
    the evidence: infra validation, the canary, the shadow; read by the run record and the summary."""

    promoted: bool
    reason: str
    rejected: bool | None = None  # the gate, or promote.require_shadow, refused the candidate: an outcome
    rejected_by: str | None = None
    next_step: str | None = None
    candidate: dict[str, Any] | None = None
    champion: str | None = None
    champion_before: str | None = None
    promoted_by: str | None = None
    decided_at: str | None = None
    strategy: Literal["direct", "canary"] | None = None
    infra_validation: dict[str, Any] | None = None
    canary: dict[str, Any] | str | None = None  # the canary's outcome, or why none ran
    required: dict[str, Any] | None = None  # the shadow evidence promote.require_shadow asked for
    shadow: dict[str, Any] | None = None  # the evidence the shadow had
