"""One lifecycle run triggered from Airflow: its parameters, its record, its failure summary.

A run is triggered with a few Airflow Params (the knobs users change most,
each mapped to a dotted params.yaml key below). Airflow validates them
against their JSON schema when the run is triggered; the run's first task,
`configure`, keeps params.yaml's exact bytes aside, then merges the ones that
were given into it after the whole merged file passed the strict settings,
so a bad combination fails there, naming the key. The stages then run as
they always do, reading params.yaml, and DVC re-runs exactly the stages whose
parameters changed. The run's last task, `restore_params` (which runs whatever
happened before it), puts the kept bytes back: a trigger's parameters apply to
that run only, never to the next one or to a drift-triggered run. The run's
record keeps the parameters it ran with. A run whose worker died before
restoring leaves the kept copy behind; the next run's `configure` restores it
before anything else.

Runs never overlap (the DAG allows one active run; the others queue), and
each run leaves its own record under reports/runs/<run id>/: the overrides,
the params it ran with, its metrics, gate decision and package result, or a
failure summary. Later runs change the workspace outputs, never another run's
record. A run started by drift (an event of the `monitoring` DAG's asset)
also records the monitoring report(s) that started it (trigger.json, and
`triggered_by` in run.json); each monitoring run writes its own report under
reports/monitoring-runs/<run id>/.

Only the standard library and PyYAML are imported here: the DAG file imports
this module, and parsing it must stay fast.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mlops.core.dotted import get_dotted
from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path
from mlops.core.params import apply_overrides
from mlops.core.pipeline import SHIPPED, inside, load_stage_graph, stage_path
from mlops.core.records import detail_path
from mlops.core.redact import redact, write_redacted
from mlops.core.registry import PROMOTION_RECORD
from mlops.core.settings import parse_settings
from mlops.core.sources import check_sources, scheme_and_host

# A path, URL or model name pasted with a space before or after it: refused when the run is triggered
NO_EDGE_SPACE = r"^\S(.*\S)?$"
# Trigger form: name -> (params.yaml key, JSON schema without null, help).
# Every field defaults to null, meaning "as params.yaml says".
TRIGGER_PARAMS: dict[str, tuple[str, dict[str, Any], str]] = {
    "data_source": ("data.source.path", {"type": "string", "minLength": 1, "pattern": NO_EDGE_SPACE},
                    "Labelled data: a local path (CSV, TSV, JSONL, Parquet) or an http(s)/s3 URL, as "
                    "data.allowed_sources allows."),
    "data_format": ("data.source.format", {"type": "string", "enum": ["auto", "csv", "tsv", "jsonl", "parquet"]},
                    "Format of data_source."),
    "generated_rows": ("data.generated.rows", {"type": "integer", "minimum": 50, "maximum": 1_000_000},
                       "Rows of the generated offline corpus (when data_source is that corpus)."),
    "base_model": ("model.base", {"type": "string", "minLength": 1, "pattern": NO_EDGE_SPACE},
                   "Base model: a local directory, all-MiniLM-L6-v2, or a Hugging Face hub name."),
    "max_length": ("model.max_length", {"type": "integer", "minimum": 8, "maximum": 4096},
                   "Tokens per text after truncation."),
    "epochs": ("train.epochs", {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
               "Training epochs (fractions allowed)."),
    "batch_size": ("train.batch_size", {"type": "integer", "minimum": 1, "maximum": 4096},
                   "Training batch size per device."),
    "learning_rate": ("train.lr", {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                      "Peak learning rate."),
    "max_train_samples": ("train.max_train_samples", {"type": "integer", "minimum": 1},
                          "Cap on training rows."),
    "seed": ("seed", {"type": "integer", "minimum": 0}, "Seed for splitting, sampling and training."),
    "min_accuracy": ("gate.min_accuracy", {"type": "number", "minimum": 0, "maximum": 1},
                     "Gate: lowest test accuracy a candidate may have."),
    "min_macro_f1": ("gate.min_macro_f1", {"type": "number", "minimum": 0, "maximum": 1},
                     "Gate: lowest test macro-F1 a candidate may have."),
}

# The stages that train a model: the lifecycle DAG sends them to the gpu queue
GPU_STAGES = frozenset({"train", "distill"})
# Stages a params.yaml switch turns off (stage -> its boolean key): the stage still runs (it writes a marker the
# next stage reads), then its task ends as skipped, the reason in its log; decided per run, not when parsed.
SWITCHES = {"distill": "distill.enabled"}
RUNS_DIR = Path("reports/runs")
PARAMS_KEPT = RUNS_DIR / "params.before-run.yaml"  # params.yaml's bytes while a run's overrides are applied
MONITORING_RUNS_DIR = Path("reports/monitoring-runs")  # one folder per run of the monitoring DAG
TRIGGER_FILE = "trigger.json"  # in an asset-triggered run's record: the drift report(s) that started it
# in every Airflow run's record: what started it (drift | live_accuracy | new_labels | schedule | manual), its run
# type and the cooldown it passed (mlops/orchestration/triggers.py)
STARTED_BY_FILE = "started-by.json"
APPROVAL_FILE = "approval.json"  # promote.approval: human: who approved or rejected the promotion, and when
STATUSES = ("drift", "no_drift", "insufficient_data")  # of `mlops monitor`'s summary.json
# What a run's record keeps: each stage's summary file, by name: (stage, option of its dvc.yaml command, file inside).
RECORDED = {"train": ("train", "metrics", ""), "evaluate": ("evaluate", "metrics", ""), "gate": ("gate", "out", ""),
            "refit": ("refit", "record", ""), "package": ("package", "out", ""),
            "monitor": ("monitor", "out-dir", "summary.json"), "validate": ("validate", "report-dir", "summary.json")}


def recorded_files(project: Path) -> dict[str, str]:
    """The project-relative paths of what a run's record keeps, by name: RECORDED as dvc.yaml declares it, the
    evaluation's detail file and the promotion decision."""

    files = {name: str(stage_path(project, stage, option) / inside if inside else stage_path(project, stage, option))
             for name, (stage, option, inside) in RECORDED.items()}
    return files | {"evaluate_detail": str(detail_path(stage_path(project, "evaluate", "metrics"))),
                    "promotion": PROMOTION_RECORD}


def safe_name(run_id: str) -> str:
    """A run id as a folder name: characters a path should not hold replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def run_dir(project: Path, run_id: str) -> Path:
    """reports/runs/<safe run id>: the record of one lifecycle run."""
    return Path(project) / RUNS_DIR / safe_name(run_id)


def monitoring_run_dir(project: Path, run_id: str) -> Path:
    """reports/monitoring-runs/<safe run id>: where one monitoring run's `mlops monitor` writes."""
    return Path(project) / MONITORING_RUNS_DIR / safe_name(run_id)


def overrides_of(values: dict[str, Any], conf_keys: list[str] | None = None) -> dict[str, Any]:
    """The dotted params.yaml overrides for the trigger values given (nulls are "keep")."""
    unknown = sorted(set(conf_keys or ()) - set(TRIGGER_PARAMS))
    if unknown:
        raise MlopsError(f"unknown trigger parameter(s): {', '.join(unknown)}; "
                         f"known: {', '.join(TRIGGER_PARAMS)}")
    return {TRIGGER_PARAMS[name][0]: value for name, value in values.items()
            if name in TRIGGER_PARAMS and value is not None}


def write_text(path: Path, text: str) -> None:
    """A file of a run's record, secrets redacted (mlops.core.redact): records are committed, shared and read."""

    write_redacted(path, text)


def say(line: str) -> None:
    """Print a line of a run's task log, secrets redacted."""

    print(redact(line), flush=True)


def configure(project: Path, run_id: str, values: dict[str, Any], conf_keys: list[str] | None = None) -> dict:
    """Validate the run's overrides with the whole params file, apply them, and start the run's record."""

    project = Path(project)
    overrides = overrides_of(values, conf_keys)
    params_file = project / "params.yaml"
    restore_params(project)  # a run that died before its last task left its overrides in place
    if overrides:
        keep_params(project)
        text = apply_overrides(overrides, params_file, origin=f"run {run_id}")
    else:
        from mlops.core.settings import load_settings

        load_settings(params_file)  # a run without overrides still refuses a broken params.yaml
        text = params_file.read_text(encoding="utf-8")
    check_run_sources(project, text)
    folder = run_dir(project, run_id)
    if folder.exists():
        shutil.rmtree(folder)  # a cleared and re-run configure starts the record afresh
    folder.mkdir(parents=True)
    write_text(folder / "params.yaml", text)
    write_text(folder / "overrides.json", json.dumps(overrides, indent=2) + "\n")
    shown = ", ".join(f"{key}={value!r}" for key, value in overrides.items()) or "none (params.yaml as it is)"
    say(f"configure: run {run_id}: overrides {shown}; validated; record in {folder.relative_to(project)}")
    say(f"configure: the trigger parameters this run uses: {trigger_values(yaml.safe_load(text), overrides)}")
    return overrides


def trigger_values(params: dict[str, Any], overrides: dict[str, Any]) -> str:
    """Each trigger parameter's value in the run's params, and where it came from: the values the trigger form
    cannot show (its schema must not change with params.yaml, or every run would make a new DAG version)."""

    shown = []
    for name, (key, _, _) in TRIGGER_PARAMS.items():
        value = get_dotted(params, key, None)
        origin = "given" if key in overrides else "params.yaml"
        shown.append(f"{name}={'not set' if value is None else repr(value)} ({key}, {origin})")
    return "; ".join(shown)


def check_run_sources(project: Path, text: str) -> None:
    """The run's data sources against data.allowed_sources, and a local one's existence, before any stage fetches
    or reads them (a trigger's `data_source` may be any string); refused, params.yaml goes back as it was at once.
    A missing file would otherwise fail `ingest` only, inside DVC, as what looks like a crash that is retried."""

    try:
        settings = parse_settings(yaml.safe_load(text))
        check_sources(settings, project)
        check_local_sources_exist(project, settings)
    except MlopsError:
        restore_params(project)
        raise


def check_local_sources_exist(project: Path, settings: Any) -> None:
    """Each local data source exists, or a stage of dvc.yaml writes it (the generated corpus); the error names the
    path and says nothing of what is there."""

    lifecycle = Path(project) if (Path(project) / "dvc.yaml").is_file() else SHIPPED.parent
    written = [out for stage in load_stage_graph(lifecycle) for out in stage.outs]
    sources = [("data.source.path", settings.data.source.path)]
    if settings.data.test_source is not None:
        sources.append(("data.test_source.path", settings.data.test_source.path))
    for key, path in sources:
        if scheme_and_host(path) is not None:
            continue  # a URL: ingest fetches it
        local = Path(path) if Path(path).is_absolute() else Path(project) / path
        if not local.exists() and not any(inside(path.rstrip("/"), out) for out in written):
            raise MlopsError(f"{key} {path}: no such file (and no stage of dvc.yaml writes it): give an existing "
                             f"file as data_source, or put it there first")


def keep_params(project: Path) -> Path:
    """Keep params.yaml's exact bytes aside until `restore_params` puts them back."""

    kept = Path(project) / PARAMS_KEPT
    kept.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(kept) as tmp:
        tmp.write_bytes((Path(project) / "params.yaml").read_bytes())
    return kept


def restore_params(project: Path) -> bool:
    """Put back the params.yaml kept by `keep_params` (byte for byte) and drop the copy; False if none was kept."""

    kept = Path(project) / PARAMS_KEPT
    if not kept.is_file():
        return False
    with atomic_path(Path(project) / "params.yaml") as tmp:
        tmp.write_bytes(kept.read_bytes())
    kept.unlink()
    print(f"params.yaml restored to what it was before the run's overrides (from {PARAMS_KEPT})", flush=True)
    return True


def drift_status(summary: dict[str, Any]) -> str:
    """The monitor's verdict: its `status`, or for a summary without one, from the `drift` flag."""
    status = summary.get("status")
    if status is None:
        if "drift" not in summary:
            raise MlopsError("the monitoring summary has neither `status` nor `drift`")
        return "drift" if summary["drift"] else "no_drift"
    if status not in STATUSES:
        raise MlopsError(f"the monitoring summary's status {status!r} is none of {', '.join(STATUSES)}")
    return status


def retrain_reasons(summary: dict[str, Any]) -> list[str]:
    """Why a monitoring run should start a retraining: `drift` (the verdict), `live_quality_breach` (the labels
    rule out that the serving version meets gate.min_accuracy), both or neither; two reasons, judged apart."""
    reasons = ["drift"] if drift_status(summary) == "drift" else []
    return reasons + (["live_quality_breach"] if summary.get("live_quality_breach") else [])


def drifted_signals(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The signals that drifted, each with its score and threshold."""
    return {name: signal for name, signal in (summary.get("signals") or {}).items()
            if isinstance(signal, dict) and signal.get("drifted")}


def record_trigger(project: Path, run_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Write which drift report(s) started this run into its record (trigger.json); returns what it wrote.

    `events` are the triggering asset events as plain dicts (`asset`, `timestamp`,
    `source_dag_id`, `source_run_id`, `source_task_id`, `extra`); the `extra` of
    a monitoring event holds `report`, `summary`, `drifted` and `monitoring_run_id`.
    """
    reports = [event["extra"]["report"] for event in events if (event.get("extra") or {}).get("report")]
    trigger = {"run_id": run_id, "run_type": "asset_triggered", "reports": reports, "events": events}
    folder = run_dir(project, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / TRIGGER_FILE, json.dumps(trigger, indent=2, default=str) + "\n")
    for event in events:
        extra = event.get("extra") or {}
        source = extra.get("monitoring_run_id") or event.get("source_run_id") or "unknown run"
        drifted = ", ".join(extra.get("drifted") or []) or "not stated"
        report = extra.get("report") or "no report named"
        breach = extra.get("live_quality_breach") or {}
        if "drift" not in (extra.get("reasons") or ["drift"]):  # an event from before `reasons`: drift
            say(f"configure: run {run_id} was started by a live quality breach in monitoring run {source} (asset "
                f"{event.get('asset')}: {breach.get('reason', 'not stated')}): [monitoring report]({report})")
            continue
        say(f"configure: run {run_id} was started by drift in monitoring run {source} (asset "
            f"{event.get('asset')}, drifted: {drifted}): [drift report]({report})")
        if breach:
            say(f"configure: monitoring run {source} also found a live quality breach: {breach.get('reason')}")
    return trigger


def record(project: Path, run_id: str) -> dict[str, Any]:
    """Copy what this run produced into its record and write run.json, a one-file summary of it."""
    project = Path(project)
    folder = run_dir(project, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    files = recorded_files(project)
    decision_file, package_file, promotion_file = files["gate"], files["package"], files["promotion"]
    for name in files.values():
        source = project / name
        if source.is_file():
            text = source.read_text(encoding="utf-8")
            write_text(folder / name.replace("/", "__"), text)
            results[name] = json.loads(text)
    if results.get(decision_file, {}).get("accepted") is False:
        # the gate_decision branch skipped packaging: a package.json left by an earlier run is not this run's
        results[package_file] = {"status": "skipped", "reason": "the gate rejected the model"}
        results[promotion_file] = {"promoted": False, "reason": "the gate rejected the model"}
        results[files["refit"]] = {"refit": False, "packaged": None, "why": "the gate rejected the model"}
        for skipped in (package_file, promotion_file, files["refit"]):
            (folder / skipped.replace("/", "__")).unlink(missing_ok=True)
    approval_file = folder / APPROVAL_FILE  # written by the `approve` task (mlops/orchestration/approval.py)
    approval = json.loads(approval_file.read_text(encoding="utf-8")) if approval_file.is_file() else None
    if approval and not approval.get("approved"):  # `promote` was skipped: an earlier promotion.json is not ours
        results[promotion_file] = {"promoted": False, "reason": approval["reason"]}
        (folder / promotion_file.replace("/", "__")).unlink(missing_ok=True)
    params_file = folder / "params.yaml"
    summary = {
        "run_id": run_id,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "overrides": json.loads((folder / "overrides.json").read_text()) if (folder / "overrides.json").is_file()
        else {},
        "params": yaml.safe_load(params_file.read_text()) if params_file.is_file() else None,
        "results": results,
    }
    if approval:
        summary["approval"] = approval
    started_file, trigger_file = folder / STARTED_BY_FILE, folder / TRIGGER_FILE
    if started_file.is_file():  # written by `configure` (mlops/orchestration/triggers.py)
        started = json.loads(started_file.read_text(encoding="utf-8"))
        summary["trigger"], summary["triggers"] = started["trigger"], started.get("triggers", [started["trigger"]])
    else:  # a record `configure` did not start (`mlops retrain-on-drift`): drift with a drift report, else by hand
        summary["trigger"] = "drift" if trigger_file.is_file() or loop_of(folder) else "manual"
        summary["triggers"] = [summary["trigger"]]
    if trigger_file.is_file():  # an asset-triggered run: the drift report(s) that started it
        trigger = json.loads(trigger_file.read_text(encoding="utf-8"))
        summary["triggered_by"] = {"reports": trigger["reports"], "events": trigger["events"]}
    loop_file = folder / "loop.json"
    if loop_file.is_file():  # a drift-triggered run: did it find new labels (mlops.loop.retrain)?
        summary["loop"] = json.loads(loop_file.read_text(encoding="utf-8"))
    write_text(folder / "run.json", json.dumps(summary, indent=2, default=str) + "\n")
    decision = results.get(decision_file, {})
    package = results.get(package_file, {})
    reports = (summary.get("triggered_by") or {}).get("reports")
    kind = "drift" if summary["trigger"] == "drift" else "monitoring"
    started_by = f"; started by {kind} report(s) {', '.join(reports)}" if reports else ""
    started_by = f"; trigger: {', '.join(summary['triggers'])}{started_by}"
    if summary.get("loop", {}).get("status") == "no_new_labels":  # nothing was retrained: no gate to report
        say(f"record: run {run_id}: {summary['loop']['message']}; {folder.relative_to(project) / 'run.json'}"
            f"{started_by}")
        return summary
    if "loop" in summary:
        started_by += f"; {summary['loop']['message']}"
    approved = f", approval: {approval['reason']}" if approval else ""
    say(f"record: run {run_id}: gate {'accepted' if decision.get('accepted') else 'rejected'}, "
        f"package {package.get('status')}{approved}; {folder.relative_to(project) / 'run.json'}{started_by}")
    return summary


def loop_of(folder: Path) -> bool:
    """Whether a run's record holds a loop record (mlops.loop.retrain): a run that looked for new labels."""
    return (Path(folder) / "loop.json").is_file()
