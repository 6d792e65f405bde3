"""Benchmark: does the screening of trusted labels let honest shifted batches through and hold poisoned ones?

With a project whose champion is trained (`make run`, or a copy kept by `bench/loop.py --keep`):
1. shifted labelled texts (the generated corpus's shifted variant, or with `--ag-news` AG News headlines alone)
   are scored by the champion, as a served answer or an import would be;
2. `--batches` honest batches of `--rows` labels, drawn from them, are screened with the project's parameters
   and the champion's own yardstick (mlops/loop/screening.py): how many are held;
3. attacks: 100 labels flipping confident answers alone, the same hidden among honest labels, and one third
   of a batch flipped: each must be held.

Writes bench/results/screening.json with the champion's yardstick, the shift's accuracy and each verdict.

    .venv/bin/python bench/screening.py --project PATH [--ag-news] [--rows 400] [--batches 50]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loop import shifted_texts  # noqa: E402
from bench.results_file import print_checks, write_result  # noqa: E402


def flipped(frame: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """The rows relabelled with the class after the one the champion answered: every confident answer flipped."""
    return frame.assign(label=[labels[(labels.index(p) + 1) % len(labels)] for p in frame["prediction"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True, help="a project with a champion")
    parser.add_argument("--ag-news", action="store_true", help="AG News headlines as the shift (AG News champion)")
    parser.add_argument("--rows", type=int, default=400, help="labels per honest batch")
    parser.add_argument("--batches", type=int, default=50, help="honest batches drawn")
    parser.add_argument("--model", help="the stored model that meets the shift (default: the champion; after "
                                        "bench/loop.py --keep, its old champion: bench/results/loop.json)")
    args = parser.parse_args()
    project = args.project.resolve()
    os.environ["BENTOML_HOME"] = str(project / ".bentoml")
    os.chdir(project)
    from mlops.core.settings import load_settings
    from mlops.loop.batches import champion_answers, champion_yardstick
    from mlops.loop.screening import screen

    settings = load_settings(project / "params.yaml")
    preset = Path("configs/ag_news.yaml") if args.ag_news else None
    shifted = shifted_texts(project, preset, 3000, seed=777).reset_index(drop=True)
    answers = champion_answers(settings, shifted["text"].tolist(), args.model)
    shifted = shifted.assign(prediction=answers["prediction"].to_numpy(), confidence=answers["confidence"].to_numpy(),
                             id=[f"s{i}" for i in range(len(shifted))], source="operator")
    champion = champion_yardstick(settings, args.model)
    labels = sorted(shifted["label"].unique())
    sure = shifted[shifted["confidence"] >= champion.confident_at]
    honest = [screen(shifted.sample(args.rows, random_state=trial), settings.feedback.screen, champion)
              for trial in range(args.batches)]
    flips = flipped(sure.sample(min(100, len(sure)), random_state=1), labels)
    attacks = {
        f"{len(flips)} confident answers flipped": flips,
        f"{len(flips)} flipped among 300 honest": pd.concat([shifted.drop(flips.index).sample(300, random_state=2),
                                                            flips]),
        "a third of a batch's confident answers flipped, among honest labels": pd.concat([
            shifted.drop(sure.index).sample(args.rows - 90, random_state=4),
            flipped(sure.sample(min(30, len(sure)), random_state=5), labels),
            sure.drop(sure.sample(min(30, len(sure)), random_state=5).index).sample(
                min(60, max(0, len(sure) - 30)), random_state=6)]),
    }
    verdicts = {name: screen(frame, settings.feedback.screen, champion) for name, frame in attacks.items()}
    held_honest = sum(v.held for v in honest)
    result = {
        "shift": "AG News headlines" if args.ag_news else "generated corpus, shifted variant",
        "model": args.model or "the champion",
        "champion": {"confident_at": round(champion.confident_at, 4), "error_where_confident": champion.error,
                     "basis": champion.basis},
        "shifted_rows": len(shifted),
        "shifted_accuracy": round(float((shifted["label"] == shifted["prediction"]).mean()), 4),
        "confident_share_on_shift": round(len(sure) / len(shifted), 4),
        "error_where_confident_on_shift": round(float((sure["label"] != sure["prediction"]).mean()), 4)
        if len(sure) else None,
        "honest_batches": {"rows": args.rows, "batches": args.batches, "held": held_honest,
                           "contradiction_rates": sorted(v.evidence.get("contradiction_rate") or 0 for v in honest)},
        "attacks": {name: {"held": v.held, "reasons": v.reasons, "confident_rows": v.evidence.get("confident_rows"),
                           "contradicting_rows": v.evidence.get("contradicting_rows")}
                    for name, v in verdicts.items()},
        "checks": [
            {"check": "honest batches held", "observed": held_honest, "target": 0, "passed": held_honest == 0},
            *({"check": f"held: {name}", "observed": v.held, "target": True, "passed": v.held}
              for name, v in verdicts.items()),
        ],
    }
    path = write_result("screening-ag_news" if args.ag_news else "screening", result, echo=False)
    print_checks(result["checks"])
    print(path)


if __name__ == "__main__":
    main()
