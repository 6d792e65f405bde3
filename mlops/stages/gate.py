"""Stage `gate`: promote only a model that is good enough and beats the champion.

Every check is written down with its observed value, threshold and verdict, so
that a decision explains itself, and a model card records what was decided on
which data, code and parameters. With no champion yet the absolute thresholds
decide alone, and the decision says so rather than silently skipping the
comparison. Against a champion, both models are scored on the same test rows
and the macro-F1 difference is judged with a paired bootstrap: a difference
inside the noise is neither a regression nor an improvement. Latency is judged
the same way, relative to the champion: both models answer the same single
texts, interleaved, in this process, so a busy machine slows both alike and
the ratio of their p95s holds where an absolute p95 does not (an absolute
threshold stays available, opt-in, as `gate.max_latency_p95_ms`).
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops.core import registry
from mlops.core.io import atomic_path, file_digest, read_table
from mlops.core.records import GateDecision, read_metrics
from mlops.core.stage_io import StageIO
from mlops.ml.champion_comparison import compare_with_champion, next_step
from mlops.ml.checks import check
from mlops.ml.gate_report import model_card, reason
from mlops.ml.model import read_label_map, set_cpu_threads
from mlops.ml.tracking import log_stage_metrics
from mlops.ml.variant_choice import forced_variant_checks, judge_variants

if TYPE_CHECKING:
    from mlops.core.settings import Settings


def absolute_checks(metrics: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    gate = settings.gate
    recalls = {label: values["recall"] for label, values in metrics["per_class"].items()}
    worst = min(recalls, key=recalls.get)
    p95, size = metrics["latency"]["p95_ms"], metrics["size_mb"]
    latency = [] if gate.max_latency_p95_ms is None else [
        check("max_latency_p95_ms", p95, gate.max_latency_p95_ms, p95 <= gate.max_latency_p95_ms,
              "single-text CPU latency p95 <= threshold (absolute: depends on the machine's load)")]
    behaviour = metrics["behaviour"]["pass_rate"]
    return [
        check("min_accuracy", metrics["accuracy"], gate.min_accuracy, metrics["accuracy"] >= gate.min_accuracy,
              "accuracy >= threshold"),
        check("min_macro_f1", metrics["macro_f1"], gate.min_macro_f1, metrics["macro_f1"] >= gate.min_macro_f1,
              "macro-F1 >= threshold"),
        check("min_class_recall", recalls[worst], gate.min_class_recall, recalls[worst] >= gate.min_class_recall,
              f"every class's recall >= threshold (lowest: {worst})"),
        *latency,
        check("max_model_mb", size, gate.max_model_mb, size <= gate.max_model_mb, "size on disk <= threshold"),
        check("min_behaviour_pass_rate", behaviour, gate.min_behaviour_pass_rate,
              behaviour >= gate.min_behaviour_pass_rate, "behavioural tests passed >= threshold"),
    ]


def decide(settings: Settings, metrics: dict[str, Any], model_dir: Path, scored_test: Path,
           scored_recent: Path | None = None, optimized_dir: Path | None = None) -> dict[str, Any]:
    checks = absolute_checks(metrics, settings)
    judged = judge_variants(metrics, settings)
    checks += forced_variant_checks(judged)
    current = registry.champion()
    digest = registry.model_digest(model_dir)
    comparison = None
    if current is None:
        basis = "first run: no champion yet, absolute thresholds alone"
    elif digest in (current.get("digest"), current.get("refit_of")):  # it, or the refit packaged in its place
        basis = f"the candidate is already the champion ({current['model']}): absolute thresholds alone"
    else:
        champion_dir = registry.model_path(current["model"])
        champion_labels = read_label_map(champion_dir)["labels"]
        if sorted(champion_labels) != sorted(metrics["labels"]):
            basis = (f"the champion {current['model']} predicts other labels ({', '.join(champion_labels)}): "
                     "not comparable, absolute thresholds alone")
        else:
            basis = f"absolute thresholds and a paired bootstrap against the champion {current['model']}"
            recent = read_table(scored_recent) if scored_recent is not None and Path(scored_recent).is_file() \
                else None
            more, comparison = compare_with_champion(champion_dir, current["model"], read_table(scored_test),
                                                     metrics["labels"], settings, recent, candidate_dir=model_dir,
                                                     variant=judged["serve_variant"], optimized_dir=optimized_dir)
            checks += more
    failed = [c for c in checks if not c["passed"]]
    reasons = [reason(c, comparison, metrics) for c in failed]
    return {
        "accepted": not failed,
        "basis": basis,
        "next_step": next_step(failed, comparison, settings),
        "champion": None if current is None else current["model"],
        "candidate_digest": digest,
        "comparison": comparison,
        "checks": checks,
        "reasons": reasons or ["all checks passed"],
        "serve_variant": judged["serve_variant"],
        "variants": judged,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def file_md5(path: Path) -> str:
    """The hash DVC records for a file: the md5 of its bytes."""
    return file_digest(path, "md5")


def git_commit() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def lineage(settings: Settings, train_path: Path, scored_test: Path, decision: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"source": settings.data.source.path, "train_md5": file_md5(train_path),
                     "test_md5": file_md5(scored_test)},
            "git_commit": git_commit(), "digest": decision["candidate_digest"],
            "params": settings.model_dump(mode="json", by_alias=True, include={"seed", "data", "model", "train"})}


class GateIO(StageIO):
    """The candidate, its metrics and scored sets in; the decision and the model card out (dvc.yaml's `gate`)."""

    stage: ClassVar[str] = "gate"
    metrics: Path
    model: Path
    scored_test: Path
    train: Path
    out: Path
    card: Path
    scored_recent: Path | None = None
    optimized_dir: Path | None = None


def run(settings: Settings, io: GateIO) -> GateDecision:
    metrics_path, model_dir, scored_test, train_path = io.metrics, io.model, io.scored_test, io.train
    out, card_path, scored_recent, optimized_dir = io.out, io.card, io.scored_recent, io.optimized_dir
    set_cpu_threads()
    metrics = read_metrics(metrics_path)  # the headline and its per-class/per-slice detail
    decision = decide(settings, metrics, model_dir, scored_test, scored_recent, optimized_dir)
    decision["sets"] = {"test": {"rows": metrics["rows"], "accuracy": metrics["accuracy"],
                                 "accuracy_ci": metrics.get("accuracy_ci")},
                        "recent": {key: metrics["recent"][key] for key in ("rows", "accuracy", "accuracy_ci")}
                        if metrics.get("recent") else None}
    decision["lineage"] = lineage(settings, train_path, scored_test, decision)
    record = GateDecision.model_validate(decision)  # what refit, package and promotion will read
    record.write(out)
    with atomic_path(card_path) as tmp:
        tmp.write_text(model_card(settings, metrics, decision, decision["lineage"]), encoding="utf-8")
    verdict = "ACCEPTED" if decision["accepted"] else "REJECTED"
    refused = [name for name, v in decision["variants"]["variants"].items() if not v["accepted"]]
    print(f"gate: {verdict} ({decision['basis']}): {'; '.join(decision['reasons'])} -> {out}, {card_path}")
    evidence_of = (decision["comparison"] or {}).get("recent") or decision["comparison"]
    if evidence_of:
        print(f"gate: evidence: {evidence_of['evidence']['note']}")
    if decision["next_step"]:
        print(f"gate: next step: {decision['next_step']}")
    print(f"gate: serve variant {decision['serve_variant']} ({decision['variants']['why']})"
          + (f"; refused: {', '.join(refused)}" if refused else ""))
    log_stage_metrics(model_dir, "gate", {"accepted": decision["accepted"], "sets": decision["sets"],
                                          "comparison": decision.get("comparison") or {}})
    return record
