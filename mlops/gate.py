"""Stage `gate`: promote only a model that is good enough and no worse than the champion.

Every check is written down with its observed value, threshold and verdict, so
that a rejection explains itself. With no champion yet, the absolute
thresholds decide alone, and the decision says so rather than silently
skipping the comparison. The champion is re-scored on the candidate's test
rows, so the two are compared on the same examples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops import registry
from mlops.evaluate import compute_metrics, score
from mlops.io import read_json, read_table, write_json
from mlops.model import LABEL_MAP, Classifier, set_cpu_threads
from mlops.settings import Settings


def check(name: str, observed: float, threshold: float, passed: bool, rule: str) -> dict[str, Any]:
    return {"check": name, "observed": round(observed, 4), "threshold": round(threshold, 4), "rule": rule,
            "passed": bool(passed)}


def absolute_checks(metrics: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    gate = settings.gate
    return [
        check("min_accuracy", metrics["accuracy"], gate.min_accuracy, metrics["accuracy"] >= gate.min_accuracy,
              "accuracy >= threshold"),
        check("min_macro_f1", metrics["macro_f1"], gate.min_macro_f1, metrics["macro_f1"] >= gate.min_macro_f1,
              "macro-F1 >= threshold"),
    ]


def champion_checks(champion_dir: Path, tag: str, test_path: Path, challenger_f1: float,
                    settings: Settings) -> list[dict[str, Any]]:
    """Re-score the champion on the same test rows; bound the challenger's regression."""
    test = read_table(test_path)
    classifier = Classifier.load(champion_dir)
    champion_f1 = compute_metrics(score(classifier, test), classifier.labels)["macro_f1"]
    floor = champion_f1 - settings.gate.max_regression
    return [check("no_regression_vs_champion", challenger_f1, floor, challenger_f1 >= floor,
                  f"macro-F1 >= champion {tag}'s {champion_f1:.4f} - {settings.gate.max_regression}")]


def decide(settings: Settings, metrics: dict[str, Any], model_dir: Path, test_path: Path) -> dict[str, Any]:
    checks = absolute_checks(metrics, settings)
    current = registry.champion()
    digest = registry.model_digest(model_dir)
    if current is None:
        basis = "first run: no champion yet, absolute thresholds alone"
    elif current.get("digest") == digest:
        basis = f"the candidate is already the champion ({current['model']}): absolute thresholds alone"
    else:
        champion_dir = registry.model_path(current["model"])
        champion_labels = json.loads((champion_dir / LABEL_MAP).read_text())["labels"]
        if sorted(champion_labels) != sorted(metrics["labels"]):
            basis = (f"the champion {current['model']} predicts other labels ({', '.join(champion_labels)}): "
                     "not comparable, absolute thresholds alone")
        else:
            basis = f"absolute thresholds and the champion {current['model']}"
            checks += champion_checks(champion_dir, current["model"], test_path, metrics["macro_f1"], settings)
    failed = [c for c in checks if not c["passed"]]
    reasons = [f"{c['check']}: observed {c['observed']} vs {c['threshold']} ({c['rule']})" for c in failed]
    return {
        "accepted": not failed,
        "basis": basis,
        "champion": None if current is None else current["model"],
        "candidate_digest": digest,
        "checks": checks,
        "reasons": reasons or ["all checks passed"],
    }


def run(settings: Settings, metrics_path: Path, model_dir: Path, test_path: Path, out: Path) -> dict[str, Any]:
    set_cpu_threads()
    decision = decide(settings, read_json(metrics_path), model_dir, test_path)
    write_json(decision, out)
    verdict = "ACCEPTED" if decision["accepted"] else "REJECTED"
    print(f"gate: {verdict} ({decision['basis']}): {'; '.join(decision['reasons'])} -> {out}")
    return decision
