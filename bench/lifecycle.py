"""Benchmark: the lifecycle's wall time on the offline default, and a no-op re-run.

Runs in a fresh copy of the project (its own DVC cache, BentoML store), so the
figures are those of a first `make run` on a new machine. Writes
bench/results/lifecycle.json.

    .venv/bin/python bench/lifecycle.py [--preset configs/ag_news.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import write_result  # noqa: E402

from tests.helpers import BIN, copy_project, project_env  # noqa: E402


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", type=Path, help="a params preset to apply first, e.g. configs/ag_news.yaml")
    parser.add_argument("--keep", type=Path, help="run in this new directory and keep it (the serving and "
                                                  "monitoring benchmarks reuse its champion)")
    args = parser.parse_args()
    # beside the project, so that relative paths such as ../shared/data resolve as they do from it
    with tempfile.TemporaryDirectory(dir=ROOT.parent, prefix=f"{ROOT.name}-bench-") as tmp:
        project = Path(tmp) if args.keep is None else args.keep.resolve()
        if args.keep is not None:
            if project.exists() or project.parent != ROOT.parent:
                parser.error(f"--keep: give a new directory beside the project, in {ROOT.parent}")
            project.mkdir()
        copy_project(project)
        env = project_env(project)  # what the Makefile gives commands, with the copy's own BentoML home
        if args.preset:
            subprocess.run([str(BIN / "mlops"), "params", "apply", str(args.preset)], cwd=project, env=env, check=True)
        full = timed([str(BIN / "dvc"), "repro"], project, env)
        noop = timed([str(BIN / "dvc"), "repro"], project, env)
        metrics = json.loads((project / "metrics/evaluate.json").read_text())
        train = json.loads((project / "metrics/train.json").read_text())
        decision = json.loads((project / "reports/gate/decision.json").read_text())
    result = {
        "preset": str(args.preset or "offline default"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "lifecycle_seconds": full,
        "noop_repro_seconds": noop,
        "train": train,
        "test_accuracy": metrics["accuracy"],
        "test_macro_f1": metrics["macro_f1"],
        "test_rows": metrics["rows"],
        "gate_accepted": decision["accepted"],
    }
    write_result(f"lifecycle-{'default' if not args.preset else args.preset.stem}", result)


if __name__ == "__main__":
    main()
