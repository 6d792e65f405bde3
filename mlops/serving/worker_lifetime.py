"""A server worker ends with the `bentoml serve` process that started it, however that process ends.

BentoML's process manager (circus) starts each worker in a session of its
own (`os.setsid`). A `bentoml serve` that is stopped with SIGTERM stops its
workers; one that is killed (SIGKILL, the OOM killer, a killed Airflow task
whose `mlops promote` was infra-validating a candidate, `kill -9` of a
process group) leaves them running, parented to init, holding the model's
memory and any port or file they had, outside every process group a caller
could kill. On Linux the worker asks the kernel for SIGTERM when its parent
dies (`PR_SET_PDEATHSIG`): the worker then shuts down as on any stop, answering
what is queued and flushing its traffic log. Elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from mlops.core.environment import SERVER_PID_ENV, environment

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ParentGone(RuntimeError):
    """The process that started this worker ended before the worker could tie itself to it."""


def end_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> bool:
    """Have the kernel send `sig` to this process when its parent ends; True where that is in place.

    `parent` is the pid the caller expects as its parent (default: the current
    one; the service passes the pid `bentoml serve` recorded before it started
    its workers). If that parent is already gone (the worker was reparented
    while it was importing), waiting for a signal that will never come would
    leave exactly the orphan this prevents, so that raises `ParentGone`.
    """
    if not sys.platform.startswith("linux"):
        return False
    expected = os.getppid() if parent is None else parent
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    if os.getppid() != expected:
        raise ParentGone(f"the parent process {expected} ended before this worker (pid {os.getpid()}) started")
    return True



def tie_worker_to_server(worker_index: int | None) -> bool:
    """Called where the service module is imported: in `bentoml serve` and in each of its workers.

    `bentoml serve` imports the service before it starts its workers (no worker
    index there): it records its own pid in the environment the workers
    inherit. A worker (BentoML sets its index before importing the service)
    ends with that process: `end_with_parent`. True where a worker was tied.
    """
    if worker_index is None:
        os.environ[SERVER_PID_ENV] = str(os.getpid())
        return False
    return end_with_parent(parent=environment().server_pid)


def exec_tied(parent: int, command: list[str]) -> None:
    """Become `command`, tied to `parent`: the death signal outlives exec, so the command ends with `parent`.

    For a server that a short-lived command starts for itself (`mlops promote`
    infra-validating a candidate): a killed promote, however it is killed,
    then does not leave a `bentoml serve` behind, and that server's workers
    follow it (`tie_worker_to_server`). No `preexec_fn` (unsafe in a process
    with threads): the child runs this module, ties itself, then execs.
    """
    end_with_parent(parent=parent)
    os.execvp(command[0], command)


def main(argv: list[str] | None = None) -> None:
    """`python -m mlops.serving.worker_lifetime PARENT_PID -- COMMAND...`"""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or not args[0].isdigit() or args[1] != "--":
        sys.exit("usage: python -m mlops.serving.worker_lifetime PARENT_PID -- COMMAND [ARG...]")
    exec_tied(int(args[0]), args[2:])


if __name__ == "__main__":
    main()
