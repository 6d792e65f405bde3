"""Which serving variant of an accepted model serves: the gate's per-variant verdicts and its choice.

A converted variant (mlops/stages/optimize.py), a distilled student's
included, is a speed-for-accuracy trade: one that loses more test accuracy
against fp32 than its limit is refused, which makes it not servable but does
not reject the model, since fp32 remains. A conversion of the candidate itself
(int8, ONNX) should lose next to nothing: `gate.max_variant_accuracy_drop_points`;
a student is a smaller model and trades more: `gate.max_student_accuracy_drop_points`. `serve.precision:
auto` serves the fastest accepted variant by the texts/s evaluate measured
side by side; a forced variant the gate refused, or one optimize did not
build, fails the gate with a reason naming it, rather than serving silently
something else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.ml.variants import STUDENT

if TYPE_CHECKING:
    from mlops.core.settings import Settings

REFERENCE = "fp32"


def drop_limit(name: str, settings: Settings) -> tuple[float, str]:
    """The accuracy points `name` may lose against fp32, and the param that says so."""
    if name.startswith(STUDENT):
        return settings.gate.max_student_accuracy_drop_points, "gate.max_student_accuracy_drop_points"
    return settings.gate.max_variant_accuracy_drop_points, "gate.max_variant_accuracy_drop_points"


def judge_variants(metrics: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Every measured variant with its verdict, and the one to serve (`serve_variant`)."""
    measured = metrics.get("variants") or {REFERENCE: {"accuracy": metrics.get("accuracy"),
                                                       "accuracy_drop_points": 0.0, "size_mb": metrics.get("size_mb")}}
    verdicts = {}
    for name, values in measured.items():
        drop = float(values["accuracy_drop_points"])
        limit, param = drop_limit(name, settings)
        accepted = name == REFERENCE or drop <= limit
        verdicts[name] = {**values, "accepted": accepted, "max_drop_points": limit,
                          "reason": "the reference" if name == REFERENCE else
                          f"loses {drop} accuracy points vs fp32 ({'<=' if accepted else '>'} {limit}, {param})"}
    wanted = settings.serve.precision
    if wanted == "auto":
        accepted = [name for name, v in verdicts.items() if v["accepted"]]
        chosen = max(accepted, key=lambda name: verdicts[name].get("texts_per_s", 0.0))
        why = (f"serve.precision auto: the fastest accepted variant ({verdicts[chosen].get('texts_per_s')} texts/s)"
               if len(accepted) > 1 else "serve.precision auto: no other variant accepted")
    else:
        chosen, why = wanted, f"forced by serve.precision {wanted}"
    return {"serve_variant": chosen, "why": why, "max_drop_points": settings.gate.max_variant_accuracy_drop_points,
            "max_student_drop_points": settings.gate.max_student_accuracy_drop_points, "variants": verdicts}


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
             "threshold": verdict["max_drop_points"],
             "rule": f"serve.precision forces {name}, which the gate refused: {verdict['reason']}", "passed": False}]


def variants_card(judged: dict[str, Any]) -> str:
    """The model card's section: every variant's size, speed, accuracy, loss and verdict, and what serves."""
    rows = "\n".join(
        f"| {name} | {v.get('size_mb', '')} | {v.get('texts_per_s', '')} | {v.get('speedup', '')} | "
        f"{v.get('accuracy', '')} | {v['accuracy_drop_points']} | {v.get('agreement_with_fp32', '')} | "
        f"{'accepted' if v['accepted'] else 'REFUSED'} |"
        for name, v in judged["variants"].items())
    return f"""## Serving variants
Serves **{judged['serve_variant']}** ({judged['why']}). A variant losing more than {judged['max_drop_points']}
accuracy points against fp32 on the test split is refused (gate.max_variant_accuracy_drop_points), a distilled
student more than {judged['max_student_drop_points']} (gate.max_student_accuracy_drop_points). Throughput:
texts/s offline, in one process, all variants interleaved on the same test texts (windows of 64, micro-batches of 8).

| variant | size MB | texts/s | x fp32 | accuracy | drop (points) | label agreement | verdict |
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}
"""
