"""How a sub-command reports failure: one line for the operator and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3  # the server has no such instance, certificate, key...
EXIT_AUTH = 4  # no valid credential, or its role does not allow it


class CommandError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
