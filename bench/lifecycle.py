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
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def copy_project(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], cwd=dest, check=True)


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
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
               "BENTOML_HOME": str(project / ".bentoml"), "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1"}
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
    out = ROOT / "bench" / "results" / f"lifecycle-{'default' if not args.preset else args.preset.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
