"""Benchmark: which continued fine-tuning recipe makes the most of a few hundred labels, on several shifts?

For each shift, a champion is trained once (the project's `train` stage functions, the real base model, a small
budget) and cached under the work folder; then, from the same ~400 labelled shifted texts (the champion's least
confident of a pool of shifted traffic, as the labelling queue picks them), each recipe continues the champion
the way a retrain brought by feedback does (`split` holds out `feedback.recent_share` and repeats the rest
`feedback.oversample` times; `train` continues from the champion on those rows and `replay_rows` original ones
for `epochs` at `lr`). Every candidate is scored against its champion on held-out shifted texts (disjoint from
the pool) and on the original test rows: accuracy difference with a paired bootstrap 95% interval.

Shifts:
- `generated`: the generated corpus's `shifted` variant (new products, new phrasing) against a champion trained
  on the default generated corpus;
- `ag_headlines`: AG News headlines alone (titles of the official test file) against a champion trained on the
  5,000-row sample of the AG News train split (title + description);
- `ag_typos`: AG News test articles with keyboard typos in 40% of the words (seeded), same champion;
- `ag_leads`: the first ten words of AG News test articles' descriptions, without headline or dateline (as a link
  preview shows them), same champion.

`--champion-project COPY` adopts the champion a first `dvc repro` of a project copy trained (a kept
`bench/loop.py` project; with `--preset configs/ag_news.yaml` for the AG News shifts) and its training rows
instead of training a smaller one here.

Writes bench/results/calibrate-recipes.json (and one JSON line per finished run to <work>/runs.jsonl, which a
second start reuses, so a killed run loses only the recipe in progress).

    .venv/bin/python bench/calibrate_recipes.py [--work DIR] [--shifts generated,ag_headlines,ag_typos]
        [--recipes before,all_labels,...] [--champion-project COPY]   # COPY: e.g. a kept bench/loop.py project
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402
from bench.shifts import add_typos, lead, read_ag_test  # noqa: E402
from mlops.core.io import write_table  # noqa: E402
from mlops.core.params import merge  # noqa: E402
from mlops.core.settings import Settings, parse_settings  # noqa: E402

# (name, recent_share, oversample, replay_rows, epochs, lr). recent_share 0: every label trains (split still
# keeps one recent row: it holds out at least one of a batch).
RECIPES = {
    "before": (0.5, 1, 2000, 3, 3.0e-5),           # the defaults this calibration replaces
    "all_labels": (0.0, 3, 800, 4, 5.0e-5),        # every label trains: the reference of what they hold
    "half_x3_r800_4ep_5e-5": (0.5, 3, 800, 4, 5.0e-5),
    "half_x3_r800_4ep_3e-5": (0.5, 3, 800, 4, 3.0e-5),
    "half_x2_r1000_3ep_5e-5": (0.5, 2, 1000, 3, 5.0e-5),
}


def project_settings(preset: Path | None, overlay: dict[str, Any]) -> Settings:
    """params.yaml (with a preset and the calibration's own budget merged in) as validated settings."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    if preset is not None:
        merge(raw, yaml.safe_load(preset.read_text()))
    merge(raw, overlay)
    return parse_settings(raw, origin="calibration")


def ag_test_partition(seed: int) -> dict[str, pd.DataFrame]:
    """The official AG News test file cut into disjoint parts: original-test rows (title + description), the
    headline shift's pool and held-out rows, and the typo shift's pool and held-out rows."""
    frame = read_ag_test(ROOT.parent / "shared" / "data", seed)
    full = (frame["title"] + " " + frame["description"]).str.strip()
    rng = np.random.default_rng(seed)
    typos = [add_typos(text.replace("\\", " "), rng) for text in full]
    leads = lead(frame["description"]).tolist()
    cut = [0, 1500, 2500, 5000, 6000, 7600]
    part = lambda texts, a, b: pd.DataFrame({"text": list(texts[a:b]), "label": frame["label"][a:b].tolist()})  # noqa: E731
    return {"original_test": part(full, cut[0], cut[1]),
            "ag_headlines": (part(frame["title"].str.strip(), cut[1], cut[2]),
                             part(frame["title"].str.strip(), cut[2], cut[3])),
            "ag_typos": (part(typos, cut[3], cut[4]), part(typos, cut[4], cut[5])),
            "ag_leads": (part(leads, cut[1], cut[2]), part(leads, cut[2], cut[3]))}


def shift_data(shift: str, seed: int) -> dict[str, Any]:
    """Settings, the champion's training rows, the original test rows, and the shift's pool and held-out rows."""
    from mlops.core.raw_tables import read_source
    from mlops.stages.generate import generate_corpus
    from mlops.stages.split import stratified

    budget = {"train": {"refit": False}}
    if shift == "generated":
        settings = project_settings(None, budget)
        classes = settings.data.generated.classes
        corpus = generate_corpus(settings.data.generated.rows, classes, settings.seed)
        main, test = stratified(corpus, settings.data.split.test, settings.seed, "test")
        shifted = generate_corpus(2000, classes, seed, "shifted")  # as bench/loop.py draws its traffic and held-out
        return {"settings": settings, "main": main, "test": test, "pool": shifted.head(1000),
                "heldout": shifted.iloc[1000:].reset_index(drop=True)}
    # AG News: a smaller champion than the preset's (3,000 of the 5,000 train rows, 2 epochs, no refit): CPU budget
    settings = project_settings(ROOT / "configs" / "ag_news.yaml", {**budget, "train": {"refit": False, "epochs": 2}})
    main = read_source(settings.data.source, "main").sample(n=3000, random_state=settings.seed)
    parts = ag_test_partition(seed)
    pool, heldout = parts[shift]
    return {"settings": settings, "main": main[["text", "label"]].astype(str), "test": parts["original_test"],
            "pool": pool, "heldout": heldout}


def project_family(project: Path) -> str:
    """Which champions a project copy trains: `ag_news` with the AG News preset applied, else `generated`."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    return "ag_news" if "ag_news" in str((params["data"].get("source") or {}).get("path", "")) else "generated"


def adopt_champion(project: Path, champion: Path, champion_log: Path, family: str) -> dict[str, pd.DataFrame]:
    """The champion a first `dvc repro` of a project copy with its own parameters trained (models/candidate; a copy
    taken before any retrain), cached, and its rows: training (with validation) and, on the generated corpus, test,
    as its `split` wrote them (an AG News project's test split is the official test file, which the shifts' pools
    come from: the harness's own original-test part stays)."""
    import shutil

    split_dir = project / "data" / "split"
    if not (champion / "model.safetensors").is_file():  # the first `train` run's model, before any retrain
        shutil.copytree(project / "models" / "candidate", champion, dirs_exist_ok=True)
        summary = json.loads((project / "metrics" / "train.json").read_text())
        champion_log.write_text(json.dumps({**summary, "adopted_from": "dvc repro with default parameters"}))
    main = pd.concat([pd.read_parquet(split_dir / f"{name}.parquet") for name in ("train", "validation")])
    if family == "ag_news":
        return {"main": main[["text", "label"]].astype(str)}
    return {"main": main[["text", "label"]].astype(str),
            "test": pd.read_parquet(split_dir / "test.parquet")[["text", "label"]].astype(str)}


def train_once(settings: Settings, frame: pd.DataFrame, out: Path, champion: Path | None) -> dict[str, Any]:
    """`split` then `train` on `frame` (subsets main/test/feedback), continuing from `champion` when given."""
    from mlops.ml.training import start
    from mlops.stages import split, train

    split_dir = out.parent / f"{out.name}-split"
    for name, part in split.split(frame, settings).items():
        write_table(part, split_dir / f"{name}.parquet")
    if champion is not None:  # the champion the registry would name: this calibration's cached one
        start.champion_start = lambda *_: ("calibration-champion", champion, "continuing")
    started = time.perf_counter()
    summary = train.train(settings, split_dir, out, out.parent / f"{out.name}-live")
    summary["wall_seconds_total"] = round(time.perf_counter() - started, 1)
    summary["recent_rows"] = len(pd.read_parquet(split_dir / "recent.parquet"))
    return summary


def predict(model: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and confidence of a saved model on `texts`."""
    from mlops.ml.model import Classifier

    classifier = Classifier.load(model)
    proba = classifier.predict_proba(texts)
    return np.array(classifier.labels)[proba.argmax(axis=1)], proba.max(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "calibrate-recipes",
                        help="cache of champions and runs, outside the project")
    parser.add_argument("--shifts", default="generated,ag_headlines,ag_typos,ag_leads")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--labels", type=int, default=400, help="labelled shifted texts (the budget)")
    parser.add_argument("--champion-project", type=Path,
                        help="a project copy whose `dvc repro` trained the champion of its shifts (and split its data)")
    args = parser.parse_args()
    from bench.loop import accuracy_difference

    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "runs.jsonl"
    done = {(r["shift"], r["recipe"]): r for r in map(json.loads, log.read_text().splitlines())} \
        if log.is_file() else {}
    shifts = {}
    for shift in args.shifts.split(","):
        data = shift_data(shift, seed=2026)
        settings = data["settings"]
        family = "generated" if shift == "generated" else "ag_news"
        champion = args.work / family / "champion"
        champion_log = args.work / family / "champion.json"
        if args.champion_project and project_family(args.champion_project) == family:
            data.update(adopt_champion(args.champion_project, champion, champion_log, family))
        if not (champion / "model.safetensors").is_file():
            frame = pd.concat([data["main"].assign(subset="main"), data["test"].assign(subset="test")],
                              ignore_index=True).assign(batch="")
            summary = train_once(settings, frame, champion, None)
            champion_log.write_text(json.dumps(summary))
            print(f"calibrate: {family} champion trained in {summary['wall_seconds_total']}s", flush=True)
        old = {name: predict(champion, data[name]["text"].tolist())[0] for name in ("heldout", "test")}
        _, confidence = predict(champion, data["pool"]["text"].tolist())
        labelled = data["pool"].iloc[np.argsort(confidence, kind="stable")[:args.labels]]  # least confident first
        shifts[shift] = {"champion": json.loads(champion_log.read_text()), "labels": len(labelled),
                         "heldout_rows": len(data["heldout"]), "original_test_rows": len(data["test"]),
                         "champion_accuracy": {name: round(float(np.mean(old[name] == data[name]["label"])), 4)
                                               for name in old},
                         "runs": {}}
        for recipe in args.recipes.split(","):
            if (shift, recipe) in done:
                shifts[shift]["runs"][recipe] = done[(shift, recipe)]
                continue
            recent_share, oversample, replay_rows, epochs, lr = RECIPES[recipe]
            tuned = settings.model_copy(update={
                "feedback": settings.feedback.model_copy(update={"recent_share": recent_share,
                                                                 "oversample": oversample}),
                "train": settings.train.model_copy(update={
                    "eval_steps": 100_000,  # the last weights are kept: no validation passes needed on the way
                    "continue_from_champion": settings.train.continue_from_champion.model_copy(update={
                        "enabled": True, "replay_rows": replay_rows, "epochs": epochs, "lr": lr})})})
            frame = pd.concat([data["main"].assign(subset="main", batch=""),
                               data["test"].assign(subset="test", batch=""),
                               labelled.assign(subset="feedback", batch="labels")], ignore_index=True)
            out = args.work / shift / recipe
            summary = train_once(tuned, frame, out, champion)
            new = {name: predict(out, data[name]["text"].tolist())[0] for name in ("heldout", "test")}
            run = {"shift": shift, "recipe": recipe,
                   "params": {"recent_share": recent_share, "oversample": oversample, "replay_rows": replay_rows,
                              "epochs": epochs, "lr": lr},
                   "train_rows": summary["train_rows"], "recent_rows": summary["recent_rows"],
                   "train_wall_seconds": summary["wall_seconds_total"],
                   "heldout_shifted": accuracy_difference(data["heldout"]["label"].to_numpy(), old["heldout"],
                                                          new["heldout"]),
                   "original_test": accuracy_difference(data["test"]["label"].to_numpy(), old["test"], new["test"])}
            with log.open("a") as handle:
                handle.write(json.dumps(run) + "\n")
            shifts[shift]["runs"][recipe] = run
            print(f"calibrate: {shift} {recipe}: shifted {run['heldout_shifted']['difference']:+.4f} "
                  f"[{run['heldout_shifted']['ci95_low']:+.4f}, {run['heldout_shifted']['ci95_high']:+.4f}], "
                  f"original {run['original_test']['difference']:+.4f} in {run['train_wall_seconds']}s", flush=True)
    write_result("calibrate-recipes", {"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
                                       "load_average_end": os.getloadavg(), "recipes": RECIPES, "shifts": shifts})


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
