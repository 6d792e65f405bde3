"""The remotes share-nothing workers meet at: their settings, and git and DVC run against them.

`Remotes` holds MLOPS_GIT_REMOTE, MLOPS_DVC_REMOTE (and DVC_S3_ENDPOINT),
MLOPS_GIT_BASE, MLOPS_WORKDIR and MLOPS_KEEP_WORKDIRS; `run_git` and `run_dvc`
turn a failure into `RemoteUnreachable`, one redacted line naming the remote,
and `check_dvc_remote` finds an unreachable DVC remote in seconds
(mlops/orchestration/workspace.py uses them).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from mlops.core.environment import WORKSPACE_MODE_ENV, environment
from mlops.core.errors import MlopsError
from mlops.core.redact import redact

GIT = ["git", "-c", "user.name=mlops", "-c", "user.email=mlops@localhost", "-c", "advice.detachedHead=false"]
# Hosts to probe for remotes given without an endpoint (a TCP connect, not a request).
DEFAULT_HOSTS = {"s3": ("s3.amazonaws.com", 443), "gs": ("storage.googleapis.com", 443),
                 "azure": ("blob.core.windows.net", 443)}


class RemoteUnreachable(MlopsError):
    """A remote could not be reached. `transient`: a network failure worth a retry; else a setting to fix."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(redact(message))  # it names a remote, whose URL may hold a token, and git's own error
        self.transient = transient


@dataclass(frozen=True)
class Remotes:
    """Where an isolated task gets everything: the git remote, the DVC remote, its own scratch root."""

    git: str
    dvc: str
    endpoint: str | None = None
    base: str | None = None
    root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "mlops-work")
    keep: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Remotes:
        source = os.environ if env is None else env
        settings = environment(source)
        missing = [name for name, value in (("MLOPS_GIT_REMOTE", settings.git_remote),
                                            ("MLOPS_DVC_REMOTE", settings.dvc_remote)) if not value]
        if missing or settings.git_remote is None or settings.dvc_remote is None:
            raise MlopsError(f"{WORKSPACE_MODE_ENV}=isolated needs {' and '.join(missing)} "
                             "(the remotes the workers share)")
        root = settings.workdir or Path(tempfile.gettempdir()) / "mlops-work"
        return cls(settings.git_remote, settings.dvc_remote, source.get("DVC_S3_ENDPOINT") or None,
                   settings.git_base, root, settings.keep_workdirs)

    def named(self) -> str:
        return f"{self.dvc} (endpoint {self.endpoint})" if self.endpoint else self.dvc


def run_git(args: list[str], cwd: Path, remote: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """git in `cwd`; its stderr comes back redacted (git echoes the remote's URL, token included, in its
    errors), its stdout as it is (commits, file contents: data, not messages)."""
    result = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    result.stderr = redact(result.stderr)
    if check and result.returncode != 0:
        raise RemoteUnreachable(f"git {args[0]} with the git remote {remote} failed: {last_line(result.stderr)}",
                                transient=False)
    return result


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error", "fatal"))]
    return (errors or lines or ["no output"])[-1]


def check_dvc_remote(remotes: Remotes, timeout: float = 5) -> None:
    """Fail in seconds, in one line naming the remote, when the DVC remote cannot be reached.

    A local directory that does not exist is a setting (or a mount) to fix: not
    transient. A network remote is probed with a TCP connect to its endpoint (or
    the provider's host): a refusal or a timeout is transient, and the task's
    retries (with backoff) are worth it, each failing in seconds rather than
    after the storage client's own retries.
    """
    parsed = urlparse(remotes.dvc)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else remotes.dvc)
        if not path.is_dir():
            raise RemoteUnreachable(f"DVC remote {remotes.dvc} unreachable: no such directory on this worker",
                                    transient=False)
        return
    target = urlparse(remotes.endpoint) if remotes.endpoint else parsed
    host = target.hostname if remotes.endpoint or parsed.scheme in ("ssh", "http", "https", "webdav") else None
    default = DEFAULT_HOSTS.get(parsed.scheme)
    if host:
        port = target.port or {"https": 443, "http": 80, "ssh": 22}.get(target.scheme, 443)
    elif default:
        host, port = default
    else:
        return  # a scheme without a host to probe: DVC's own error will name it
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise RemoteUnreachable(f"DVC remote {remotes.named()} unreachable: cannot connect to {host}:{port}: "
                                f"{reason}", transient=True) from None


def run_dvc(args: list[str], cwd: Path, remotes: Remotes) -> None:
    result = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=3600,
                            env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    result.stderr, result.stdout = redact(result.stderr), redact(result.stdout)
    if result.returncode != 0:
        raise RemoteUnreachable(f"dvc {args[0]} with the DVC remote {remotes.named()} failed: "
                                f"{last_line(result.stderr + result.stdout)}", transient=True)
