"""The candidate against the champion: the same rows, a paired bootstrap, the promote_if rule and the margins.

Non-inferior on the test split always (nothing forgotten, `gate.max_regression`); `gate.promote_if` on the recent
set (held-out feedback) when it holds `feedback.min_recent_rows`, with a margin of its own
(`gate.max_regression_on_recent`), else on the test split. Latency is compared side by side, the candidate as the
variant the gate chose against what the champion serves. A rejection for want of evidence says how many more texts
to label, from the evidence each comparison carries.
"""

from __future__ import annotations

import time
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.ml.checks import check
from mlops.ml.model import Classifier
from mlops.ml.paired_bootstrap import macro_f1_batch, paired_bootstrap, rows_for_gain_probability, rows_needed
from mlops.ml.scoring import score
from mlops.ml.variants import load_variant, served_variant

if TYPE_CHECKING:
    from mlops.core.settings import Settings


def regression_margin(settings: Settings, on_recent: bool) -> float:
    """How much worse than the champion a candidate may measure at the interval's lower bound: on the test split
    (thousands of rows, the original task: nothing forgotten) `gate.max_regression`; on the recent set (a few
    hundred held-out labels of the shifted traffic) `gate.max_regression_on_recent`, a margin such a set can
    bound at all."""
    return settings.gate.max_regression_on_recent if on_recent else settings.gate.max_regression



def evidence(stats: dict[str, Any], settings: Settings, minimum_rows: int = 0,
             recent_share: float | None = None) -> dict[str, Any]:
    """How many rows the observed difference needs: to be significant (`better`'s rule, at gate.confidence) and
    to pass the configured rule; with `recent_share` (the recent set), how many more labelled texts that is, as
    only that share of each labelled batch joins the recent set."""
    gate = settings.gate
    rows, difference, low = stats["rows"], stats["difference"], stats["ci_low"]
    margin = regression_margin(settings, on_recent=recent_share is not None)
    non_inferior = rows_needed(rows, difference, low, -margin) if difference > 0 else None
    gain = rows_for_gain_probability(rows, difference, low, gate.confidence, gate.min_gain_probability)
    by_rule = {"better": rows_needed(rows, difference, low),
               "non_inferior": non_inferior,
               "expected_gain": None if non_inferior is None or gain is None else max(non_inferior, gain)}

    def needs(needed: int | None) -> dict[str, Any]:
        if needed is None:
            return {"rows_needed": None, "more_rows": None, "more_labels": None}
        more = max(0, needed - rows, minimum_rows - rows)
        return {"rows_needed": max(needed, minimum_rows), "more_rows": more,
                "more_labels": ceil(more / recent_share) if recent_share else None}

    significant, rule = needs(by_rule["better"]), needs(by_rule[gate.promote_if])
    on = "recent rows" if recent_share else "test rows"
    if significant["rows_needed"] is None:
        note = (f"the observed macro-F1 difference ({difference}) is no gain: more rows cannot show it "
                "significant")
    else:
        note = (f"a gain of {difference} would be significant at {gate.confidence:.0%} with about "
                f"{significant['rows_needed']} {on} ({rows} now)")
        if significant["more_labels"]:
            note += (f": about {significant['more_labels']} more labelled texts, of which "
                     f"feedback.recent_share ({recent_share}) join the recent set")
    return {"rows": rows, "rule": gate.promote_if, "significant": significant, "by_rule": rule, "note": note}



def side_by_side_latency(candidate: Classifier, champion: Classifier, texts: list[str],
                          samples: int, repeats: int = 3) -> dict[str, Any]:
    """Single-text p50/p95 of both models over the same texts, each text timed as the best of `repeats` runs.

    Another process on the cores only ever adds time, at random moments: it turned a p95 taken over single runs
    into a draw (a twin of the champion measured 2.2x slower with two busy loops beside it). The fastest of a few
    back-to-back runs of one text is the model's own cost for that text; the spread of those costs across texts
    (their lengths) is the tail the comparison is about. Both models run each text in turn, alternating which
    goes first, so a slow spell costs both the same.
    """
    texts = (texts * (samples // max(1, len(texts)) + 1))[:samples]
    for text in texts[:5]:
        candidate.predict_proba([text])
        champion.predict_proba([text])
    timings: dict[str, list[float]] = {"candidate": [], "champion": []}
    order = (("candidate", candidate), ("champion", champion))
    for i, text in enumerate(texts):
        best = {"candidate": float("inf"), "champion": float("inf")}
        for repeat in range(repeats):
            for name, model in order if (i + repeat) % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                model.predict_proba([text])
                best[name] = min(best[name], (time.perf_counter() - started) * 1000)
        for name, value in best.items():
            timings[name].append(value)
    p95 = {name: float(np.percentile(values, 95)) for name, values in timings.items()}
    return {"candidate_p95_ms": round(p95["candidate"], 2), "champion_p95_ms": round(p95["champion"], 2),
            "candidate_p50_ms": round(float(np.percentile(timings["candidate"], 50)), 2),
            "champion_p50_ms": round(float(np.percentile(timings["champion"], 50)), 2),
            "ratio": round(p95["candidate"] / max(p95["champion"], 1e-9), 3), "samples": len(texts),
            "repeats": repeats}



def latency_check(candidate_dir: Path, champion_dir: Path, texts: list[str], settings: Settings,
                  variant: str = "fp32", optimized_dir: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The candidate's p95 over the champion's, measured side by side as each would serve: the candidate as the
    variant the gate chose (its files in `optimized_dir`), the champion as the variant it serves (stored inside it).
    A model serving an int8 student is compared with what actually answers, not with its fp32 teacher."""
    candidate = load_variant(candidate_dir, variant, variants_dir=optimized_dir)
    champion_variant = served_variant(champion_dir, "auto")
    champion = load_variant(champion_dir, champion_variant)
    measured = side_by_side_latency(candidate, champion, texts, settings.evaluate.latency_samples)
    measured.update({"candidate_variant": variant, "champion_variant": champion_variant})
    ratio = settings.gate.max_latency_ratio
    return check("max_latency_ratio", measured["ratio"], ratio, measured["ratio"] <= ratio,
                 f"candidate p95 ({variant}) / champion p95 ({champion_variant}), single texts, measured side by "
                 "side <= threshold"), measured



def paired_comparison(classifier: Classifier, tag: str, scored: pd.DataFrame, labels: list[str],
                      settings: Settings, on_recent: bool = False) -> dict[str, Any]:
    """Champion and challenger on the same rows: both macro-F1s and accuracies, and the paired bootstrap."""
    champion_scored = score(classifier, scored[["text", "label"]])
    ids = {label: i for i, label in enumerate(labels)}
    truth = scored["label"].map(ids).to_numpy()
    challenger = scored["prediction"].map(ids).to_numpy()
    champion = champion_scored["prediction"].map(ids).to_numpy()
    gate = settings.gate
    stats = paired_bootstrap(truth, champion, challenger, len(labels), gate.bootstrap_samples, gate.confidence,
                             settings.seed)
    margin = regression_margin(settings, on_recent)
    verdict = "better" if stats["ci_low"] > 0 else "non_inferior" if stats["ci_low"] > -margin else "worse"
    return {"champion": tag, "verdict": verdict, "rows": len(truth), "margin": margin,
            "champion_macro_f1": round(float(macro_f1_batch(truth[None], champion[None], len(labels))[0]), 4),
            "challenger_macro_f1": round(float(macro_f1_batch(truth[None], challenger[None], len(labels))[0]), 4),
            "champion_accuracy": round(float((champion == truth).mean()), 4),
            "challenger_accuracy": round(float((challenger == truth).mean()), 4), **stats}



def rule_checks(stats: dict[str, Any], settings: Settings, level: str, on_recent: bool) -> list[dict[str, Any]]:
    """`gate.promote_if` on one set's paired comparison. On the test split, non-inferiority is
    `no_regression_vs_champion`, which applies whatever the rule; on the recent set it is a check of its own."""
    gate = settings.gate
    suffix = "_on_recent" if on_recent else "_vs_champion"
    if gate.promote_if == "better":
        return [check("better_than_champion" + ("_on_recent" if on_recent else ""), stats["ci_low"], 0.0,
                      stats["ci_low"] > 0, f"lower bound of the {level} > 0 (a significant improvement)")]
    then = (f"and gain{suffix}: the point estimate > 0" if gate.promote_if == "non_inferior"
            else f"and gain_probability{suffix}: P(gain) >= min_gain_probability")
    margin = regression_margin(settings, on_recent=True)
    checks = [check("non_inferior_on_recent", stats["ci_low"], -margin, stats["ci_low"] > -margin,
                    f"lower bound of the {level} > -max_regression_on_recent ({gate.promote_if}: {then})")
              ] if on_recent else []
    if gate.promote_if == "non_inferior":
        checks.append(check("gain" + suffix, stats["difference"], 0.0, stats["difference"] > 0,
                            f"point estimate of the macro-F1 difference on the {stats['rows']} rows > 0 "
                            "(non_inferior: not worse beyond the margin, and better as measured)"))
    else:
        checks.append(check("gain_probability" + suffix, stats["p_gain"], gate.min_gain_probability,
                            stats["p_gain"] >= gate.min_gain_probability,
                            f"share of the {stats['samples']} paired bootstrap resamples of the {stats['rows']} rows "
                            "in which the candidate's macro-F1 is higher >= min_gain_probability"))
    return checks



def compare_with_champion(champion_dir: Path, tag: str, scored_test: pd.DataFrame, labels: list[str],
                          settings: Settings, scored_recent: pd.DataFrame | None = None,
                          candidate_dir: Path | None = None, variant: str = "fp32",
                          optimized_dir: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Non-inferior on the test split always; `promote_if` on the recent set when it is large enough to show a
    difference, else (said so in the comparison) on the test split as before. Each set's comparison says how
    many rows (on the recent set: labelled texts) its difference needs to be shown significant."""
    classifier = Classifier.load(champion_dir)
    comparison = paired_comparison(classifier, tag, scored_test, labels, settings)
    comparison["evidence"] = evidence(comparison, settings)
    gate = settings.gate
    level = f"{gate.confidence:.0%} CI of the macro-F1 difference vs {tag}"
    checks = [check("no_regression_vs_champion", comparison["ci_low"], -gate.max_regression,
                    comparison["ci_low"] > -gate.max_regression, f"lower bound of the {level} > -max_regression "
                                                                 "(on the test split: nothing forgotten)")]
    judged_on_recent = False
    if scored_recent is not None and len(scored_recent):
        recent = paired_comparison(classifier, tag, scored_recent, labels, settings, on_recent=True)
        minimum = settings.feedback.min_recent_rows
        recent["evidence"] = evidence(recent, settings, minimum, settings.feedback.recent_share)
        if len(scored_recent) < minimum:
            recent["too_small"] = (f"{len(scored_recent)} recent rows, fewer than feedback.min_recent_rows "
                                   f"({minimum}): too small to show a difference; judged on the test split alone")
        else:
            judged_on_recent = True
            checks += rule_checks(recent, settings, f"{level} on the {len(scored_recent)} recent (held-out "
                                                    "feedback) rows", on_recent=True)
        comparison["recent"] = recent
    if not judged_on_recent:
        checks += rule_checks(comparison, settings, level, on_recent=False)
    comparison["judged_on"] = "recent" if judged_on_recent else "test"
    if candidate_dir is not None:
        latency, comparison["latency"] = latency_check(candidate_dir, champion_dir,
                                                       scored_test["text"].head(200).tolist(), settings,
                                                       variant, optimized_dir)
        checks.append(latency)
    return checks, comparison



# The checks `promote_if` adds: when only these failed, what the candidate lacks is evidence (or a gain at all)
RULE_CHECKS = ("better_than_champion", "better_than_champion_on_recent", "non_inferior_on_recent", "gain_vs_champion",
               "gain_on_recent", "gain_probability_vs_champion", "gain_probability_on_recent")



def labelling_queue(settings: Settings) -> tuple[int | None, Path]:
    """Rows in the labelling queue monitoring (or `mlops feedback queue`) wrote last, and its path."""
    path = Path(settings.feedback.queue_dir) / "queue.csv"
    return (len(pd.read_csv(path, dtype=str)) if path.is_file() else None), path



def accepting_rule(comparison: dict[str, Any], settings: Settings) -> str | None:
    """Another `promote_if` that the judged set's evidence, as it is, would pass; None if none would."""
    on_recent = comparison.get("judged_on") == "recent"
    stats = comparison["recent"] if on_recent else comparison
    gate, margin = settings.gate, regression_margin(settings, on_recent)
    passes = {"non_inferior": stats["ci_low"] > -margin and stats["difference"] > 0,
              "expected_gain": stats["ci_low"] > -margin and stats["p_gain"] >= gate.min_gain_probability}
    return next((rule for rule, ok in passes.items() if ok and rule != gate.promote_if), None)



def next_step(failed: list[dict[str, Any]], comparison: dict[str, Any] | None, settings: Settings) -> str | None:
    """What to do about a rejection. For want of evidence (only the `promote_if` checks failed, and the gain was
    observed): how many more texts to label, the queue, and how to accept the evidence as it is by hand."""
    if not failed:
        return None
    names = [c["check"] for c in failed]
    keep = "the champion keeps serving"
    if comparison is None or not set(names) <= set(RULE_CHECKS):
        return (f"not good enough ({', '.join(names)}): change the data or the training and run again "
                f"(make run); {keep}")
    judged = comparison["recent"] if comparison.get("judged_on") == "recent" else comparison
    rule = judged["evidence"]["by_rule"]
    if rule["rows_needed"] is None:
        return f"no gain was observed ({judged['evidence']['note']}): {keep}"
    queued, path = labelling_queue(settings)
    feedback = settings.feedback
    if comparison.get("judged_on") == "recent":
        labels = rule["more_labels"]
    else:  # no recent set large enough yet: labels enough for one to decide
        have = (comparison.get("recent") or {}).get("rows", 0)
        labels = ceil(max(feedback.min_recent_rows - have, 0) / feedback.recent_share)
        if comparison.get("recent"):
            labels = max(labels, comparison["recent"]["evidence"]["by_rule"]["more_labels"] or 0)
    labels = max(labels or 0, 1)  # at the boundary the estimate rounds to none: one more batch decides
    queue = (f"the queue has {queued}: {path}" if queued is not None
             else f"no queue yet: `mlops feedback queue` writes it to {path}")
    if queued is not None and labels > queued >= feedback.queue_size:  # the queue is full, not the traffic short
        queue += f"; a larger feedback.queue_size (now {feedback.queue_size}) queues more"
    step = f"label about {labels} more texts ({queue}) and run again (mlops retrain-on-drift, or make run)"
    other = accepting_rule(comparison, settings)
    if other:
        step += (f", or accept this evidence by hand: set gate.promote_if: {other} in params.yaml and make run "
                 "(only gate, package and promote run again; the change stays in git's history)")
    return f"{step}; {keep}"
