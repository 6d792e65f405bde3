"""`mlops feedback …` and `mlops keys …`: labels from production and labelling tools, who gave them, and the
credentials that tell a labeller from a client.

Kept out of mlops/cli_stages.py (the stages' commands) because they are the loop's
and the service's commands, not stages: none of them is in dvc.yaml.
"""

from __future__ import annotations

import getpass
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlops.core.environment import environment, feedback_dir, traffic_dir
from mlops.core.errors import MlopsError
from mlops.core.feedback_log import FEEDBACK_FILE
from mlops.core.io import atomic_path
from mlops.core.settings import Settings, load_settings
from mlops.serving.credentials import Credentials, digest_of, read_keys_file

if TYPE_CHECKING:  # the loop's modules load pandas: only the commands that need them import them
    from mlops.loop.batches import Outcome

PathArg = click.Path(path_type=Path)


def settings_of(ctx: click.Context) -> Settings:
    """The validated params of this invocation (the root command's --params), for any subcommand depth."""
    return load_settings(ctx.find_root().obj)


def describe(outcome: Outcome, origin: str) -> str:
    """One line for a collection or import: the new batch, or the held one and why."""
    if outcome.held is not None:
        return (f"{outcome.rows} labels from {origin} HELD for review as {outcome.held.stem}: "
                f"{'; '.join(outcome.reasons)} (`mlops feedback held`, then approve or reject it)")
    return f"{outcome.rows} new labels from {origin}" + (f" -> {outcome.batch}" if outcome.batch else ": no new batch")


@click.group()
def feedback() -> None:
    """Labels from production and from labelling tools: batches of new data, review, the labelling queue."""


@feedback.command("import")
@click.argument("file", type=PathArg)
@click.pass_context
def feedback_import(ctx: click.Context, file: Path) -> None:
    """Add a labelled CSV or JSONL file (columns text, label; optional id), or a Label Studio JSON or JSON-MIN
    export, as a new data batch (an operator's labels: trusted, and screened against the champion before they
    become data)."""
    from mlops.loop.batches import import_file

    outcome = import_file(settings_of(ctx), file)
    tasks = f"{outcome.unannotated} Label Studio task{'s' if outcome.unannotated != 1 else ''}"
    note = f" ({tasks} without an annotation skipped)" if outcome.unannotated else ""
    click.echo((f"feedback: {describe(outcome, str(file))}" if outcome.held else
                f"feedback: imported {outcome.rows} labelled texts from {file} -> {outcome.batch}") + note)


@feedback.command("collect")
@click.option("--log", "log_path", type=PathArg, default=None,
              help="The labellers' feedback log (default: $MLOPS_FEEDBACK_DIR/feedback.jsonl, else "
                   "<project>/logs/feedback/).")
@click.pass_context
def feedback_collect(ctx: click.Context, log_path: Path | None) -> None:
    """Turn labellers' labels posted to /feedback that no batch holds yet into a new data batch (or a held one)."""
    from mlops.loop.batches import collect_served

    log_path = log_path or feedback_dir() / FEEDBACK_FILE
    outcome = collect_served(settings_of(ctx), log_path)
    notes = [f"{outcome.skipped_without_text} without their text: hashed traffic log"] \
        if outcome.skipped_without_text else []
    if outcome.untrusted:
        notes.append(f"{outcome.untrusted} without a labeller's role left out")
    click.echo(f"feedback: {describe(outcome, str(log_path))}" + (f" ({'; '.join(notes)})" if notes else ""))


@feedback.command("queue")
@click.option("--current", type=str, default=None,
              help="Traffic log directory or file (default: $MLOPS_TRAFFIC_DIR, else <project>/logs/traffic).")
@click.option("--out-dir", type=PathArg, default=None, help="Where to write the queue (default: feedback.queue_dir).")
@click.pass_context
def feedback_queue(ctx: click.Context, current: str | None, out_dir: Path | None) -> None:
    """Write the labelling queue: clients' suggestions to confirm, then the least confident traffic."""
    from mlops.core.labelling_queue import write_queue
    from mlops.core.traffic_log import read_traffic

    settings = settings_of(ctx)
    window = read_traffic(Path(current) if current else traffic_dir(), settings.monitor.window_rows,
                          settings.monitor.window_hours)
    path, rows = write_queue(settings, window, out_dir)
    click.echo(f"feedback: {rows} texts queued for labelling at {path} "
               f"(and {path.with_name('queue.labelstudio.json')})")


@feedback.command("sources")
@click.pass_context
def feedback_sources(ctx: click.Context) -> None:
    """Who gave the labels and suggestions: per source, its role, count, share and agreement with the model."""
    from mlops.loop.provenance import source_table

    table = source_table(settings_of(ctx), feedback_dir())
    if table.empty:
        click.echo("feedback: no labels or suggestions yet")
        return
    click.echo(table.to_string(index=False))


@feedback.command("held")
@click.option("--all", "show_all", is_flag=True, help="Also the batches already approved or rejected.")
@click.pass_context
def feedback_held(ctx: click.Context, show_all: bool) -> None:
    """The batches held for review: why, and the evidence."""
    from mlops.loop.held import read_records

    records = [r for r in read_records(Path(settings_of(ctx).feedback.held_dir))
               if show_all or r.get("status") == "held"]
    if not records:
        click.echo("feedback: no batch is held for review")
        return
    for record in records:
        evidence = record.get("evidence") or {}
        click.echo(f"{record['name']}  {record.get('status')}  {record.get('rows')} rows from {record.get('origin')}"
                   f"  held {record.get('held_at', '?')}")
        for reason in record.get("reasons", []):
            click.echo(f"  reason: {reason}")
        if evidence.get("confident_rows") is not None:
            click.echo(f"  evidence: {evidence.get('contradicting_rows')} of {evidence.get('confident_rows')} "
                       f"confident answers contradicted (interval {evidence.get('contradiction_interval')}, limit "
                       f"{evidence.get('limit')}, champion error {evidence.get('champion_error')})")
        for source, figures in (evidence.get("sources") or {}).items():
            click.echo(f"  source {source}: {figures['rows']} rows ({figures['share']:.0%}), agreement with the "
                       f"model {figures['agreement'] if figures['agreement'] is not None else 'unknown'}")
        if record.get("decided_by"):
            click.echo(f"  decided by {record['decided_by']} at {record.get('decided_at')}")


def decide_held(ctx: click.Context, name: str, status: str, note: str) -> None:
    from mlops.loop.batches import track_with_dvc
    from mlops.loop.held import decide

    settings = settings_of(ctx)
    record = decide(settings, name, status, environment().operator or getpass.getuser(), note)
    if status == "approved":
        track_with_dvc(Path(settings.feedback.batches_dir))
        click.echo(f"feedback: {record['name']} approved -> {record['batch']} (the next run trains on it)")
    else:
        click.echo(f"feedback: {record['name']} rejected; its labels will not be collected again")


@feedback.command("approve")
@click.argument("name")
@click.option("--note", default="", help="Why (kept in the batch's record).")
@click.pass_context
def feedback_approve(ctx: click.Context, name: str, note: str) -> None:
    """Approve a held batch: it becomes data, and the next run trains and judges on it."""
    decide_held(ctx, name, "approved", note)


@feedback.command("reject")
@click.argument("name")
@click.option("--note", default="", help="Why (kept in the batch's record).")
@click.pass_context
def feedback_reject(ctx: click.Context, name: str, note: str) -> None:
    """Reject a held batch: its labels never become data, and no later run is blocked by it."""
    decide_held(ctx, name, "rejected", note)


@click.group()
def keys() -> None:
    """Credentials for the service: named keys with roles, kept as SHA-256 digests in a keys file."""


@keys.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["client", "labeller", "metrics"]), required=True)
@click.option("--file", "keys_file", type=PathArg, required=True, help="The keys file ($MLOPS_KEYS_FILE).")
def keys_add(name: str, role: str, keys_file: Path) -> None:
    """Make a new random key for NAME, store its digest in the keys file, print the key once."""
    import yaml


    entries = [{"name": c.name, "role": c.role, "sha256": c.digest.hex()}
               for c in (read_keys_file(keys_file) if keys_file.is_file() else [])]
    if any(entry["name"] == name for entry in entries):
        raise MlopsError(f"keys file {keys_file}: {name!r} has a key already")
    key = secrets.token_urlsafe(32)
    entries.append({"name": name, "role": role, "sha256": digest_of(key).hex()})
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(keys_file) as tmp:
        tmp.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    keys_file.chmod(0o600)  # digests only, but nobody else's to read
    read_keys_file(keys_file)  # re-read: a file that would not load is caught before the key is shown
    click.echo(key)
    click.echo(f"keys: {name} ({role}) added to {keys_file}; the key above is shown once", err=True)


@keys.command("check")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address the server will listen on.")
@click.pass_context
def keys_check(ctx: click.Context, host: str) -> None:
    """Refuse (exit 2) to let a server listen beyond loopback without keys; `make serve` runs it first."""

    credentials = Credentials.from_environment(settings_of(ctx).serve)
    refusal = credentials.refusal(host)
    if refusal:
        raise MlopsError(refusal)
    if not credentials.guarded:
        click.echo("keys: no client or labeller key set: keyless requests are answered from loopback only", err=True)
        if credentials.allow_anonymous:
            click.echo("keys: WARNING: serve.allow_anonymous is true: anyone who reaches the port is an anonymous "
                       "client", err=True)
