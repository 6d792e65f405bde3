"""Confinement of paths that come from outside (a trigger's parameters, a form): inside given folders only.

A path a person types into a trigger form is resolved against the project
and its symlinks followed (`Path.resolve()`) before it is compared with the
folders it may use, so that neither an absolute path, nor `..`, nor a
symlink inside an allowed folder that points out of it reaches a file the
caller did not mean to expose (the model registry, a feedback batch that
training would trust). Only the standard library is imported: DAG files and
Airflow tasks use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mlops.core.errors import MlopsError


def shown(folder: str | Path) -> str:
    """A folder as a message names it: project-relative, with a trailing slash."""
    return str(folder).rstrip("/") + "/"


def inside_any(path: Path, folders: Iterable[Path]) -> Path | None:
    """The first of `folders` that holds `path` (or is it), or None."""
    return next((folder for folder in folders if path == folder or path.is_relative_to(folder)), None)


def confine(path: str | Path, root: str | Path, allowed: Iterable[str | Path], what: str,
            refused: Iterable[str | Path] = ()) -> Path:
    """`path` (relative to `root`, or absolute) resolved, if it lies inside one of `allowed` and none of `refused`.

    `allowed` and `refused` are folders relative to `root` (or absolute).
    Returns the resolved absolute path; anything else raises an MlopsError in
    one line that names `what` (e.g. "param `output`"), the path as given and
    the folders it may use.
    """
    base = Path(root).resolve()
    allowed, refused = list(allowed), list(refused)
    allowed_dirs = [(base / folder).resolve() for folder in allowed]
    refused_dirs = [(base / folder).resolve() for folder in refused]
    names = " or ".join(shown(folder) for folder in allowed) or "(none)"
    if refused:
        names += f" (not {', '.join(shown(folder) for folder in refused)})"
    text = str(path)
    if "\x00" in text or not text.strip():
        raise MlopsError(f"{what} {text!r}: not a path; give one inside {names}")
    given = Path(path)
    target = (given if given.is_absolute() else base / given).resolve()
    if inside_any(target, allowed_dirs) is None:
        raise MlopsError(f"{what} {text}: outside the folders it may use; give a path inside {names}")
    if inside_any(target, refused_dirs) is not None:
        raise MlopsError(f"{what} {text}: inside a folder it may not use; give a path inside {names}")
    return target
