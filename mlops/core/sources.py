"""Whether a data source may be read: `data.allowed_sources` in params.yaml.

A run can be triggered with any `data_source`: a URL would make the
pipeline fetch from a host nobody chose, a local path could point at any
file the worker can read (its errors then end up in logs and alerts). The
allow-list is checked where a source enters: `configure` (the trigger's
value, before any stage runs) and `ingest` (whatever params.yaml says).
Messages name the scheme, host or folder that is not allowed, never the
source's whole URL (it may carry credentials) or anything read from it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

from mlops.core.errors import MlopsError
from mlops.core.settings import AllowedSourcesSettings, Settings

URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
HUB_HOST = "huggingface.co"  # where hf:<dataset> sources come from, unless HF_ENDPOINT names another


def scheme_and_host(path: str) -> tuple[str, str | None] | None:
    """A URL's scheme and host (hf: the hub's host); None for a local path."""
    if path.startswith("hf:"):
        endpoint = os.environ.get("HF_ENDPOINT")
        return "hf", (urlparse(endpoint).hostname if endpoint else HUB_HOST)
    match = URL.match(path)
    if not match:
        return None
    try:
        host = urlparse(path).hostname
    except ValueError:  # e.g. a malformed IPv6 literal
        host = None
    return match.group(1).lower(), host


def host_allowed(host: str, hosts: tuple[str, ...]) -> bool:
    """Whether `host` is one of `hosts`, where an entry `*.example.org` allows any subdomain."""
    host = host.lower().rstrip(".")
    return any(host == entry or (entry.startswith("*.") and host.endswith(entry[1:])) for entry in hosts)


def listed(values: tuple[str, ...]) -> str:
    """The allowed values for an error message; `none` when nothing is allowed."""
    return ", ".join(values) if values else "none"


def check_url(scheme: str, host: str | None, allowed: AllowedSourcesSettings, what: str) -> None:
    """Refuse a remote source whose scheme or host is not allowed, naming the setting that would allow it."""
    if scheme not in allowed.schemes:
        raise MlopsError(f"{what}: scheme {scheme!r} is not allowed (data.allowed_sources.schemes: "
                         f"{listed(allowed.schemes)})")
    if not host:
        raise MlopsError(f"{what}: a {scheme} URL without a host")
    if not host_allowed(host, allowed.hosts):
        raise MlopsError(f"{what}: {scheme} host {host!r} is not allowed (data.allowed_sources.hosts: "
                         f"{listed(allowed.hosts)})")


def check_local(path: str, allowed: AllowedSourcesSettings, root: Path, what: str) -> None:
    """Refuse a local source outside the project (or hidden inside it) unless the settings allow its folder."""
    base = Path(root).resolve()
    target = (Path(path) if Path(path).is_absolute() else base / path).resolve()
    if target.is_relative_to(base):
        hidden = next((part for part in target.relative_to(base).parts if part.startswith(".")), None)
        if hidden is None:
            return
        if not any(target.is_relative_to((base / folder).resolve()) for folder in allowed.paths):
            raise MlopsError(f"{what} {path}: inside the project's hidden folder {hidden}/ (tool state, not data)")
        return
    if not any(target.is_relative_to((base / folder).resolve()) for folder in allowed.paths):
        raise MlopsError(f"{what} {path}: outside the project, and not in data.allowed_sources.paths "
                         f"({listed(allowed.paths)})")


def check_source(path: str, allowed: AllowedSourcesSettings, root: Path, what: str = "data source") -> None:
    """Refuse `path` unless the allow-list lets it in: a local path inside `root` (the project) or one of
    `allowed.paths`, symlinks followed; a URL with an allowed scheme and host."""
    if "\x00" in path:
        raise MlopsError(f"{what}: not a path or URL (a NUL character)")
    url = scheme_and_host(path)
    if url is None:
        check_local(path, allowed, root, what)
    else:
        check_url(*url, allowed, what)


def check_sources(settings: Settings, root: Path) -> None:
    """data.source and data.test_source against data.allowed_sources, relative paths from `root`."""
    allowed = settings.data.allowed_sources
    check_source(settings.data.source.path, allowed, root, "data.source.path")
    if settings.data.test_source is not None:
        check_source(settings.data.test_source.path, allowed, root, "data.test_source.path")
