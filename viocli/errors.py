"""Errors that end a command, each carrying the exit code of DESIGN.md section 2.

Exit codes: 0 ok; 1 operation failed; 2 bad input; 3 nodes unreachable; 4 refused.
Every error says what failed and where; ``hint`` says what to do next.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4


class ViocliError(Exception):
    """Base class: a message for the operator, an optional hint and an exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []


class OperationFailed(ViocliError):
    """An operation ran and failed (Ansible failed hosts, a vSphere task error)."""

    exit_code = EXIT_FAILED


class BadInput(ViocliError):
    """The operator's input is wrong: arguments, inventory, custom.yml."""

    exit_code = EXIT_BAD_INPUT


class NodesUnreachable(ViocliError):
    """One or more nodes could not be reached."""

    exit_code = EXIT_UNREACHABLE


class Refused(ViocliError):
    """viocli refuses to act: lock held, not root, a precondition is not met."""

    exit_code = EXIT_REFUSED


class NotLanded(Refused):
    """The command exists but its capability has not been built yet."""
