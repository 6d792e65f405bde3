"""Benchmark: the teacher and its distilled student, fp32 and int8, side by side in one run (#17, 3).

On a project whose lifecycle ran with distillation on (AG News preset: `distill.enabled: true`, every other
layer), on the same cores, in one run:
1. the strict offline limit of the teacher's fp32 and int8 and of the student's fp32 and int8 (int8: onnx_int8
   where optimize built it, else torch's dynamic int8), bench/serve.py's measure (windows of 64 texts sorted by
   length, micro-batches of 8 and 16, one call of 2 threads or two of 1; one worker process per variant), and
   each variant's accuracy on the project's test split (AG News: the official 7,600-row test split);
2. each of them served by `bentoml serve` (this checkout's service, the four variants in one stored model, in a
   BentoML store of its own) under 64 closed-loop single-text clients: texts/s, p50, p99, errors;
3. the wall time of distillation (metrics/distill.json) beside the teacher's training (metrics/train.json);
4. the issue's checks: the student's test accuracy within 1.5 points of its teacher, and its strict offline
   texts/s at least 1.8x the teacher's (fp32 and int8 pairs).
Writes bench/results/distill.json. Run it on a quiet machine: on 2 cores any other busy process skews every figure.

    python bench/lifecycle.py --preset configs/ag_news.yaml --keep ../agproj   # once (the preset distils)
    python bench/distill.py [--project ../agproj] [--quick]   # --quick: ~10x fewer requests and texts (smoke)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import finish  # noqa: E402
from serve import agreement, check, level, ratio, run_offline, serve_variant  # noqa: E402

from mlops.core.io import read_json  # noqa: E402
from mlops.core.pipeline import stage_path  # noqa: E402
from mlops.ml.variants import STUDENT, read_variants, variant_files  # noqa: E402

TARGETS = {"accuracy_drop_points": 1.5, "offline_speedup": 1.8}
CLIENTS, REQUESTS = 64, 2400  # the served measure: 64 single-text clients


def int8_of(built: set[str], prefix: str = "") -> str:
    """The int8 variant to compare: ONNX Runtime's where optimize built it (the faster), else torch's."""
    return f"{prefix}onnx_int8" if f"{prefix}onnx_int8" in built else f"{prefix}torch_int8"


def bench_model(project: Path, into: Path) -> tuple[Path, dict[str, str]]:
    """One model directory holding the teacher and every variant optimize built (as a stored model holds the one
    it serves), and the four variants compared: {teacher_fp32, teacher_int8, student_fp32, student_int8}."""
    candidate = project / stage_path(project, "optimize", "model")
    optimized = project / stage_path(project, "optimize", "out-dir")
    built = {entry["name"] for entry in read_variants(optimized)}
    if f"{STUDENT}fp32" not in built:
        raise SystemExit(f"{optimized}: no student variant (run the lifecycle with distill.enabled: true)")
    shutil.copytree(candidate, into)
    for name in sorted(built):
        for needed in variant_files(name):
            if not (into / needed).exists():
                shutil.copytree(optimized / Path(needed).parent, into / Path(needed).parent)
    return into, {"teacher_fp32": "fp32", "teacher_int8": int8_of(built), "student_fp32": f"{STUDENT}fp32",
                  "student_int8": int8_of(built, STUDENT)}


def register(model_dir: Path, home: Path) -> str:
    """The combined model in a BentoML store of its own (the project's store and registry are left alone)."""
    os.environ["BENTOML_HOME"] = str(home / ".bentoml")  # before BentoML is imported: its store lives there
    import bentoml

    with bentoml.models.create("distill-bench", labels={"framework": "transformers"}) as model:
        shutil.copytree(model_dir, model.path, dirs_exist_ok=True)
    return str(model.tag)


def wall_times(project: Path) -> dict[str, Any]:
    """Distillation's wall time, from its metrics, beside the teacher's training."""
    distilled = read_json(project / stage_path(project, "distill", "metrics"))
    trained = read_json(project / stage_path(project, "train", "metrics"))
    return {"distill_seconds": distilled.get("wall_seconds"), "train_seconds": trained.get("wall_seconds"),
            "kept_layers": distilled.get("kept_layers"), "teacher_layers": distilled.get("teacher_layers"),
            "distill": {key: distilled.get(key) for key in ("layers", "temperature", "alpha", "epochs", "lr")}}


def checks(offline: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's: the student within 1.5 accuracy points of its teacher and at least 1.8x its strict texts/s."""
    out = []
    for precision in ("fp32", "int8"):
        teacher, student = offline[f"teacher_{precision}"], offline[f"student_{precision}"]
        drop = round(100 * (teacher["accuracy"] - student["accuracy"]), 2)
        out += [check(f"student {precision}: test accuracy drop vs teacher {precision} (points)", drop, "<=",
                      TARGETS["accuracy_drop_points"], teacher=teacher["accuracy"], student=student["accuracy"]),
                check(f"student {precision}: strict offline texts/s / teacher {precision}",
                      ratio(student["limit"], teacher["limit"]), ">=", TARGETS["offline_speedup"],
                      teacher=teacher["limit"], student=student["limit"])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT.parent / "agproj",
                        help="a project whose lifecycle ran with distill.enabled (bench/lifecycle.py --keep)")
    parser.add_argument("--quick", action="store_true", help="about 10x fewer requests and texts (development)")
    parser.add_argument("--no-serve", action="store_true", help="the offline measure and accuracy alone")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # through the finally blocks that stop servers
    project = args.project.resolve()
    test = pd.read_parquet(project / stage_path(project, "split", "out-dir") / "test.parquet")
    texts, gold = test["text"].tolist(), test["label"].astype(str).tolist()
    count = 256 if args.quick else 2048
    params = yaml.safe_load((project / "params.yaml").read_text())
    result: dict[str, Any] = {"project": str(project), "quick": args.quick, "texts": len(texts), "targets": TARGETS,
                              "training": wall_times(project),
                              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "load_average_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory(prefix="distill-bench-") as tmp:
        workdir = Path(tmp)
        model_dir, compared = bench_model(project, workdir / "model")
        result["variants"] = compared
        print(f"project {project}: comparing {compared}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
              flush=True)
        offline = {}
        for role, variant in compared.items():
            offline[role] = run_offline(project, model_dir, variant, texts[:count], texts, workdir)
            offline[role]["accuracy"] = agreement(dict(enumerate(offline[role].pop("labels"))), gold)[0]
            print(f"{role} ({variant}): accuracy {offline[role]['accuracy']}, strict limit {offline[role]['limit']} "
                  "texts/s", flush=True)
        result["offline"] = offline
        if not args.no_serve:
            os.environ["MLOPS_MODEL_TAG"] = register(model_dir, workdir)  # project_env passes it on to the server
            requests = REQUESTS // (10 if args.quick else 1)
            bodies = {1: [json.dumps({"text": x}).encode() for x in texts]}
            served = {role: serve_variant(variant, {}, workdir, "mlops.serving.service:TextClassifier", ROOT,
                                          params, bodies, [(CLIENTS, 1, requests)], 16 if args.quick else 50,
                                          workdir, [])
                      for role, variant in compared.items()}
            result["served"] = {role: {"variant": compared[role], **level(served[role], CLIENTS, 1),
                                       **({"failed": served[role]["failed"]} if "failed" in served[role] else {})}
                                for role in compared}
    result["checks"] = checks(offline)
    finish("distill", result)


if __name__ == "__main__":
    main()
