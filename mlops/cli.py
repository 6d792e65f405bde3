"""`mlops`: one subcommand per lifecycle stage, as dvc.yaml and the DAG call them.

Every subcommand reads params.yaml through the strict settings loader, and
every problem a user can fix ends as one line on stderr with exit status 2,
not as a traceback. A candidate the gate rejected is an outcome, not an
error: `mlops promote` and `mlops retrain-on-drift` print the verdict and the
next step and end with exit status 3 (docs: reference/exit-status.md).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from mlops.cli_feedback import feedback, keys, settings_of
from mlops.core.environment import apply_defaults, environment
from mlops.core.errors import (
    EXIT_FILE_ENV,
    FAILED_EXIT,
    REJECTED_EXIT,
    USER_ERROR_EXIT,
    GateRejected,
    MlopsError,
    StepFailed,
)
from mlops.core.registry import PROMOTION_RECORD
from mlops.core.settings import DEFAULT_PARAMS

PathArg = click.Path(path_type=Path)
DVC_YAML = "as dvc.yaml passes it"
Given = Path | None  # an option left out is None: the stage's IO takes that path from dvc.yaml


def declared(stage: str, option: str) -> Callable[[], Path]:
    """A default read from the stage's command in ./dvc.yaml when the option is left out: paths are written once."""
    from mlops.core.pipeline import stage_path

    return lambda: stage_path(Path.cwd(), stage, option)


@click.group()
@click.option("--params", "params_path", type=PathArg, default=DEFAULT_PARAMS, show_default=True,
              help="The params file to read settings from.")
@click.pass_context
def cli(ctx: click.Context, params_path: Path) -> None:
    """The text-classification lifecycle, one stage per subcommand."""
    apply_defaults(Path.cwd())
    ctx.obj = params_path


ADHOC_DIR = Path("reports/adhoc")


def adhoc_dir(command: str) -> Path:
    """A new folder of its own for a hand run: reports/adhoc/<UTC time>-<command>/.

    dvc.yaml names the pipeline's output folders explicitly; a hand run that wrote there would make the
    next `dvc repro` see the stage as changed and lose the pipeline's own report."""
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = ADHOC_DIR / f"{stamp}-{command}"
    folder.mkdir(parents=True, exist_ok=False)
    click.echo(f"{command}: no output folder given; this hand run writes to {folder}/")
    return folder


@cli.command()
@click.option("--out", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--variant", type=click.Choice(["original", "shifted"]), default="original", show_default=True,
              help="shifted: the same classes in new products' vocabulary and new phrasing (drifted traffic).")
@click.option("--rows", type=int, default=None, help="Rows to write (default: data.generated.rows).")
@click.option("--seed", type=int, default=None, help="Seed (default: the params' seed).")
@click.pass_context
def generate(ctx: click.Context, out: Path | None, variant: str, rows: int | None, seed: int | None) -> None:
    """Write the offline default corpus (data.generated) as a CSV, or its shifted variant."""
    from mlops.stages import generate as stage

    stage.run(settings_of(ctx), stage.GenerateIO.from_dvc(Path.cwd(), out=out), variant=variant, rows=rows,
              seed=seed)


@cli.command()
@click.option("--out", type=PathArg, default=None, show_default=DVC_YAML)
@click.pass_context
def ingest(ctx: click.Context, out: Path | None) -> None:
    """Read the configured source(s) into one table of text, label and subset."""
    from mlops.core.sources import check_sources
    from mlops.stages import ingest as stage

    settings = settings_of(ctx)
    check_sources(settings, Path.cwd())  # data.allowed_sources, before anything is fetched or read
    stage.run(settings, stage.IngestIO.from_dvc(Path.cwd(), out=out))


@cli.command()
@click.option("--data", type=PathArg, default=None, show_default=DVC_YAML,
              help="Any dataset file (Parquet from ingest, or CSV/JSONL/Parquet mapped by data.source).")
@click.option("--out", type=PathArg, default=None, help="Where to write the accepted rows.")
@click.option("--quarantine", type=PathArg, default=None, help="Where to write the quarantined rows, with reasons.")
@click.option("--profile", "profile_path", type=PathArg, default=None,
              help="The last accepted batch's profile: read for shift warnings, replaced on acceptance.")
@click.option("--report-dir", type=PathArg, default=None,
              help="Where summary.json and report.html go (dvc.yaml's path for the pipeline); "
                   "default: a new reports/adhoc/<time>-validate/ folder.")
@click.pass_context
def validate(ctx: click.Context, data: Path | None, out: Path | None, quarantine: Path | None,
             profile_path: Path | None, report_dir: Path | None) -> None:
    """Run the Great Expectations suite; exit non-zero when the batch is rejected."""
    from mlops.stages import validate as stage

    # dvc.yaml gives the data only: a hand run writes no dataset, quarantine or profile it was not asked for
    io = stage.ValidateIO.from_dvc(Path.cwd(), data=data).model_copy(update={
        "out": out, "quarantine": quarantine, "profile": profile_path,
        "report_dir": report_dir or adhoc_dir("validate")})
    stage.run(settings_of(ctx), io)


@cli.command()
@click.option("--data", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--out-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.pass_context
def split(ctx: click.Context, data: Path | None, out_dir: Path | None) -> None:
    """Stratified, seeded train/validation/test split."""
    from mlops.stages import split as stage

    stage.run(settings_of(ctx), stage.SplitIO.from_dvc(Path.cwd(), data=data, out_dir=out_dir))


@cli.command()
@click.option("--split-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--out", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--metrics", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--live-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--curves", type=PathArg, default=None, show_default=DVC_YAML)
@click.pass_context
def train(ctx: click.Context, split_dir: Path | None, out: Path | None, metrics: Path | None, live_dir: Path | None,
          curves: Path | None) -> None:
    """Fine-tune model.base on the train split with the Hugging Face Trainer (resumes an interrupted run)."""
    from mlops.stages import train as stage

    stage.run(settings_of(ctx), stage.TrainIO.from_dvc(Path.cwd(), split_dir=split_dir, out=out, metrics=metrics,
                                                       live_dir=live_dir, curves=curves))


@cli.command()
@click.option("--model", type=PathArg, default=None, show_default=DVC_YAML,
              help="The fine-tuned candidate: the teacher, and what the student is pruned from.")
@click.option("--split-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--out", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--metrics", type=PathArg, default=None, show_default=DVC_YAML)
@click.pass_context
def distill(ctx: click.Context, model: Path | None, split_dir: Path | None, out: Path | None,
            metrics: Path | None) -> None:
    """Prune the candidate to fewer layers and distil it on the train split (distill.*; resumes a killed run)."""
    from mlops.stages import distill as stage

    stage.run(settings_of(ctx), stage.DistillIO.from_dvc(Path.cwd(), model=model, split_dir=split_dir, out=out,
                                                         metrics=metrics))


@cli.command()
@click.option("--model", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--out-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--student", type=PathArg, default=None, show_default=DVC_YAML,
              help="The distill stage's output: its student, when it holds one, is converted too.")
@click.pass_context
def optimize(ctx: click.Context, model: Path | None, out_dir: Path | None, student: Path | None) -> None:
    """Convert the candidate (and its distilled student) into the serving variants of optimize.variants."""
    from mlops.stages import optimize as stage

    stage.run(settings_of(ctx), stage.OptimizeIO.from_dvc(Path.cwd(), model=model, out_dir=out_dir, student=student))


@cli.command()
@click.option("--model", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--split-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--scored-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--metrics", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--plots-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--optimized-dir", type=PathArg, default=None, show_default=DVC_YAML,
              help="The optimize stage's variants (variants.json); each is scored against fp32.")
@click.pass_context
def evaluate(ctx: click.Context, model: Given, split_dir: Given, scored_dir: Given, metrics: Given,
             plots_dir: Given, optimized_dir: Given) -> None:
    """Score the validation and test splits and every serving variant; write metrics and a confusion matrix."""
    from mlops.stages import evaluate as stage

    stage.run(settings_of(ctx), stage.EvaluateIO.from_dvc(model=model, split_dir=split_dir, scored_dir=scored_dir,
                                                          metrics=metrics, plots_dir=plots_dir,
                                                          optimized_dir=optimized_dir))


@cli.command()
@click.option("--metrics", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--model", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--scored-test", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--train", "train_path", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--out", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--card", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--scored-recent", type=PathArg, default=None, show_default=DVC_YAML,
              help="The scored recent set (held-out feedback); judged with gate.promote_if when large enough.")
@click.option("--optimized-dir", type=PathArg, default=None, show_default=DVC_YAML,
              help="The optimize stage's variants: the chosen one is timed against what the champion serves.")
@click.pass_context
def gate(ctx: click.Context, metrics: Given, model: Given, scored_test: Given, train_path: Given, out: Given,
         card: Given, scored_recent: Given, optimized_dir: Given) -> None:
    """Decide whether the candidate may replace the champion; write the reasons and a model card."""
    from mlops.stages import gate as stage

    stage.run(settings_of(ctx), stage.GateIO.from_dvc(metrics=metrics, model=model, scored_test=scored_test,
                                                      train=train_path, out=out, card=card,
                                                      scored_recent=scored_recent, optimized_dir=optimized_dir))


@cli.command()
@click.option("--decision", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--train-metrics", type=PathArg, default=None, show_default=DVC_YAML,
              help="The train stage's summary: where the judged candidate started (the champion it continued from).")
@click.option("--model", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--split-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--optimized-dir", type=PathArg, default=None, show_default=DVC_YAML,
              help="The judged candidate's variants: the refit is checked against the one the gate chose.")
@click.option("--out-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--record", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--card", type=PathArg, default=None, show_default=DVC_YAML,
              help="The gate's model card.")
@click.option("--card-out", type=PathArg, default=None, show_default=DVC_YAML,
              help="The model card package stores: the gate's, with a section on the refit.")
@click.pass_context
def refit(ctx: click.Context, decision: Path | None, train_metrics: Path | None, model: Path | None,
          split_dir: Path | None, optimized_dir: Path | None, out_dir: Path | None, record: Path | None,
          card: Path | None, card_out: Path | None) -> None:
    """After an accepted feedback retrain, refit the model to package on every label, the recent set included."""
    from mlops.stages import refit as stage

    stage.run(settings_of(ctx), stage.RefitIO.from_dvc(
        Path.cwd(), decision=decision, train_metrics=train_metrics, model=model, split_dir=split_dir,
        optimized_dir=optimized_dir, out_dir=out_dir, record=record, card=card, card_out=card_out))


@cli.command()
@click.option("--decision", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--model", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--metrics", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--bentofile", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--card", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--reference", type=PathArg, default=None, show_default=DVC_YAML,
              help="Scored validation split stored with the model as monitoring's reference.")
@click.option("--out", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--optimized-dir", type=PathArg, default=None, show_default=DVC_YAML,
              help="The optimize stage's variants: the one the gate chose is stored with the model.")
@click.option("--refit", "refit_record", type=PathArg, default=None, show_default=DVC_YAML,
              help="The refit stage's record: when it packaged the refit, its weights and variant are stored "
                   "instead of --model's and --optimized-dir's.")
@click.pass_context
def package(ctx: click.Context, decision: Given, model: Given, metrics: Given, bentofile: Given, card: Given,
            reference: Given, out: Given, optimized_dir: Given, refit_record: Given) -> None:
    """Store an accepted model and build its Bento: the candidate (`mlops promote` makes it champion)."""
    from mlops.stages import package as stage

    stage.run(settings_of(ctx), stage.PackageIO.from_dvc(decision=decision, model=model, metrics=metrics,
                                                         bentofile=bentofile, card=card, out=out, reference=reference,
                                                         optimized_dir=optimized_dir, refit=refit_record))


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


@cli.command()
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


@cli.command()
@click.option("--reference", type=PathArg, default=None, show_default=DVC_YAML,
              help="Scored validation split of --model; traffic of a registered version uses that version's own.")
@click.option("--model", "model_dir", type=PathArg, default=None, show_default=DVC_YAML,
              help="Scores a current file that has no predictions or embeddings.")
@click.option("--current", type=str, default=None,
              help="Traffic log (file or directory), or any CSV/TSV/JSONL/Parquet file with a text column; "
                   "`test` for the scored test split; default: monitor.current.")
@click.option("--scored-test", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--out-dir", type=PathArg, default=None,
              help="Where the report goes (dvc.yaml's path for the pipeline); "
                   "default: a new reports/adhoc/<time>-monitor/ folder.")
@click.option("--no-history", is_flag=True,
              help="Do not archive this report in monitor.history_dir nor add it to monitor.workspace.")
@click.pass_context
def monitor(ctx: click.Context, reference: Path | None, model_dir: Path | None, current: str | None,
            scored_test: Path | None, out_dir: Path | None, no_history: bool) -> None:
    """Compare served traffic (or a stand-in) with the reference; report drift, and the live quality the returned
    labels show. Exit 0 whatever the verdict."""
    from mlops.stages import monitor as stage

    # the report goes where dvc.yaml says only when the command says so: a hand run gets a folder of its own
    io = stage.MonitorIO.from_dvc(Path.cwd(), reference=reference, model=model_dir, scored_test=scored_test,
                                  out_dir=out_dir)
    if out_dir is None:
        io = io.model_copy(update={"out_dir": adhoc_dir("monitor")})
    stage.run(settings_of(ctx), io, current=current, history=not no_history)


@cli.command()
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


@cli.group()
def params() -> None:
    """Change params.yaml safely."""


@params.command("apply")
@click.argument("preset", type=PathArg)
@click.pass_context
def params_apply(ctx: click.Context, preset: Path) -> None:
    """Merge a preset (e.g. configs/ag_news.yaml) into params.yaml, validated first."""
    from mlops.core.params import apply

    sections = apply(preset, ctx.parent.obj if ctx.parent else DEFAULT_PARAMS)
    click.echo(f"params: applied {preset} ({', '.join(sections)}) to params.yaml")


@params.command("explain")
@click.argument("key")
@click.pass_context
def params_explain(ctx: click.Context, key: str) -> None:
    """Print one parameter's type, default, constraints and description (KEY: dotted, e.g. serve.max_batch_tokens)."""
    from mlops.core.params_reference import explain

    click.echo(explain(key, ctx.find_root().obj))


@cli.group()
def registry() -> None:
    """The champion, the challenger and the champions before them."""


@registry.command("show")
@click.option("--field", type=click.Choice(["model", "bento"]), default=None,
              help="Print only the champion's model or Bento tag.")
def registry_show(field: str | None) -> None:
    """Print the champion."""
    from mlops.core import registry as store

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
    from mlops.core import registry as store

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
    from mlops.core import registry as store

    entry = store.rollback()
    if entry.get("canary_ended"):
        click.echo(f"registry: canary of {entry['canary_ended']} ended; services stop routing to it within "
                   f"serve.registry_poll_s; champion is still {entry.get('model')}")
        return
    click.echo(f"registry: rolled back; champion is now {entry['model']} (bento {entry['bento']})")


@cli.command("retrain-on-drift")
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
    from mlops.orchestration import runs

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

cli.add_command(feedback)
cli.add_command(keys)


def report_exit(code: int, error: str | None) -> None:
    """Tell a driver that asked (MLOPS_EXIT_FILE) how this command ended."""
    target = environment().exit_file
    if target is not None:
        target.write_text(json.dumps({"exit": code, "error": error}), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    code, message = 0, None
    try:
        cli.main(args=argv, prog_name="mlops", standalone_mode=False)
    except GateRejected as verdict:  # an outcome: the verdict on stdout, no "error:"
        code, message = REJECTED_EXIT, str(verdict) or "rejected by the gate"
        if str(verdict):
            click.echo(message)
    except MlopsError as error:
        code, message = getattr(error, "exit_code", USER_ERROR_EXIT), f"error: {error}"
        click.echo(message, err=True)
    except click.exceptions.Abort:
        code = 130
    except click.ClickException as error:
        error.show()
        code, message = error.exit_code, f"error: {error.format_message()}"
    except BaseException as error:
        report_exit(1, f"{type(error).__name__}: {error}")
        raise
    report_exit(code, message)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
