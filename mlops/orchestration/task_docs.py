"""The lifecycle DAG's task docs (the UI's *Task Docs*): what each task reads, writes, and when it is skipped.

Written from dvc.yaml's stage graph (`mlops.core.pipeline.load_stage_graph`),
never from a parameter's value, so they are the same in every DAG version.
Paths and placeholders go in code spans: the UI renders doc_md as Markdown,
where a bare `<run id>` would be taken for an HTML tag and vanish.
"""

from __future__ import annotations

from mlops.core.pipeline import Stage

CODE_PREFIX = "mlops/"  # deps under it are the stage's code: a change re-runs the stage, nothing to read about

UP_TO_DATE = ("never by itself: when none of its deps and params changed since dvc.lock, DVC runs nothing "
              "(or restores the outputs from its run-cache) and the task succeeds, saying so in one line")
# Stages whose task can end as skipped, and why (decided when the task runs, from the run's params.yaml)
SKIPPED = {
    "distill": "after writing its marker when `distill.enabled` is false in the run's params: no student is built, "
               "and `optimize` goes on with the candidate alone",
    "refit": "when `gate_decision` found the model rejected; then `package`, `approve` and `promote` are skipped too",
    "package": "when `gate_decision` found the model rejected; then `approve` and `promote` are skipped too",
}


def code(text: str) -> str:
    return f"`{text}`"


def listed(items: tuple[str, ...] | list[str]) -> str:
    return ", ".join(code(item) for item in items) or "nothing"


def stage_doc(stage: Stage) -> str:
    """A stage task's doc: its command, the data and params it reads, what it writes, when it is skipped."""
    data = [dep for dep in stage.deps if not dep.startswith(CODE_PREFIX)]
    lines = [
        f"Runs {code(f'dvc repro --single-item {stage.name}')}, that is {code(stage.cmd)}.",
        "",
        f"**Reads** {listed(data)}; params {listed(stage.params)}; its code under {code(CODE_PREFIX)}.",
        "",
        f"**Writes** {listed(stage.outs)}, and its entry in {code('dvc.lock')}.",
        "",
        f"**Skipped** {SKIPPED.get(stage.name, UP_TO_DATE)}.",
    ]
    return "\n".join(lines)
