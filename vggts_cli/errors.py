"""Errors that the CLI turns into one line on stderr and an exit code, never a traceback."""


class VggtsError(Exception):
    """A failure the user can act on: bad input file, unreadable checkpoint, failed job (exit 1)."""

    exit_code = 1


class UsageError(VggtsError):
    """The command line asks for something impossible: bad option value, out-of-range frame (exit 2)."""

    exit_code = 2
