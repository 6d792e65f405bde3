"""`mlops promote`, `mlops predict`, `mlops retrain-on-drift` and the `params` and `registry` groups: the commands
that act on what the stages built (promotion, batch scoring, the registry, params.yaml, the drift-triggered
retrain), none of them a `dvc.yaml` stage.

Kept apart from mlops/cli.py (the `mlops` group, its --params and the exit statuses) and mlops/cli_stages.py (one
command per stage) because these are the operator's commands around the pipeline. A rejected candidate ends
`promote` and `retrain-on-drift` with `GateRejected`, which mlops/cli.py turns into exit status 3.
mlops/cli.py registers `COMMANDS` on the `mlops` group.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import click

from mlops.cli_feedback import settings_of
from mlops.cli_stages import DVC_YAML, PathArg
from mlops.core import registry as store
from mlops.core.errors import (
    EXIT_FILE_ENV,
    FAILED_EXIT,
    REJECTED_EXIT,
    USER_ERROR_EXIT,
    GateRejected,
    MlopsError,
    StepFailed,
)
from mlops.core.params import apply
from mlops.core.params_reference import explain
from mlops.core.pipeline import stage_path
from mlops.core.registry import PROMOTION_RECORD
from mlops.core.settings import DEFAULT_PARAMS
from mlops.orchestration import runs


def declared(stage: str, option: str) -> Callable[[], Path]:
    """A default read from the stage's command in ./dvc.yaml when the option is left out: paths are written once."""

    return lambda: stage_path(Path.cwd(), stage, option)

SCORED_TEST = click.option("--scored-test", type=PathArg, default=declared("gate", "scored-test"),
                           show_default=DVC_YAML,
                           help="Rows the started Bento must label as the offline model does (missing: the "
                                "reference stored with the model).")
CANARY = click.option("--canary", "canary", type=float, default=None, metavar="SHARE",
                      help="Serve the candidate to this share of requests (0-1) first: promoted in full after "
                           "promote.canary_requests healthy answers, rolled back at the first breach; the command "
                           "waits for the decision (docs/how-to/canary.md).")
PROMOTION_OUT = click.option("--out", type=PathArg, default=Path(PROMOTION_RECORD), show_default=True,
                             help="Where the promotion decision (every infra-validation check) is written.")


@click.command()
@click.option("--package-result", type=PathArg, default=declared("package", "out"), show_default=DVC_YAML)
@SCORED_TEST
@PROMOTION_OUT
@CANARY
@click.pass_context
def promote(ctx: click.Context, package_result: Path, scored_test: Path, out: Path, canary: float | None) -> None:
    """Promote the candidate the gate accepted, after starting its Bento and checking it (not a DVC stage).

    Exit status: 0 promoted or nothing to do, 3 the gate rejected the candidate (its verdict and the next step are
    printed), 2 refused (bad input, the Bento failed a check, or its canary was rolled back), 1 failed. Without
    --canary, `promote.strategy` decides between direct and canary.
    """
    from mlops.serving.promotion import promote_candidate

    result = promote_candidate(settings_of(ctx), package_result, scored_test, out, canary)
    if result.get("rejected"):
        raise GateRejected(rejection_verdict(result))


def rejection_verdict(result: dict) -> str:
    """The lines a rejected candidate ends a command with: the verdict, the next step, the exit status."""
    return (f"verdict: REJECTED by {result.get('rejected_by', 'the gate')}, nothing promoted; the champion keeps "
            f"serving "
            f"(exit {REJECTED_EXIT}: an outcome, not a failure)"
            + (f"\nnext step: {result['next_step']}" if result.get("next_step") else ""))


@click.command()
@click.option("--input", "input_path", type=PathArg, required=True, help="CSV, TSV, JSONL or Parquet file to score.")
@click.option("--output", "output_path", type=PathArg, required=True,
              help="Where the scored rows go (.csv, .tsv, .jsonl or .parquet); written whole or not at all.")
@click.option("--model", "tag", default=None,
              help="Model tag in the BentoML store (or a model directory); default: the registry's champion.")
@click.option("--text", "text_columns", multiple=True, default=("text",), show_default=True,
              help="Text column; give it several times to join columns with a space (as ingest does).")
@click.option("--columns", default=None, help="Comma-separated column names of a headerless CSV/TSV.")
@click.option("--chunk-size", type=int, default=512, show_default=True, help="Texts per model call.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def predict(ctx: click.Context, input_path: Path, output_path: Path, tag: str | None, text_columns: tuple[str, ...],
            columns: str | None, chunk_size: int, no_progress: bool) -> None:
    """Score a file with the champion (or --model): per row, the API's label, score, probabilities, model version."""
    from mlops.serving import batch

    names = tuple(name.strip() for name in columns.split(",")) if columns else None
    batch.run(settings_of(ctx), input_path, output_path, tag, tuple(text_columns), names, chunk_size,
              progress=not no_progress)


@click.group()
def params() -> None:
    """Change params.yaml safely."""


@params.command("apply")
@click.argument("preset", type=PathArg)
@click.pass_context
def params_apply(ctx: click.Context, preset: Path) -> None:
    """Merge a preset (e.g. configs/ag_news.yaml) into params.yaml, validated first."""

    sections = apply(preset, ctx.parent.obj if ctx.parent else DEFAULT_PARAMS)
    click.echo(f"params: applied {preset} ({', '.join(sections)}) to params.yaml")


@params.command("explain")
@click.argument("key")
@click.pass_context
def params_explain(ctx: click.Context, key: str) -> None:
    """Print one parameter's type, default, constraints and description (KEY: dotted, e.g. serve.max_batch_tokens)."""

    click.echo(explain(key, ctx.find_root().obj))


@click.group()
def registry() -> None:
    """The champion, the challenger and the champions before them."""


@registry.command("show")
@click.option("--field", type=click.Choice(["model", "bento"]), default=None,
              help="Print only the champion's model or Bento tag.")
def registry_show(field: str | None) -> None:
    """Print the champion."""

    current = store.champion()
    if current is None:
        raise MlopsError("no champion yet: run the lifecycle (make run) first")
    if field:
        click.echo(current[field])
        return
    for key, value in current.items():
        click.echo(f"{key}: {value}")


@registry.command("list")
@click.pass_context
def registry_list(ctx: click.Context) -> None:
    """Every stored model, newest first, with its alias."""

    rows = store.list_models(settings_of(ctx.find_root()).serve.name)
    if not rows:
        raise MlopsError("the model store is empty: run the lifecycle (make run) first")
    click.echo(f"{'model':<40} {'alias':<12} {'created':<26} {'accuracy':>8} {'macro_f1':>8}  gate")
    for row in rows:
        click.echo(f"{row['model']:<40} {row['alias']:<12} {row['created']:<26} {row['accuracy'] or '-':>8} "
                   f"{row['macro_f1'] or '-':>8}  {row['gate']}")


@registry.command("promote")
@click.argument("model_tag")
@click.option("--bentofile", type=PathArg, default=Path("bentofile.yaml"), show_default=True)
@SCORED_TEST
@PROMOTION_OUT
@CANARY
@click.pass_context
def registry_promote(ctx: click.Context, model_tag: str, bentofile: Path, scored_test: Path, out: Path,
                     canary: float | None) -> None:
    """Make a stored model the champion by hand, through the same checks (its Bento is built if missing);
    directly, or through a canary with --canary SHARE."""
    from mlops.serving.promotion import promote_by_hand

    result = promote_by_hand(settings_of(ctx.find_root()), model_tag, bentofile, scored_test, out, canary)
    if result.get("promoted"):
        click.echo(f"registry: champion is now {result['champion']} (bento {result['candidate']['bento']})")


@registry.command("rollback")
def registry_rollback() -> None:
    """Restore the previous champion; while a canary runs, end the canary instead (the champion stays)."""

    entry = store.rollback()
    if entry.get("canary_ended"):
        click.echo(f"registry: canary of {entry['canary_ended']} ended; services stop routing to it within "
                   f"serve.registry_poll_s; champion is still {entry.get('model')}")
        return
    click.echo(f"registry: rolled back; champion is now {entry['model']} (bento {entry['bento']})")


@click.command("retrain-on-drift")
@click.option("--summary", "summary_path", type=PathArg, default=None,
              help="The monitoring summary that found the drift (default: take the drift as given).")
@click.pass_context
def retrain_on_drift(ctx: click.Context, summary_path: Path | None) -> None:
    """A drift-triggered lifecycle run from the command line, as the Airflow asset event starts one.

    Collects the labels posted to /feedback; with new labelled batches, runs `dvc repro` (retrain, gate) and
    `mlops promote` (if accepted); without, ends (exit 0) saying so, with the labelling queue's size and path.
    Exit status as `mlops promote`'s: 3 when the gate rejected the retrained candidate (the summary, the verdict
    and the next step printed), 2 when a step refused its input, 1 when one failed.
    """
    from datetime import UTC, datetime

    from mlops.loop.retrain import prepare, write_loop_record

    if summary_path is not None:
        status = json.loads(Path(summary_path).read_text(encoding="utf-8")).get("status") \
            if Path(summary_path).is_file() else None
        if status is None:
            raise MlopsError(f"no monitoring summary at {summary_path}")
        if status != "drift":
            click.echo(f"retrain-on-drift: {summary_path} says {status}, not drift: nothing to do")
            return
    project = Path.cwd()
    run_id = f"cli_drift__{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}"
    folder = runs.run_dir(project, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(Path(ctx.obj).read_text(encoding="utf-8"), encoding="utf-8")
    result = prepare(project, [str(summary_path)] if summary_path else [])
    write_loop_record(folder, result)
    click.echo(f"retrain-on-drift: {result['message']}")
    rejected = False
    if result["status"] == "retrain":  # as `make run`: the pipeline builds and judges, then promotion is explicit
        for command in (["dvc", "repro"], ["mlops", "promote"]):
            code, own = run_step(command, project)
            rejected = command[0] == "mlops" and code == REJECTED_EXIT
            if code != 0 and not rejected:
                raise StepFailed(f"{' '.join(command)} failed (exit {code}); the run's record is in {folder}",
                                 own if own in (USER_ERROR_EXIT, FAILED_EXIT) else FAILED_EXIT)
    runs.record(project, run_id)
    if result["status"] == "retrain":
        from mlops.orchestration.summary import main as print_summary

        print_summary()
    if rejected:  # the summary ended with the verdict and the next step
        raise GateRejected("")


def run_step(command: list[str], project: Path) -> tuple[int, int | None]:
    """`command` in the project: its exit status, and the status the mlops command inside reported (`dvc repro`
    exits 1 whichever stage failed, and how; the stage says whether it refused its input)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlops-step-") as scratch:
        exit_file = Path(scratch) / "exit.json"
        code = subprocess.run(command, cwd=project, env={**os.environ, EXIT_FILE_ENV: str(exit_file)}).returncode
        reported = json.loads(exit_file.read_text(encoding="utf-8")) if exit_file.is_file() else {}
    return code, reported.get("exit")

COMMANDS = (promote, predict, params, registry, retrain_on_drift)
