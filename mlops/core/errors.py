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
