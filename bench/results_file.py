"""Where the benchmarks write their figures: bench/results/<name>.json (git ignores the folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, result: dict[str, Any], echo: bool = True) -> Path:
    """Write `result` as bench/results/<name>.json, print it when `echo`, and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    if echo:
        print(json.dumps(result, indent=2))
    return path


def print_checks(checks: list[dict[str, Any]]) -> None:
    """One line per check: PASS, FAIL or n/a (not measured), what was observed and the target."""
    for item in checks:
        print(f"{({True: 'PASS', False: 'FAIL', None: 'n/a '})[item['passed']]}  {item['check']}: "
              f"{item['observed']} (target {item['target']})")


def finish(name: str, result: dict[str, Any]) -> None:
    """The end of a benchmark with checks: the load average at the end, the result file, the checks, its path."""
    import os

    result["machine"]["load_average_end"] = os.getloadavg()
    path = write_result(name, result, echo=False)
    print_checks(result["checks"])
    print(path)
