"""Benchmark: a 5,000 vs 5,000-row monitoring report, embeddings included.

Reference: 5,000 rows of a project's scored data (text, prediction,
confidence, the model's embedding), as `evaluate` writes them. Current: 5,000
other rows written as a served-traffic log (embeddings as the service logs
them, base64 float16). Times the whole `mlops monitor` command (process start,
imports, reading the log, descriptors, Evidently's report and HTML, the
embedding drift, the history page) and writes bench/results/monitor.json.

    .venv/bin/python bench/lifecycle.py --preset configs/ag_news.yaml --keep ../agproj   # once
    .venv/bin/python bench/monitor.py --project ../agproj
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import write_result  # noqa: E402

from mlops.ml.model import encode_embedding  # noqa: E402
from mlops.serving.traffic import TrafficLog  # noqa: E402
from tests.helpers import BIN, project_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT.parent / "agproj",
                        help="a project where the lifecycle ran (its data/scored holds embeddings)")
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    scored = pd.concat([pd.read_parquet(args.project / "data/scored" / f"{name}.parquet")
                        for name in ("test", "validation")], ignore_index=True)
    if "embedding" not in scored.columns or len(scored) < args.rows:
        sys.exit(f"{args.project}/data/scored needs embeddings and {args.rows} rows (has {len(scored)})")
    # two independent samples of `rows`; with fewer than 2 x rows scored rows (AG News: 8,100) they overlap
    reference = scored.sample(args.rows, random_state=0)
    current = scored.sample(args.rows, random_state=1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reference.to_parquet(work / "reference.parquet")
        log = TrafficLog(work / "traffic")
        for row in current.itertuples():
            log.append([row.text], [{"label": row.prediction, "score": float(row.confidence),
                                     "model_version": "bench:1"}], 10.0, [encode_embedding(row.embedding)])
        params = args.project / "params.yaml"
        command = [str(BIN / "mlops"), "--params", str(params), "monitor", "--reference",
                   str(work / "reference.parquet"), "--current", str(work / "traffic"), "--out-dir", str(work / "out"),
                   "--no-history"]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=args.project, capture_output=True, text=True,
                                env=project_env(args.project) | {"BENTOML_HOME": str(work / "no-store")})
        seconds = time.perf_counter() - started
        if result.returncode:
            sys.exit(result.stderr[-2000:])
        summary = json.loads((work / "out" / "summary.json").read_text())
        report_mb = (work / "out" / "report.html").stat().st_size / 2**20
    out = {"scored_rows_available": len(scored),
           "overlapping_rows": int(reference.index.isin(current.index).sum()),
           "reference_rows": summary["reference_rows"], "current_rows": summary["current_rows"],
           "embedding_dims": len(scored["embedding"].iloc[0]), "seconds": round(seconds, 2), "target_seconds": 30,
           "passed": seconds <= 30, "status": summary["status"],
           "scores": {name: s["score"] for name, s in summary["signals"].items()},
           "report_mb": round(report_mb, 2), "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    write_result("monitor", out)


if __name__ == "__main__":
    main()
