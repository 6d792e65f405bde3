"""The one exception type users see: the CLI prints its message as one line."""


class MlopsError(Exception):
    """A problem the user can fix (bad params, bad data, missing file).

    Raised with a message that names the problem; the CLI turns it into a
    one-line error and a non-zero exit instead of a traceback.
    """


# Exit status of an mlops command that refused its input or params: retrying cannot help.
USER_ERROR_EXIT = 2
# When set, the CLI writes {"exit": code, "error": message} there as it ends: how a driver that runs a stage
# through `dvc repro` (the Airflow task) learns the stage's own outcome without parsing DVC's messages.
EXIT_FILE_ENV = "MLOPS_EXIT_FILE"
# Exit status of `mlops promote` and `mlops retrain-on-drift` when the gate rejected the candidate: an outcome a
# script may branch on, not a failure (the champion keeps serving; the verdict and the next step are printed;
# `make run` goes on and ends 0). 1 stays what it always is: something failed.
REJECTED_EXIT = 3
FAILED_EXIT = 1


class GateRejected(Exception):
    """The gate rejected the candidate: the command ends with REJECTED_EXIT, its message (the verdict and the next
    step) on stdout. Not an MlopsError: nothing the user gave was wrong, and nothing failed."""


class StepFailed(MlopsError):
    """A command run as a step of this one (`dvc repro`, `mlops promote`) failed: this one ends with that step's
    exit status (2: it refused its input, 1: it failed), so that a script sees the same status either way."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
