"""The project's Airflow plugin: the run's verdict as its note, and the project's reports served to the UI.

Two things a task cannot do for itself in Airflow 3, done where Airflow runs
its own code (the shim `plugins/mlops_plugin.py` loads this; `make airflow`
points `[core] plugins_folder` at that folder):

- **The run's note.** The task SDK has no call that sets a run's note, so a
  listener in the scheduler does, when a `lifecycle` run succeeds: it copies
  the `note` of the run's verdict event (VERDICT_ASSET, emitted by `record`,
  mlops/orchestration/verdict.py). A note a person wrote in the UI is kept.
- **/reports.** A small FastAPI app, mounted on the API server at /reports,
  serves the files the tasks' extra links point to (report_links.py):
  read-only, only under the project's reports/, plots/ and metrics/, every
  other path a 404. It asks for Airflow's own login (the UI's session cookie
  or a Bearer token, checked by Airflow's `get_user`), and every response is
  sandboxed (Content-Security-Policy), so a report's scripts never run as the
  Airflow UI.
"""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from mlops.core.environment import project_dir as configured
from mlops.orchestration.assets import VERDICT_ASSET
from mlops.orchestration.report_links import SERVED_DIRS

LIFECYCLE_DAG = "lifecycle"
TEXT_SUFFIXES = {".md", ".yaml", ".yml", ".csv", ".txt", ".log", ".jsonl"}  # shown in the browser, not downloaded
# A served report is its own origin: its scripts run, but never with the Airflow UI's cookies or API
HEADERS = {"Content-Security-Policy": "sandbox allow-scripts allow-popups", "X-Content-Type-Options": "nosniff"}


def project_dir() -> Path:
    """MLOPS_PROJECT_DIR, else the project this code is in (as the DAG files decide it)."""

    return configured(default=Path(__file__).resolve().parents[2])


def served_path(project: Path, path: str) -> Path:
    """The project file (or folder) `path` names, if it is under one of SERVED_DIRS; else a 404.

    The path is judged as written (no `..`, nothing absolute, its first part a served folder), then resolved:
    a symlink may lead into a served folder or DVC's cache (a `cache.type: symlink` output), nowhere else."""
    parts = PurePosixPath(path).parts
    if not parts or parts[0] not in SERVED_DIRS or ".." in parts or PurePosixPath(path).is_absolute():
        raise HTTPException(status_code=404, detail="not a served report")
    root = project.resolve()
    target = (root / PurePosixPath(*parts)).resolve()
    allowed = [root / name for name in (*SERVED_DIRS, ".dvc/cache")]
    if not any(target.is_relative_to(folder.resolve()) for folder in allowed) or not target.exists():
        raise HTTPException(status_code=404, detail="not a served report")
    return target


def listing(folder: Path, url_path: str) -> HTMLResponse:
    """A folder's files as links (the evaluation's plots), names escaped."""
    base = url_path.rstrip("/")
    items = "".join(f'<li><a href="{base}/{quote(entry.name)}">{html.escape(entry.name)}'
                    f'{"/" if entry.is_dir() else ""}</a></li>' for entry in sorted(folder.iterdir()))
    return HTMLResponse(f"<!doctype html><title>{html.escape(folder.name)}</title><ul>{items}</ul>", headers=HEADERS)


async def require_login(request: Request) -> None:
    """Airflow's own authentication (`get_user`: a Bearer token first, else the UI's session cookie)."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if token else None
    await get_user(request, None, credentials)


def reports_app(project: Path) -> FastAPI:
    """The /reports app: GET a project-relative path under reports/, plots/ or metrics/."""
    app = FastAPI(title="mlops reports", dependencies=[Depends(require_login)], docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.get("/{path:path}")
    def serve(path: str, request: Request) -> Any:
        target = served_path(project, path)
        if target.is_dir():
            return listing(target, request.url.path)
        media = "text/plain; charset=utf-8" if target.suffix in TEXT_SUFFIXES else mimetypes.guess_type(target)[0]
        return FileResponse(target, media_type=media or "application/octet-stream", headers=HEADERS)

    return app


def verdict_note(dag_run: Any, session: Any) -> str | None:
    """The note of the verdict event `record` emitted in this run, if it did."""
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    event = session.scalars(
        select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        .where(AssetModel.uri == VERDICT_ASSET.uri, AssetEvent.source_dag_id == dag_run.dag_id,
               AssetEvent.source_run_id == dag_run.run_id)
        .order_by(AssetEvent.timestamp.desc())).first()
    return (event.extra or {}).get("note") if event is not None else None


def set_run_note(dag_run: Any, session: Any) -> bool:
    """The run's note from its verdict, unless a person wrote one (a note with a user); True if set."""
    note = verdict_note(dag_run, session)
    written = getattr(dag_run, "dag_run_note", None)
    if not note or (written is not None and written.user_id is not None):
        return False
    dag_run.note = note
    return True


class RunNoteListener:
    """Runs in the scheduler (and in `dag.test`), with the run's database session."""

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        if dag_run.dag_id != LIFECYCLE_DAG:
            return
        from sqlalchemy.orm import object_session

        session = object_session(dag_run)
        if session is None:
            from airflow.utils.session import create_session

            with create_session() as session:
                set_run_note(session.merge(dag_run), session)
            return
        set_run_note(dag_run, session)


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    fastapi_apps = [{"app": reports_app(project_dir()), "url_prefix": "/reports", "name": "mlops reports"}]
    listeners = [RunNoteListener()]
