"""Which serving variant of an accepted model serves: the gate's per-variant verdicts and its choice.

A converted variant (mlops/stages/optimize.py), a distilled student's
included, is a speed-for-accuracy trade: one that loses more test accuracy
against fp32 than `gate.max_variant_accuracy_drop_points` is refused, which makes it not
servable but does not reject the model, since fp32 remains. `serve.precision:
auto` serves the fastest accepted variant by the texts/s evaluate measured
side by side; a forced variant the gate refused, or one optimize did not
build, fails the gate with a reason naming it, rather than serving silently
something else.
"""

from __future__ import annotations

from typing import Any

from mlops.core.settings import Settings

REFERENCE = "fp32"


def judge_variants(metrics: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Every measured variant with its verdict, and the one to serve (`serve_variant`)."""
    limit = settings.gate.max_variant_accuracy_drop_points
    measured = metrics.get("variants") or {REFERENCE: {"accuracy": metrics.get("accuracy"),
                                                       "accuracy_drop_points": 0.0, "size_mb": metrics.get("size_mb")}}
    verdicts = {}
    for name, values in measured.items():
        drop = float(values["accuracy_drop_points"])
        accepted = name == REFERENCE or drop <= limit
        verdicts[name] = {**values, "accepted": accepted,
                          "reason": "the reference" if name == REFERENCE else
                          f"loses {drop} accuracy points vs fp32 ({'<=' if accepted else '>'} {limit})"}
    wanted = settings.serve.precision
    if wanted == "auto":
        accepted = [name for name, v in verdicts.items() if v["accepted"]]
        chosen = max(accepted, key=lambda name: verdicts[name].get("texts_per_s", 0.0))
        why = (f"serve.precision auto: the fastest accepted variant ({verdicts[chosen].get('texts_per_s')} texts/s)"
               if len(accepted) > 1 else "serve.precision auto: no other variant accepted")
    else:
        chosen, why = wanted, f"forced by serve.precision {wanted}"
    return {"serve_variant": chosen, "why": why, "max_drop_points": limit, "variants": verdicts}


def forced_variant_checks(judged: dict[str, Any]) -> list[dict[str, Any]]:
    """A blocking check when serve.precision forces a variant that may not serve (refused, or never built)."""
    name = judged["serve_variant"]
    verdict = judged["variants"].get(name)
    if verdict is None:
        return [{"check": f"serve_variant {name}", "observed": "not built", "threshold": "built and measured",
                 "rule": f"serve.precision forces {name}, which optimize.variants did not build and evaluate did "
                         "not measure", "passed": False}]
    if verdict["accepted"]:
        return []
    return [{"check": f"serve_variant {name}", "observed": verdict["accuracy_drop_points"],
             "threshold": judged["max_drop_points"],
             "rule": f"serve.precision forces {name}, which the gate refused: its accuracy loss vs fp32 (points) "
                     "<= gate.max_variant_accuracy_drop_points", "passed": False}]


def variants_card(judged: dict[str, Any]) -> str:
    """The model card's section: every variant's size, speed, accuracy, loss and verdict, and what serves."""
    rows = "\n".join(
        f"| {name} | {v.get('size_mb', '')} | {v.get('texts_per_s', '')} | {v.get('speedup', '')} | "
        f"{v.get('accuracy', '')} | {v['accuracy_drop_points']} | {v.get('agreement_with_fp32', '')} | "
        f"{'accepted' if v['accepted'] else 'REFUSED'} |"
        for name, v in judged["variants"].items())
    return f"""## Serving variants
Serves **{judged['serve_variant']}** ({judged['why']}). A variant losing more than {judged['max_drop_points']}
accuracy points against fp32 on the test split is refused (gate.max_variant_accuracy_drop_points). Throughput:
texts/s offline, in one process, all variants interleaved on the same test texts (windows of 64, micro-batches of 8).

| variant | size MB | texts/s | x fp32 | accuracy | drop (points) | label agreement | verdict |
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}
"""
