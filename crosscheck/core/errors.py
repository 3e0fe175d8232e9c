"""Errors crosscheck raises on purpose; the command line turns them into one-line messages."""


class CrosscheckError(Exception):
    """Bad input from the user: shown as one line, exit code 2."""


class ProblemError(CrosscheckError, ValueError):
    """A convolution problem whose geometry or dtype cannot exist; the message names the field."""
