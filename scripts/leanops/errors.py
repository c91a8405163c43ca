"""Exit codes and the errors that carry them.

0 ok, 1 the check failed (data, metrics, canary), 2 bad configuration or input, 3 infrastructure failure.
A LeanopsError is a user-facing failure: the CLI prints its one-line message, never a traceback
(unless --debug).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    INFRA = 3


class LeanopsError(Exception):
    """A failure with a one-line message for a person and an exit code."""

    code: ExitCode = ExitCode.INFRA

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def one_line(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        text = f"{where}{self.message}"
        return " ".join(text.split())  # one line, whatever the message held


class CheckFailed(LeanopsError):
    """The check ran and the subject failed it (data, metrics, canary)."""

    code = ExitCode.CHECK_FAILED


class BadInput(LeanopsError):
    """Bad configuration or input: a person must change a file or a flag."""

    code = ExitCode.BAD_INPUT


class InfraError(LeanopsError):
    """A service or tool leanops depends on failed or could not be reached."""

    code = ExitCode.INFRA
