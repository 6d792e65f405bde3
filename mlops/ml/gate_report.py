"""The gate's decision in words: one reason per failed check, and the model card.

`reason` is the only place a failed check is written out: the decision's `reasons`, the task logs, alerts, the
approval request and the Airflow run's note all read what it wrote.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlops.ml.champion_comparison import RULE_CHECKS
from mlops.ml.variant_choice import variants_card

if TYPE_CHECKING:
    from mlops.core.settings import Settings

MINUS = "\u2212"  # a reason is read by people: a real minus sign, never a hyphen



# An absolute check: what it measured on the candidate, and how it compares with its threshold
ABSOLUTE = {"min_accuracy": ("accuracy", ">="), "min_macro_f1": ("macro-F1", ">="),
            "min_class_recall": ("lowest class recall", ">="),
            "max_latency_p95_ms": ("single-text CPU latency p95 (ms, absolute)", "<="),
            "max_model_mb": ("size on disk (MB)", "<="),
            "min_behaviour_pass_rate": ("share of behavioural tests passed", ">=")}



def signed(value: float) -> str:
    """+0.022, \u22120.031: the sign always shown, as a difference reads."""
    return f"{value:+g}".replace("-", MINUS) if value else "0"



def reason(failed: dict[str, Any], comparison: dict[str, Any] | None, metrics: dict[str, Any]) -> str:
    """One failed check in words: the metric, the set it was measured on (and its rows), candidate against
    champion with both values and the interval, and what it needed. The only place a reason is written: the
    decision's `reasons`, the task logs, alerts, the approval request and the run's note all read these."""
    name, observed, threshold = failed["check"], failed["observed"], failed["threshold"]
    if name in ABSOLUTE:
        what, op = ABSOLUTE[name]
        if name == "min_class_recall":
            worst = min(metrics["per_class"], key=lambda label: metrics["per_class"][label]["recall"])
            what += f" (class {worst})"
        where = ("" if name in ("max_model_mb", "min_behaviour_pass_rate") else
                 f" on the {metrics['rows']} test rows")
        return f"{name}: the candidate's {what}{where}: {observed}, needs {op} {threshold}"
    if comparison is not None and name == "max_latency_ratio" and comparison.get("latency"):
        latency = comparison["latency"]
        return (f"{name}: p95 single-text latency candidate ({latency['candidate_variant']}) / champion "
                f"{comparison['champion']} ({latency['champion_variant']}), {latency['samples']} texts measured side "
                f"by side: {observed} ({latency['candidate_p95_ms']} vs {latency['champion_p95_ms']} ms), needs <= "
                f"{threshold}")
    if comparison is not None and name in RULE_CHECKS + ("no_regression_vs_champion",):
        on_recent = name.endswith("_on_recent")
        stats = comparison["recent"] if on_recent else comparison
        rows = f"the {stats['rows']} {'recent' if on_recent else 'test'} rows"
        interval = (f"{stats['confidence']:.0%} CI {signed(stats['ci_low'])} to {signed(stats['ci_high'])}; "
                    f"macro-F1 {stats['challenger_macro_f1']} vs {stats['champion_macro_f1']}")
        measured = f"{signed(stats['difference'])} ({interval})"
        versus = f"candidate {MINUS} champion {comparison['champion']}"
        if name.startswith("gain_probability"):
            return (f"{name}: share of {stats['samples']} paired bootstrap resamples of {rows} in which the "
                    f"candidate's macro-F1 beats champion {comparison['champion']}'s: {observed} (difference "
                    f"{signed(stats['difference'])}, {interval}), needs >= {threshold}")
        needs = "the difference > 0" if name.startswith("gain") else f"lower bound > {signed(threshold)}"
        return f"{name}: macro-F1 difference {versus} on {rows}: {measured}, needs {needs}"
    return f"{name}: observed {observed} vs {threshold} ({failed['rule']})"



def recent_lines(metrics: dict[str, Any], comparison: dict[str, Any] | None) -> str:
    """The recent set (held-out feedback) in the card: the candidate's accuracy and, against the champion, the
    paired comparison, or why it did not decide."""
    test_ci = metrics.get("accuracy_ci")
    lines = [f"Test split: {metrics['rows']} rows, accuracy {metrics['accuracy']}"
             + (f" (95% CI {test_ci[0]}-{test_ci[1]})" if test_ci else "") + "."]
    recent = metrics.get("recent")
    if not recent:
        lines.append("Recent set: none (no labelled feedback batches yet).")
        return "\n".join(lines)
    lines.append(f"Recent set (held-out feedback of {len(recent['batches'])} batch(es)): {recent['rows']} rows, "
                 f"accuracy {recent['accuracy']} (95% CI {recent['accuracy_ci'][0]}-{recent['accuracy_ci'][1]}), "
                 f"macro-F1 {recent['macro_f1']}.")
    on_recent = (comparison or {}).get("recent")
    if on_recent:
        lines.append(f"Against {on_recent['champion']} on the recent set: accuracy {on_recent['challenger_accuracy']} "
                     f"vs {on_recent['champion_accuracy']}, macro-F1 difference {on_recent['difference']} "
                     f"({on_recent['confidence']:.0%} CI {on_recent['ci_low']} to {on_recent['ci_high']}, paired "
                     f"bootstrap over {on_recent['rows']} rows): **{on_recent['verdict']}**"
                     + (f" ({on_recent['too_small']})" if on_recent.get("too_small") else "") + "."
                     + (f" Evidence: {on_recent['evidence']['note']}." if on_recent.get("evidence") else ""))
    return "\n".join(lines)



def model_card(settings: Settings, metrics: dict[str, Any], decision: dict[str, Any],
               origin: dict[str, Any]) -> str:
    verdict = "ACCEPTED" if decision["accepted"] else "REJECTED"
    per_class = "\n".join(f"| {label} | {v['precision']} | {v['recall']} | {v['f1']} | {v['support']} |"
                          for label, v in metrics["per_class"].items())
    slices = "\n".join(f"| {name} | {v['rows']} | {v['accuracy']} | {v['macro_f1']} |"
                       for name, v in metrics["slices"].items())
    checks = "\n".join(f"| {c['check']} | {c['observed']} | {c['threshold']} | {'pass' if c['passed'] else 'FAIL'} |"
                       for c in decision["checks"])
    worst = min(metrics["slices"].items(), key=lambda item: item[1]["accuracy"])
    calibration = "reasonably" if metrics["ece"] < 0.05 else "not well"
    failures = "\n".join(f"- {f['kind']}: {f['case']} (expected {f['expected']}, got {f['observed']})"
                         for f in metrics["behaviour"]["failures"][:10]) or "- none"
    comparison = decision["comparison"]
    compared = (f"Against {comparison['champion']}: macro-F1 {comparison['challenger_macro_f1']} vs "
                f"{comparison['champion_macro_f1']}, difference {comparison['difference']} "
                f"({comparison['confidence']:.0%} CI {comparison['ci_low']} to {comparison['ci_high']}, "
                f"paired bootstrap over {comparison['rows']} test rows): **{comparison['verdict']}**."
                if comparison else "No comparison with a champion: " + decision["basis"] + ".")
    compared += "\n" + recent_lines(metrics, comparison)
    next_line = f"\nNext step: {decision['next_step']}." if decision.get("next_step") else ""
    return f"""# Model card: text classifier `{decision['candidate_digest'][:12]}`

Gate decision: **{verdict}** ({decision['basis']}), {decision['decided_at']}.
{compared}{next_line}

## Intended use
Classifies short English texts into one of: {', '.join(metrics['labels'])}. Trained on
`{origin['data']['source']}`; it is meant for texts like those, as a triage aid whose
predictions carry a probability. It is not meant for other languages or label sets, or for
decisions about people without human review.

## Limits
- Weakest text-length slice: {worst[0]} (accuracy {worst[1]['accuracy']} on {worst[1]['rows']} rows).
- Expected calibration error {metrics['ece']}: probabilities are {calibration} calibrated.
- Texts longer than {settings.model.max_length} tokens are truncated.
- Behavioural tests passed: {metrics['behaviour']['pass_rate']:.0%} of {metrics['behaviour']['cases']}; failures:
{failures}

## Lineage
- Data: `{origin['data']['source']}`; train split md5 `{origin['data']['train_md5']}`, scored test split md5
  `{origin['data']['test_md5']}` (the hashes DVC records).
- Code: git commit `{origin['git_commit']}`.
- Base model: `{settings.model.base}`; training: {json.dumps(settings.train.model_dump())}.

## Metrics (test split, {metrics['rows']} rows)
Accuracy {metrics['accuracy']}, macro-F1 {metrics['macro_f1']}, ECE {metrics['ece']}, single-text CPU latency
p50 {metrics['latency']['p50_ms']} ms / p95 {metrics['latency']['p95_ms']} ms, size {metrics['size_mb']} MB.

| class | precision | recall | F1 | support |
| --- | --- | --- | --- | --- |
{per_class}

| slice | rows | accuracy | macro-F1 |
| --- | --- | --- | --- |
{slices}

## Gate checks
| check | observed | threshold | result |
| --- | --- | --- | --- |
{checks}

{variants_card(decision["variants"]) if decision.get("variants") else ""}"""
