"""The one exception type users see: the CLI prints its message as one line."""


class MlopsError(Exception):
    """A problem the user can fix (bad params, bad data, missing file).

    Raised with a message that names the problem; the CLI turns it into a
    one-line error and a non-zero exit instead of a traceback.
    """
