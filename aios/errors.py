"""Errors that reach the user: each carries one clear line and, where possible, how to fix it."""

from __future__ import annotations

__all__ = [
    "AiosError",
    "BudgetExceeded",
    "ConfigError",
    "InvalidModelFile",
    "ModelError",
    "PermissionDenied",
    "ProcessNotFound",
    "StoreError",
    "UnknownAgentError",
    "UnknownSyscall",
    "UsageError",
    "first_problem",
]


class AiosError(Exception):
    """Base class for errors meant for the user. ``exit_code`` follows the CLI convention."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(AiosError):
    """The caller asked for something malformed: exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """config.toml (or models.json) has an unknown key, a wrong type, or is not parseable."""


class ModelError(AiosError):
    """The model file is missing, unreadable or not a GGUF file."""


class InvalidModelFile(ModelError):
    """The file given as a model is not a complete GGUF (bad header, truncated, unknown tensor type): exit 2."""

    exit_code = 2


class StoreError(AiosError):
    """The data directory or the SQLite store cannot be used."""


class UnknownAgentError(UsageError):
    """No plugin registers an agent of that name."""


class ProcessNotFound(UsageError):
    """No process with that pid."""


class BudgetExceeded(AiosError):
    """An agent asked for more LLM tokens than its capability set grants."""


class PermissionDenied(AiosError):
    """Access control refused a syscall: the capability is not granted, or the user denied it."""

    exit_code = 3


class UnknownSyscall(UsageError):
    """No syscall of that name."""


def first_problem(exc: Exception, default: str = "request") -> str:
    """``where: what`` of a pydantic ``ValidationError``'s first error, for a one-line message."""
    errors = exc.errors()  # type: ignore[attr-defined]
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    where = ".".join(str(p) for p in first["loc"]) or default
    return f"{where}: {first['msg']}"
