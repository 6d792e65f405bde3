"""One check of a decision: what was measured, against which threshold, by which rule, and whether it passed."""

from __future__ import annotations

from typing import Any


def check(name: str, observed: float, threshold: float, passed: bool, rule: str) -> dict[str, Any]:
    return {"check": name, "observed": round(float(observed), 4), "threshold": round(float(threshold), 4),
            "rule": rule, "passed": bool(passed)}
