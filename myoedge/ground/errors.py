"""Errors shared by every layer.

``InputError`` means *the user's input is wrong* (a malformed file, a mismatched bundle, an unplugged
port): the CLI prints its message on one line and exits with status 2. ``DeliveryError`` means an
output the command promised could not be delivered (a disk filled up, a log could not be completed):
one line and status 1. Anything else escaping a verb is an internal failure (status 1, with a traceback).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from outside the program; the message says what was expected and what was found."""


class FormatError(InputError):
    """A malformed file. Carries the file, and where known the 1-based line and the column name."""

    def __init__(self, path, reason: str, *, line: int | None = None, column: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.line = line
        self.column = column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {reason}")


class DeliveryError(RuntimeError):
    """An output the command promised was not delivered; the message names it and says why."""
