"""Stage `refit`: judge on the held-out labels, then package a model that learnt from all of them.

`split` holds out `feedback.recent_share` of every labelled batch as the
recent set, so that the gate can judge the candidate on rows it never saw.
That evidence is what a promotion needs, but the held-out labels are the
scarcest data the project has. Once the gate accepts a candidate that
continued from the champion on feedback, this stage trains once more with
the same recipe (the same champion the candidate started from, the same
replay rows, epochs, learning rate and `feedback.oversample`) on every
feedback row, the recent rows included, and builds its serving variant with
the optimize stage's own conversion. Because the refit has seen the recent
rows, nothing it scores on them is evidence; its own sanity checks say only
that it is the same model, a little better informed: its test accuracy (the
original test rows, which neither model saw) drops at most
`refit_feedback.max_test_drop_points` below the judged candidate's, and at
least `refit_feedback.min_agreement` of its predictions on the test and
recent rows equal the judged candidate's, both in the serving variant the
gate chose. If either fails, the judged candidate is packaged and the record
says why. A rejected candidate, a first training (no feedback, nothing held
out from it), `refit_feedback.enabled: false`, or a distilled student
chosen to serve (distilled from the judged candidate, not from the refit):
nothing is trained, and the stage costs a file write.

The record (`--record`, and a copy in the output folder) names what package
stores: `packaged` is `refit` (with `model_dir`, `optimized_dir` and the
refit's digest), `candidate` or null (rejected), and `why`, with the checks'
figures. The model card package stores is the gate's with a section on the
refit appended (`--card-out`).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.core import registry
from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path, read_json, read_table, write_json
from mlops.core.records import GateDecision
from mlops.core.splits import FEEDBACK, RECENT
from mlops.core.stage_io import StageIO
from mlops.ml.checks import check
from mlops.ml.model import read_label_map, set_cpu_threads
from mlops.ml.training.checkpoints import checkpoints_of, run_key
from mlops.ml.training.data import encode_frame, load_splits
from mlops.ml.training.refitting import refit
from mlops.ml.training.saving import save_trained
from mlops.ml.training.start import load_base, plan_start
from mlops.ml.variant_build import build_variant
from mlops.ml.variants import load_variant, variant_form

if TYPE_CHECKING:
    from mlops.core.settings import Settings

RECORD_FILE = "refit.json"
MODEL, VARIANTS = "model", "optimized"  # the refit's weights and its serving variant, inside the output folder


class RefitIO(StageIO):
    """The gate's decision and card, train's summary, the judged candidate and its variants, the split, and
    where the refit, its record and the packaged card go."""

    stage = "refit"
    decision: Path
    train_metrics: Path
    model: Path
    split_dir: Path
    optimized_dir: Path
    out_dir: Path
    record: Path
    card: Path
    card_out: Path


def skip_reason(settings: Settings, decision: GateDecision, started_from: str, recent_rows: int) -> str | None:
    """Why nothing is refit, or None when the accepted candidate should be refit on every label."""
    if not decision.accepted:
        return "the gate rejected the candidate: nothing is refit or packaged"
    if not settings.refit_feedback.enabled:
        return "refit_feedback.enabled is false: the judged candidate is packaged"
    if started_from == "base":
        return ("the candidate was trained from the base model, not continued from the champion on feedback: "
                "no labels were held out from a recipe to refit")
    if recent_rows == 0:
        return "no recent rows were held out: the judged candidate saw every label"
    if variant_form(decision.serve_variant)[0]:
        return (f"the gate chose the distilled student ({decision.serve_variant}), which was distilled from the "
                "judged candidate: the judged candidate and its student are packaged")
    return None


def refit_rows(train_frame: pd.DataFrame, recent: pd.DataFrame, oversample: int) -> pd.DataFrame:
    """The judged candidate's training split with the recent rows added as feedback, weighted as split weighted
    the others (`feedback.oversample` copies)."""
    held_out = recent[["text", "label"]].assign(origin=FEEDBACK)
    return pd.concat([train_frame, *[held_out] * oversample], ignore_index=True)


def sanity_checks(settings: Settings, truth: np.ndarray, judged: np.ndarray, refitted: np.ndarray,
                  test_rows: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The refit against the judged candidate, from their predictions on the test rows then the recent rows
    (`truth`, `judged` and `refitted` in that order; the first `test_rows` are the test split): (checks, figures).
    """
    options = settings.refit_feedback
    test = slice(0, test_rows)
    judged_accuracy = float(np.mean(judged[test] == truth[test]))
    refit_accuracy = float(np.mean(refitted[test] == truth[test]))
    drop = (judged_accuracy - refit_accuracy) * 100
    agreement = float(np.mean(judged == refitted))
    recent = slice(test_rows, len(truth))
    figures = {"test_rows": test_rows, "recent_rows": len(truth) - test_rows,
               "judged_test_accuracy": round(judged_accuracy, 4), "refit_test_accuracy": round(refit_accuracy, 4),
               "test_drop_points": round(drop, 2), "agreement": round(agreement, 4),
               # seen in training: a fit, not evidence
               "refit_recent_accuracy_seen": round(float(np.mean(refitted[recent] == truth[recent])), 4)
               if len(truth) > test_rows else None}
    return [
        check("refit_test_accuracy_drop_points", drop, options.max_test_drop_points,
              drop <= options.max_test_drop_points,
              "the refit's test accuracy is at most max_test_drop_points below the judged candidate's"),
        check("refit_agreement_with_judged", agreement, options.min_agreement, agreement >= options.min_agreement,
              "share of identical predictions on the test and recent rows, refit vs judged candidate"),
    ], figures


def packaged_choice(checks: list[dict[str, Any]]) -> tuple[str, str]:
    """Which model package stores, and why, once a refit ran: the refit only if every sanity check passed."""
    failed = [c for c in checks if not c["passed"]]
    if not failed:
        return "refit", "every feedback row, the recent set included, went into the packaged model"
    return "candidate", "the refit failed " + "; ".join(
        f"{c['check']} (observed {c['observed']} vs {c['threshold']})" for c in failed) + ": the judged candidate " \
        "is packaged"


def predictions(model_dir: Path, variant: str, variants_dir: Path | None, texts: list[str]) -> np.ndarray:
    """Label ids the `variant` of a model predicts for `texts`."""
    classifier = load_variant(model_dir, variant, variants_dir)
    return np.argmax(classifier.predict_proba(texts), axis=1)


def train_refit(settings: Settings, split_dir: Path, started_from: str, out: Path, checkpoints: Path
                ) -> dict[str, Any]:
    """Train with the judged candidate's recipe on its rows plus the recent ones; save into `out` (checkpoints,
    which a killed run resumes from, outside the output folder that each run starts afresh)."""
    train_frame, validation_frame, labels = load_splits(settings, split_dir)
    recent = read_table(split_dir / f"{RECENT}.parquet")
    rows = refit_rows(train_frame, recent, settings.feedback.oversample)
    rows, continued, tag, start, why = plan_start(settings, rows, labels, champion_tag=started_from)
    if tag != started_from:  # the judged candidate's start must be the refit's, or it is another recipe
        raise MlopsError(f"refit: cannot continue from {started_from}, where the judged candidate started: {why}")
    print(f"refit: {why}", flush=True)
    tokenizer, _ = load_base(continued, labels, start)  # the validation rows only fill the Trainer's eval slot
    validation_set = encode_frame(tokenizer, validation_frame, labels, continued.model.max_length)
    recent_digest = hashlib.sha256((split_dir / f"{RECENT}.parquet").read_bytes()).hexdigest()
    key = run_key(continued, split_dir, tag, extra={"refit_feedback": recent_digest})
    trainer, tokenizer, done = refit(continued, labels, start, rows, validation_set, -1, key, checkpoints,
                                     stage="refit", what="every feedback row, the recent set included")
    save_trained(trainer, tokenizer, out, labels, continued, checkpoints)
    feedback = int((rows["origin"] == FEEDBACK).sum())
    return {**done, "feedback_rows": feedback // settings.feedback.oversample, "recent_rows": len(recent),
            "replay_rows": len(rows) - feedback, "epochs": continued.train.epochs, "lr": continued.train.lr,
            "started_from": tag}


def build_serving_variant(variant: str, model_dir: Path, out_dir: Path) -> None:
    """The gate's serving variant built from the refit's weights, by the optimize stage's conversion (nothing
    stored for torch's own)."""
    out_dir.mkdir(parents=True)
    if variant_form(variant)[1] in ("fp32", "torch_int8"):
        return
    with tempfile.TemporaryDirectory() as scratch:
        build_variant(variant, model_dir, out_dir, Path(scratch))


def refit_feedback(settings: Settings, decision: GateDecision, train_summary: dict[str, Any], model_dir: Path,
                   split_dir: Path, optimized_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Refit the accepted candidate on every label when its recipe held some out; the record of what package
    stores."""
    recent_path = split_dir / f"{RECENT}.parquet"
    recent_rows = len(read_table(recent_path)) if recent_path.is_file() else 0
    started_from = train_summary.get("started_from", "base")
    variant = decision.serve_variant
    record: dict[str, Any] = {"refit": False, "serve_variant": variant, "started_from": started_from,
                              "candidate_digest": decision.candidate_digest, "checks": []}
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    why = skip_reason(settings, decision, started_from, recent_rows)
    if why is not None:
        return {**record, "packaged": "candidate" if decision.accepted else None, "why": why}
    weights, variants = out_dir / MODEL, out_dir / VARIANTS
    record.update(refit=True, training=train_refit(settings, split_dir, started_from, weights,
                                                          checkpoints_of(out_dir)))
    build_serving_variant(variant, weights, variants)
    test, recent = read_table(split_dir / "test.parquet"), read_table(recent_path)
    texts = [*test["text"], *recent["text"]]
    labels = read_label_map(model_dir)["labels"]
    if read_label_map(weights)["labels"] != labels:
        raise MlopsError(f"refit: the refit's labels differ from the judged candidate's ({', '.join(labels)})")
    judged = predictions(model_dir, variant, optimized_dir, texts)
    refitted = predictions(weights, variant, variants, texts)
    ids = {label: index for index, label in enumerate(labels)}
    truth = np.array([ids.get(label, -1) for label in [*test["label"], *recent["label"]]])
    record["checks"], record["figures"] = sanity_checks(settings, truth, judged, refitted, len(test))
    record["packaged"], record["why"] = packaged_choice(record["checks"])
    if record["packaged"] == "refit":
        record.update(model_dir=str(weights), optimized_dir=str(variants), digest=registry.model_digest(weights))
    else:  # package must not find weights that failed their checks
        shutil.rmtree(weights)
        shutil.rmtree(variants)
    return record


def card_section(record: dict[str, Any]) -> str:
    """The model card's section on the refit: what was packaged, on which rows, the checks, and what the gate's
    evidence says about it."""
    lines = ["## Refit on every label", ""]
    if not record["refit"]:
        return "\n".join([*lines, f"Not refit: {record['why']}.", ""])
    training, figures = record["training"], record["figures"]
    lines.append(f"Refit from {training['started_from']} with the judged candidate's recipe on "
                 f"{training['feedback_rows']} feedback rows ({training['recent_rows']} of them the recent set the "
                 f"gate judged on) and {training['replay_rows']} replay rows, {training['epochs']} epochs at lr "
                 f"{training['lr']}. Packaged: **{record['packaged']}** ({record['why']}).")
    lines.append(f"Test accuracy (unseen by both): judged {figures['judged_test_accuracy']}, refit "
                 f"{figures['refit_test_accuracy']} ({figures['test_drop_points']} points lower); agreement with "
                 f"the judged candidate on {figures['test_rows']} test and {figures['recent_rows']} recent rows: "
                 f"{figures['agreement']}.")
    lines.append("The gate's comparison with the champion judged the candidate, not the refit: the refit has seen "
                 "the recent rows, so its figures on them are a fit, not evidence; the checks above say it is the "
                 "same model with more labels, not that it is better.")
    checks = "\n".join(f"| {c['check']} | {c['observed']} | {c['threshold']} | {'pass' if c['passed'] else 'FAIL'} |"
                       for c in record["checks"])
    return "\n".join([*lines, "", "| check | observed | threshold | result |", "| --- | --- | --- | --- |", checks,
                      ""])


def run(settings: Settings, io: RefitIO) -> dict[str, Any]:
    """Refit (or say why not), then write the record, its copy in the output folder and the packaged card."""
    set_cpu_threads()
    record_path = io.record
    record = refit_feedback(settings, GateDecision.read(io.decision), read_json(io.train_metrics), io.model,
                            io.split_dir, io.optimized_dir, io.out_dir)
    write_json(record, record_path)
    write_json(record, io.out_dir / RECORD_FILE)  # the output folder is never empty: DVC tracks it either way
    with atomic_path(io.card_out) as tmp:
        tmp.write_text(io.card.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + card_section(record),
                       encoding="utf-8")
    if record["refit"]:
        figures = record["figures"]
        print(f"refit: packaged {record['packaged']}: {record['why']}; test accuracy {figures['refit_test_accuracy']}"
              f" vs judged {figures['judged_test_accuracy']}, agreement {figures['agreement']} -> {record_path}")
    else:
        print(f"refit: not refit: {record['why']} -> {record_path}")
    return record
