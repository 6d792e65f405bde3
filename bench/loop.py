"""Benchmark: the closed loop on a real shift. Does a drift-triggered retrain on a few hundred labels help?

In a fresh copy of the project (beside it, so ../shared resolves):
1. `dvc repro`: the champion is trained, gated, packaged and promoted;
2. it is served (`bentoml serve` of its Bento) and gets shifted traffic (bench/shifts.py): the shifted variant of
   the generated corpus (`mlops generate --variant shifted`: same classes, new products and phrasing), or with
   `--preset configs/ag_news.yaml` AG News headlines alone (`--shifts ag_headlines`), AG News articles with
   keyboard typos (`--shifts ag_typos`) or the first words of AG News articles without headline or dateline
   (`--shifts ag_leads`);
3. `mlops monitor` on the traffic log finds drift and writes the labelling queue;
4. at most `--labels` queued texts (least confident first) get their true label through `POST /feedback`;
5. `mlops retrain-on-drift` collects them into a batch and runs `dvc repro`: retrain, gate (on the recent
   set too), package and promote; the new champion is served and answers;
6. old and new champion are scored on held-out shifted texts (disjoint from the traffic) and on the original
   test split, with a paired bootstrap interval of each accuracy difference.

Steps 2-6 run once per shift, each from the same first champion (a copy of the project taken after step 1).
Writes bench/results/loop-<shift>.json per shift with the figures, the done-when checks and each step's wall time.

    .venv/bin/python bench/loop.py                                                    # generated shift
    .venv/bin/python bench/loop.py --preset configs/ag_news.yaml --shifts ag_headlines,ag_leads
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_file import print_checks, write_result  # noqa: E402
from bench.shifts import SHIFTS, ag_shift  # noqa: E402
from mlops.core.errors import REJECTED_EXIT  # noqa: E402
from mlops.core.pipeline import stage_path  # noqa: E402
from tests.helpers import BIN, ROOT, copy_project, free_port, post, project_env, stop, wait_ready  # noqa: E402


def timed(step: str, times: dict[str, float], args: list[str], cwd: Path, env: dict[str, str],
          ok: tuple[int, ...] = (0,)) -> str:
    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    times[step] = round(time.perf_counter() - started, 1)
    if result.returncode not in ok:
        raise SystemExit(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                         f"{result.stderr[-3000:]}")
    return result.stdout


def shifted_texts(project: Path, shift: str, rows: int, seed: int) -> pd.DataFrame:
    """Shifted labelled texts (text, label, title): the generated shifted variant or an AG News shift."""
    if shift == "generated":
        from mlops.stages.generate import generate_corpus

        classes = yaml.safe_load((project / "params.yaml").read_text())["data"]["generated"]["classes"]
        return generate_corpus(rows, classes, seed, "shifted").assign(title="")
    return ag_shift(ROOT.parent / "shared" / "data", shift, rows, seed)


def serve(project: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    bento = json.loads((project / ".bentoml" / "registry.json").read_text())["champion"]["bento"]
    port = free_port()
    server = subprocess.Popen([str(BIN / "bentoml"), "serve", bento, "--host", "127.0.0.1", "--port", str(port)],
                              cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, server, timeout=300)
    return server, base, bento


def send_traffic(base: str, texts: list[str], per_request: int = 8) -> list[dict]:
    chunks = [texts[i:i + per_request] for i in range(0, len(texts), per_request)]

    def classify(chunk: list[str]) -> list[dict]:
        status, body = post(f"{base}/classify", json.dumps({"texts": chunk}).encode())
        if status != 200:
            raise SystemExit(f"/classify answered {status}: {body}")
        return json.loads(body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [answer for answers in pool.map(classify, chunks) for answer in answers]


def accuracy_difference(truth: np.ndarray, old: np.ndarray, new: np.ndarray, seed: int = 0,
                        samples: int = 2000) -> dict[str, float]:
    """Accuracy of both and the paired bootstrap 95% interval of new - old (rows resampled jointly)."""
    rng = np.random.default_rng(seed)
    right_old, right_new = (old == truth).astype(float), (new == truth).astype(float)
    index = rng.integers(0, len(truth), size=(samples, len(truth)))
    diffs = right_new[index].mean(axis=1) - right_old[index].mean(axis=1)
    return {"rows": len(truth), "old_accuracy": round(float(right_old.mean()), 4),
            "new_accuracy": round(float(right_new.mean()), 4),
            "difference": round(float(right_new.mean() - right_old.mean()), 4),
            "ci95_low": round(float(np.quantile(diffs, 0.025)), 4),
            "ci95_high": round(float(np.quantile(diffs, 0.975)), 4)}


def model_dir(project: Path, tag: str) -> Path:
    name, version = tag.split(":")
    return project / ".bentoml" / "models" / name / version


def new_project(args: argparse.Namespace, times: dict[str, float]) -> tuple[Path, dict[str, str], dict]:
    """A fresh copy of the project beside this one, with the preset (if any) applied and committed."""
    tmp = tempfile.mkdtemp(dir=ROOT.parent, prefix=f"{ROOT.name}-loop-")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    project = copy_project(Path(tmp), params)
    env = project_env(project) | {"MLOPS_FEEDBACK_DIR": str(project / "logs" / "feedback"),
                                  "PYTHONPATH": str(project)}
    if args.preset:
        timed("params_apply", times, [str(BIN / "mlops"), "params", "apply", str(args.preset)], project, env)
    # The project's own parameters (and the preset's): what a user who follows the README runs, no overrides.
    current = yaml.safe_load((project / "params.yaml").read_text())
    subprocess.run(["git", "-c", "user.email=b@e", "-c", "user.name=b", "commit", "-qam", "bench params",
                    "--allow-empty"], cwd=project, check=True)
    return project, env, current


def done_when(result: dict, shift: str) -> list[dict]:
    """What the loop must show with default parameters: a significant gain on the held-out shifted texts (and, on
    the generated shift, two thirds of the loss won back), at most 0.5 points lost on the original test (on an AG
    News shift: on the test rows whose headline was not sent as traffic), and the gate accepting."""
    shifted = result["heldout_shifted"]
    original = result.get("original_test_without_traffic_titles") or result["original_test"]
    checks = [{"check": "gain on held-out shifted texts significant (95% CI low > 0)",
               "observed": shifted["ci95_low"], "target": "> 0", "passed": shifted["ci95_low"] > 0},
              {"check": "original test accuracy drop (points)", "observed": round(-100 * original["difference"], 2),
               "target": "<= 0.5", "passed": -100 * original["difference"] <= 0.5},
              {"check": "gate accepted", "observed": result["gate"]["accepted"], "target": True,
               "passed": bool(result["gate"]["accepted"])}]
    if shift == "generated":
        won = result["share_of_loss_won_back"]
        checks.insert(1, {"check": "share of the shift's loss won back", "observed": won, "target": ">= 0.667",
                          "passed": won is not None and won >= 2 / 3})
    return checks


def predicted_labels(directory: Path, frames: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """The model in `directory`, loaded once, on each frame's texts: its predicted labels by frame name."""
    from mlops.ml.model import Classifier

    classifier = Classifier.load(directory)
    return {name: np.array(classifier.labels)[classifier.predict_proba(frame["text"].tolist()).argmax(axis=1)]
            for name, frame in frames.items()}


def run_shift(project: Path, env: dict[str, str], current: dict, args: argparse.Namespace, shift: str,
              times: dict[str, float]) -> dict:
    """Steps 2-6 on one shift, from the champion the project holds now: serve, traffic, monitor, label, retrain,
    score."""
    heldout_rows = args.heldout or (1000 if shift == "generated" else 3600)
    old_tag = json.loads((project / ".bentoml" / "registry.json").read_text())["champion"]["model"]
    shifted = shifted_texts(project, shift, args.traffic + heldout_rows, seed=2026)
    if len(shifted) < args.traffic + heldout_rows:
        raise SystemExit(f"{shift}: {len(shifted)} shifted texts, fewer than {args.traffic} + {heldout_rows}")
    traffic, heldout = shifted.head(args.traffic), shifted.iloc[args.traffic:].reset_index(drop=True)
    server, base, _ = serve(project, env)
    try:
        started = time.perf_counter()
        answers = send_traffic(base, traffic["text"].tolist())
        times["traffic"] = round(time.perf_counter() - started, 1)
        truth = dict(zip([a["id"] for a in answers], traffic["label"], strict=True))
        served_accuracy = float(np.mean([a["label"] == truth[a["id"]] for a in answers]))
        out = timed("monitor", times, [str(BIN / "mlops"), "monitor", "--current", str(project / "logs" / "traffic"),
                                       "--out-dir", "reports/monitoring-live"], project, env)
        summary = json.loads((project / "reports" / "monitoring-live" / "summary.json").read_text())
        if summary["status"] != "drift":
            raise SystemExit(f"{shift}: monitoring found no drift:\n{out}")
        queue = pd.read_csv(summary["labelling_queue"]["path"], dtype=str, keep_default_na=False)
        chosen = queue.head(args.labels)
        started = time.perf_counter()
        for at in range(0, len(chosen), 50):
            body = json.dumps([{"id": i, "label": truth[i]} for i in chosen["id"][at:at + 50]]).encode()
            status, answer = post(f"{base}/feedback", body)
            if status != 200:
                raise SystemExit(f"/feedback answered {status}: {answer}")
        times["feedback"] = round(time.perf_counter() - started, 1)
    finally:
        stop(server)
    # exit 3: the gate rejected the retrained candidate, an outcome this benchmark measures too
    out = timed("drift_retrain", times, [str(BIN / "mlops"), "retrain-on-drift", "--summary",
                                         "reports/monitoring-live/summary.json"], project, env,
                ok=(0, REJECTED_EXIT))
    decision = json.loads((project / "reports" / "gate" / "decision.json").read_text())
    new_tag = json.loads((project / ".bentoml" / "registry.json").read_text())["champion"]["model"]
    served_by = None
    if new_tag != old_tag:
        server, base, _ = serve(project, env)
        try:
            status, body = post(f"{base}/classify", json.dumps({"text": heldout["text"][0]}).encode())
            served_by = json.loads(body)["model_version"] if status == 200 else f"HTTP {status}"
        finally:
            stop(server)

    test = pd.read_parquet(project / "data" / "split" / "test.parquet")
    started = time.perf_counter()
    # the new champion, or (if the gate rejected it) the retrained candidate, so the figures still say why
    new_dir = model_dir(project, new_tag) if new_tag != old_tag else project / "models" / "candidate"
    frames = {"heldout_shifted": heldout, "original_test": test}
    predictions = {which: predicted_labels(directory, frames)
                   for which, directory in (("old", model_dir(project, old_tag)), ("new", new_dir))}
    scores = {name: accuracy_difference(frame["label"].to_numpy(), predictions["old"][name],
                                        predictions["new"][name])
              for name, frame in frames.items()}
    if shift != "generated":
        # The AG shifts' traffic comes from the official test file: the test rows behind the sent texts (which may
        # have been labelled and trained on) are scored apart too, left out.
        unseen = ~test["text"].str.startswith(tuple(t for t in traffic["title"] if t)).to_numpy()
        scores["original_test_without_traffic_titles"] = accuracy_difference(
            test["label"].to_numpy()[unseen], predictions["old"]["original_test"][unseen],
            predictions["new"]["original_test"][unseen])
    times["scoring"] = round(time.perf_counter() - started, 1)
    loss = scores["original_test"]["old_accuracy"] - scores["heldout_shifted"]["old_accuracy"]
    won_back = scores["heldout_shifted"]["difference"] / loss if loss > 0 else None
    refit = project / "metrics" / "refit.json"
    result = {
        "shift": shift, "preset": str(args.preset or "offline default (generated corpus)"),
        "labels_sent": len(chosen), "traffic_texts": len(traffic),
        "served_accuracy_on_traffic": round(served_accuracy, 4),
        "monitoring": {"status": summary["status"], "drifted": [n for n, s in summary["signals"].items()
                                                                if s["drifted"]],
                       "queued": summary["labelling_queue"]["rows"]},
        "retrain_message": [line for line in out.splitlines() if "retrain-on-drift:" in line],
        "gate": {"accepted": decision["accepted"], "reasons": decision["reasons"],
                 "promote_if": current["gate"]["promote_if"], "next_step": decision.get("next_step"),
                 "recent": (decision.get("comparison") or {}).get("recent")},
        "refit": json.loads(refit.read_text()) if refit.exists() else None,
        "old_champion": old_tag, "new_champion": new_tag, "promoted": new_tag != old_tag,
        "new_champion_serving": served_by,
        **scores,
        "loss_points_on_shift": round(100 * loss, 2),
        "share_of_loss_won_back": round(won_back, 3) if won_back is not None else None,
        "params": {"epochs": current["train"]["epochs"], "oversample": current["feedback"]["oversample"],
                   "recent_share": current["feedback"]["recent_share"],
                   "continue_from_champion": current["train"].get("continue_from_champion"),
                   "refit_feedback": current.get("refit_feedback")},
        "retrain_started_from": json.loads((project / stage_path(project, "train", "metrics")).read_text()).get(
            "started_from"),
        "wall_seconds": times,
        "load_average_end": os.getloadavg(),
    }
    result["checks"] = done_when(result, shift)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", type=Path, help="a params preset, e.g. configs/ag_news.yaml (AG News shifts)")
    parser.add_argument("--shifts", help=f"comma-separated, of {', '.join(SHIFTS)} (default: generated; with a "
                                         "preset: ag_headlines)")
    parser.add_argument("--labels", type=int, default=400, help="labels sent through /feedback (at most)")
    parser.add_argument("--traffic", type=int, default=1000, help="shifted texts sent to /classify")
    parser.add_argument("--heldout", type=int, default=None, help="held-out shifted texts (default 1000; AG 3600)")
    parser.add_argument("--keep", action="store_true", help="keep the project copy (of the last shift)")
    parser.add_argument("--project", type=Path, help="continue in an earlier run's project copy (its params stay)")
    args = parser.parse_args()
    shifts = (args.shifts or ("ag_headlines" if args.preset else "generated")).split(",")
    wrong = [s for s in shifts if s not in SHIFTS or (s == "generated") == bool(args.preset)]
    if wrong:
        raise SystemExit(f"--shifts {','.join(wrong)}: the generated shift runs without a preset, the AG News "
                         "shifts with --preset configs/ag_news.yaml")
    times: dict[str, float] = {}
    if args.project:  # an earlier run's copy (kept, or left by a crash): its trained stages are up to date
        project = args.project.resolve()
        current = yaml.safe_load((project / "params.yaml").read_text())
        env = project_env(project) | {"MLOPS_FEEDBACK_DIR": str(project / "logs" / "feedback"),
                                      "PYTHONPATH": str(project)}
    else:
        project, env, current = new_project(args, times)
    timed("first_lifecycle", times, [str(BIN / "dvc"), "repro"], project, env)
    timed("first_promotion", times, [str(BIN / "mlops"), "promote"], project, env)  # as `make run` does
    snapshot = project.with_name(project.name + "-champion")
    if len(shifts) > 1:  # every shift starts from this champion, in a copy at the same path
        shutil.copytree(project, snapshot, symlinks=True)
    try:
        for at, shift in enumerate(shifts):
            if at:
                shutil.rmtree(project)
                shutil.copytree(snapshot, project, symlinks=True)
            result = run_shift(project, env, current, args, shift, dict(times))
            write_result(f"loop-{shift}", result, echo=False)
            print_checks(result["checks"])
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(project, ignore_errors=True)
    else:
        print(f"project kept at {project}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
