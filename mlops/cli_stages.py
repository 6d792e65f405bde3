"""`mlops generate` … `mlops package` and `mlops monitor`: one subcommand per `dvc.yaml` stage, as dvc.yaml and
the DAGs call them.

Kept apart from mlops/cli.py (the `mlops` group, its --params and the exit statuses) and mlops/cli_operations.py
(promotion, batch scoring, the registry and params groups, the drift-triggered retrain) because each command here
is a stage's front door: its path options default to what dvc.yaml passes the stage, and it hands them to the
stage's typed IO and `run()`. mlops/cli.py registers `COMMANDS` on the `mlops` group.
"""

from __future__ import annotations

from pathlib import Path

import click

from mlops.cli_feedback import settings_of
from mlops.core.sources import check_sources

PathArg = click.Path(path_type=Path)
DVC_YAML = "as dvc.yaml passes it"
Given = Path | None  # an option left out is None: the stage's IO takes that path from dvc.yaml

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


@click.command()
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


@click.command()
@click.option("--out", type=PathArg, default=None, show_default=DVC_YAML)
@click.pass_context
def ingest(ctx: click.Context, out: Path | None) -> None:
    """Read the configured source(s) into one table of text, label and subset."""
    from mlops.stages import ingest as stage

    settings = settings_of(ctx)
    check_sources(settings, Path.cwd())  # data.allowed_sources, before anything is fetched or read
    stage.run(settings, stage.IngestIO.from_dvc(Path.cwd(), out=out))


@click.command()
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


@click.command()
@click.option("--data", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--out-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.pass_context
def split(ctx: click.Context, data: Path | None, out_dir: Path | None) -> None:
    """Stratified, seeded train/validation/test split."""
    from mlops.stages import split as stage

    stage.run(settings_of(ctx), stage.SplitIO.from_dvc(Path.cwd(), data=data, out_dir=out_dir))


@click.command()
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


@click.command()
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


@click.command()
@click.option("--model", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--out-dir", type=PathArg, default=None, show_default=DVC_YAML)
@click.option("--student", type=PathArg, default=None, show_default=DVC_YAML,
              help="The distill stage's output: its student, when it holds one, is converted too.")
@click.pass_context
def optimize(ctx: click.Context, model: Path | None, out_dir: Path | None, student: Path | None) -> None:
    """Convert the candidate (and its distilled student) into the serving variants of optimize.variants."""
    from mlops.stages import optimize as stage

    stage.run(settings_of(ctx), stage.OptimizeIO.from_dvc(Path.cwd(), model=model, out_dir=out_dir, student=student))


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
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


COMMANDS = (generate, ingest, validate, split, train, distill, optimize, evaluate, gate, refit, package, monitor)
