"""The experiment tracker a team already runs (`train.report_to`): TensorBoard, MLflow or Weights & Biases.

`train` opens one run per training, logs the params into it and hands the
Hugging Face Trainer's own callback for that tool the same run, so the
training curves land there too. The run's address is written beside the
weights (`tracking.json` in the model directory), which is how `evaluate`
and `gate`, later stages in other processes, log their metrics into the
same run rather than a new one. With `none` (the default) nothing is opened
and nothing is imported.

Where the run goes is the tool's own configuration: TensorBoard writes event
files under `train.tensorboard_dir/<run name>`; MLflow reads
MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME; W&B reads WANDB_PROJECT,
WANDB_ENTITY, WANDB_API_KEY (or WANDB_MODE=offline). Keys stay in the
environment, never in params.yaml or in a log line.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.core.errors import MlopsError

POINTER = "tracking.json"  # in the model directory: the tool and the run the later stages log into
EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # report_to -> the module it needs


def flat_numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested dict as `a/b/c` -> float (booleans as 0/1): what a tracker plots."""
    flat: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_numbers(value, f"{name}/"))
        elif isinstance(value, int | float):  # a bool is an int: 0 or 1
            flat[name] = float(value)
    return flat


def flat_params(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as `train.lr` -> a scalar (lists and None as text): what trackers accept as params."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, bool | int | float | str) else json.dumps(value)
    return flat


def require(tool: str) -> None:
    """A clear error when the tool's package is missing: the project's optional extra names it."""
    import importlib.util


    if importlib.util.find_spec(EXTRAS[tool]) is None:
        raise MlopsError(f"train.report_to is {tool}, but the {EXTRAS[tool]} package is not installed: "
                         f"pip install -e '.[{tool}]'")


class Tracker:
    """One run in one tool: params, metrics at a step, the Trainer's callback, its address for later stages."""

    def __init__(self, tool: str, pointer: dict[str, Any], handle: Any = None) -> None:
        self.tool, self.pointer, self.handle = tool, pointer, handle

    def log_params(self, params: dict[str, Any]) -> None:
        flat = flat_params(params)
        if self.tool == "tensorboard":
            from torch.utils.tensorboard.summary import hparams

            for summary in hparams({k: v for k, v in flat.items() if isinstance(v, bool | int | float | str)}, {}):
                self.handle.file_writer.add_summary(summary)  # the HPARAMS tab, in this run's own directory
            self.handle.add_text("params", "\n".join(f"    {k}: {v}" for k, v in sorted(flat.items())))
            self.handle.flush()
        elif self.tool == "mlflow":
            import mlflow

            mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
        else:
            self.handle.config.update(flat, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.tool == "tensorboard":
            for name, value in metrics.items():
                self.handle.add_scalar(name, value, global_step=step)
            self.handle.flush()
        elif self.tool == "mlflow":
            import mlflow

            mlflow.log_metrics({name.replace("@", "_at_"): value for name, value in metrics.items()}, step=step)
        else:
            self.handle.log(metrics, step=step)

    def callback(self) -> Any:
        """The Hugging Face Trainer's callback for this tool, writing into this run."""
        from transformers.integrations import MLflowCallback, TensorBoardCallback, WandbCallback

        if self.tool == "tensorboard":
            return TensorBoardCallback(tb_writer=self.handle)
        return MLflowCallback() if self.tool == "mlflow" else WandbCallback()  # both use the run opened here

    def close(self) -> None:
        if self.tool == "tensorboard":
            self.handle.close()
        elif self.tool == "mlflow":
            import mlflow

            mlflow.end_run()
        else:
            self.handle.finish()

    def save(self, model_dir: Path, step: int) -> None:
        """The run's address beside the weights, for `evaluate` and `gate`."""
        (Path(model_dir) / POINTER).write_text(json.dumps({**self.pointer, "step": step}, indent=2) + "\n",
                                               encoding="utf-8")


def run_name(stage: str = "train") -> str:
    return f"{stage}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def open_run(report_to: str, tensorboard_dir: str, name: str) -> Tracker | None:
    """A new run in the chosen tool, or None for `none`."""
    if report_to == "none":
        return None
    require(report_to)
    if report_to == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        log_dir = Path(tensorboard_dir) / name
        return Tracker("tensorboard", {"tool": "tensorboard", "run": name, "log_dir": str(log_dir)},
                       SummaryWriter(log_dir=str(log_dir)))
    if report_to == "mlflow":
        import mlflow

        run = mlflow.start_run(run_name=name)
        return Tracker("mlflow", {"tool": "mlflow", "run": name, "run_id": run.info.run_id,
                                  "tracking_uri": mlflow.get_tracking_uri()})
    import wandb

    run = wandb.init(name=name, reinit="finish_previous")
    return Tracker("wandb", {"tool": "wandb", "run": name, "run_id": run.id, "project": run.project,
                             "entity": run.entity}, run)


def resume_run(model_dir: Path) -> Tracker | None:
    """The run `train` opened for this model (its `tracking.json`), reopened; None when there is none."""
    path = Path(model_dir) / POINTER
    if not path.is_file():
        return None
    pointer = json.loads(path.read_text(encoding="utf-8"))
    tool = pointer["tool"]
    require(tool)
    if tool == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        return Tracker(tool, pointer, SummaryWriter(log_dir=pointer["log_dir"]))
    if tool == "mlflow":
        import mlflow

        if pointer.get("tracking_uri") and not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri(pointer["tracking_uri"])
        mlflow.start_run(run_id=pointer["run_id"])
        return Tracker(tool, pointer)
    import wandb

    run = wandb.init(id=pointer["run_id"], project=pointer.get("project"), entity=pointer.get("entity"),
                     resume="must")
    return Tracker(tool, pointer, run)


def log_stage_metrics(model_dir: Path, stage: str, metrics: dict[str, Any]) -> None:
    """`stage`'s numeric metrics (`evaluate/accuracy`, `gate/accepted`, ...) into the training run of the model,
    at its last training step, so the tracker shows them beside the curves; nothing without a run."""
    tracker = resume_run(model_dir)
    if tracker is None:
        return
    try:
        figures = flat_numbers(metrics, f"{stage}/")
        tracker.log_metrics(figures, int(tracker.pointer.get("step") or 0))
    finally:
        tracker.close()
    print(f"{stage}: {len(figures)} metrics logged to the {tracker.tool} run {tracker.pointer['run']}", flush=True)
