"""`mlops`: one subcommand per lifecycle stage, as dvc.yaml and the DAG call them.

Every subcommand reads params.yaml through the strict settings loader, and
every problem a user can fix ends as one line on stderr with exit status 2,
not as a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mlops.core.errors import MlopsError
from mlops.core.settings import DEFAULT_PARAMS, Settings, load_settings

PathArg = click.Path(path_type=Path)


def project_defaults() -> None:
    """Keep tool state inside the project unless the user chose otherwise."""
    os.environ.setdefault("BENTOML_HOME", str(Path.cwd() / ".bentoml"))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@click.group()
@click.option("--params", "params_path", type=PathArg, default=DEFAULT_PARAMS, show_default=True,
              help="The params file to read settings from.")
@click.pass_context
def cli(ctx: click.Context, params_path: Path) -> None:
    """The text-classification lifecycle, one stage per subcommand."""
    project_defaults()
    ctx.obj = params_path


def settings_of(ctx: click.Context) -> Settings:
    return load_settings(ctx.obj)


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
@click.option("--out", type=PathArg, default=Path("data/generated/corpus.csv"), show_default=True)
@click.pass_context
def generate(ctx: click.Context, out: Path) -> None:
    """Write the offline default corpus (data.generated) as a CSV."""
    from mlops.stages import generate as stage

    settings = settings_of(ctx)
    stage.run(settings.data.generated.rows, settings.data.generated.classes, settings.seed, out)


@cli.command()
@click.option("--out", type=PathArg, default=Path("data/ingested.parquet"), show_default=True)
@click.pass_context
def ingest(ctx: click.Context, out: Path) -> None:
    """Read the configured source(s) into one table of text, label and subset."""
    from mlops.stages import ingest as stage

    stage.run(settings_of(ctx), out)


@cli.command()
@click.option("--data", type=PathArg, default=Path("data/ingested.parquet"), show_default=True,
              help="Any dataset file (Parquet from ingest, or CSV/JSONL/Parquet mapped by data.source).")
@click.option("--out", type=PathArg, default=None, help="Where to write the accepted rows.")
@click.option("--quarantine", type=PathArg, default=None, help="Where to write the quarantined rows, with reasons.")
@click.option("--profile", "profile_path", type=PathArg, default=None,
              help="The last accepted batch's profile: read for shift warnings, replaced on acceptance.")
@click.option("--report-dir", type=PathArg, default=None,
              help="Where summary.json and report.html go (dvc.yaml: reports/validation); "
                   "default: a new reports/adhoc/<time>-validate/ folder.")
@click.pass_context
def validate(ctx: click.Context, data: Path, out: Path | None, quarantine: Path | None, profile_path: Path | None,
             report_dir: Path | None) -> None:
    """Run the Great Expectations suite; exit non-zero when the batch is rejected."""
    from mlops.stages import validate as stage

    report_dir = report_dir or adhoc_dir("validate")
    stage.run(settings_of(ctx), data, out, report_dir, quarantine, profile_path)


@cli.command()
@click.option("--data", type=PathArg, default=Path("data/validated.parquet"), show_default=True)
@click.option("--out-dir", type=PathArg, default=Path("data/split"), show_default=True)
@click.pass_context
def split(ctx: click.Context, data: Path, out_dir: Path) -> None:
    """Stratified, seeded train/validation/test split."""
    from mlops.stages import split as stage

    stage.run(settings_of(ctx), data, out_dir)


@cli.command()
@click.option("--split-dir", type=PathArg, default=Path("data/split"), show_default=True)
@click.option("--out", type=PathArg, default=Path("models/candidate"), show_default=True)
@click.option("--metrics", type=PathArg, default=Path("metrics/train.json"), show_default=True)
@click.option("--live-dir", type=PathArg, default=Path("dvclive"), show_default=True)
@click.option("--curves", type=PathArg, default=Path("plots/training_curves.png"), show_default=True)
@click.pass_context
def train(ctx: click.Context, split_dir: Path, out: Path, metrics: Path, live_dir: Path, curves: Path) -> None:
    """Fine-tune model.base on the train split with the Hugging Face Trainer (resumes an interrupted run)."""
    from mlops.stages import train as stage

    stage.run(settings_of(ctx), split_dir, out, metrics, live_dir, curves)


@cli.command()
@click.option("--model", type=PathArg, default=Path("models/candidate"), show_default=True)
@click.option("--split-dir", type=PathArg, default=Path("data/split"), show_default=True)
@click.option("--scored-dir", type=PathArg, default=Path("data/scored"), show_default=True)
@click.option("--metrics", type=PathArg, default=Path("metrics/evaluate.json"), show_default=True)
@click.option("--plots-dir", type=PathArg, default=Path("plots"), show_default=True)
@click.pass_context
def evaluate(ctx: click.Context, model: Path, split_dir: Path, scored_dir: Path, metrics: Path,
             plots_dir: Path) -> None:
    """Score the validation and test splits; write metrics and a confusion matrix."""
    from mlops.stages import evaluate as stage

    stage.run(settings_of(ctx), model, split_dir, scored_dir, metrics, plots_dir)


@cli.command()
@click.option("--metrics", type=PathArg, default=Path("metrics/evaluate.json"), show_default=True)
@click.option("--model", type=PathArg, default=Path("models/candidate"), show_default=True)
@click.option("--scored-test", type=PathArg, default=Path("data/scored/test.parquet"), show_default=True)
@click.option("--train", "train_path", type=PathArg, default=Path("data/split/train.parquet"), show_default=True)
@click.option("--out", type=PathArg, default=Path("reports/gate/decision.json"), show_default=True)
@click.option("--card", type=PathArg, default=Path("reports/gate/model_card.md"), show_default=True)
@click.pass_context
def gate(ctx: click.Context, metrics: Path, model: Path, scored_test: Path, train_path: Path, out: Path,
         card: Path) -> None:
    """Decide whether the candidate may replace the champion; write the reasons and a model card."""
    from mlops.stages import gate as stage

    stage.run(settings_of(ctx), metrics, model, scored_test, train_path, out, card)


@cli.command()
@click.option("--decision", type=PathArg, default=Path("reports/gate/decision.json"), show_default=True)
@click.option("--model", type=PathArg, default=Path("models/candidate"), show_default=True)
@click.option("--metrics", type=PathArg, default=Path("metrics/evaluate.json"), show_default=True)
@click.option("--bentofile", type=PathArg, default=Path("bentofile.yaml"), show_default=True)
@click.option("--card", type=PathArg, default=Path("reports/gate/model_card.md"), show_default=True)
@click.option("--reference", type=PathArg, default=Path("data/scored/validation.parquet"), show_default=True,
              help="Scored validation split stored with the model as monitoring's reference.")
@click.option("--out", type=PathArg, default=Path("reports/package.json"), show_default=True)
@click.pass_context
def package(ctx: click.Context, decision: Path, model: Path, metrics: Path, bentofile: Path, card: Path,
            reference: Path, out: Path) -> None:
    """Register an accepted model, build its Bento and make it the champion."""
    from mlops.stages import package as stage

    stage.run(settings_of(ctx), decision, model, metrics, bentofile, card, out, reference)


@cli.command()
@click.option("--reference", type=PathArg, default=Path("data/scored/validation.parquet"), show_default=True,
              help="Scored validation split of --model; traffic of a registered version uses that version's own.")
@click.option("--model", "model_dir", type=PathArg, default=Path("models/candidate"), show_default=True,
              help="Scores a current file that has no predictions or embeddings.")
@click.option("--current", type=str, default=None,
              help="Traffic log (file or directory), or any CSV/TSV/JSONL/Parquet file with a text column; "
                   "`test` for the scored test split; default: monitor.current.")
@click.option("--scored-test", type=PathArg, default=Path("data/scored/test.parquet"), show_default=True)
@click.option("--out-dir", type=PathArg, default=None,
              help="Where the report goes (dvc.yaml: reports/monitoring); "
                   "default: a new reports/adhoc/<time>-monitor/ folder.")
@click.option("--no-history", is_flag=True, help="Do not archive this report in monitor.history_dir.")
@click.pass_context
def monitor(ctx: click.Context, reference: Path, model_dir: Path, current: str | None, scored_test: Path,
            out_dir: Path | None, no_history: bool) -> None:
    """Compare served traffic (or a stand-in) with the reference; report drift. Exit 0 whatever the verdict."""
    from mlops.stages import monitor as stage

    out_dir = out_dir or adhoc_dir("monitor")
    stage.run(settings_of(ctx), reference, current, scored_test, out_dir, model_dir=model_dir,
              history=not no_history)


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
def registry_promote(model_tag: str, bentofile: Path) -> None:
    """Make a stored model the champion by hand (its Bento is built if missing)."""
    from mlops.stages.package import promote_existing

    entry = promote_existing(model_tag, bentofile)
    click.echo(f"registry: champion is now {entry['model']} (bento {entry['bento']})")


@registry.command("rollback")
def registry_rollback() -> None:
    """Restore the previous champion."""
    from mlops.core import registry as store

    entry = store.rollback()
    click.echo(f"registry: rolled back; champion is now {entry['model']} (bento {entry['bento']})")


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="mlops", standalone_mode=False)
    except MlopsError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
