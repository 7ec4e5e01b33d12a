"""Fermion's error hierarchy.

The core raises these and never speaks of exit codes or HTTP statuses; the CLI and the HTTP
layers map them once, each in its own module.
"""

from __future__ import annotations


class FermionError(Exception):
    """Base class of every error Fermion raises on purpose."""


class NotFoundError(FermionError):
    """A workspace, dataset, version or other named object does not exist."""


class InvalidInputError(FermionError):
    """User input (a file, a recipe, a rule, an argument) cannot be used as given."""


class ConflictError(FermionError):
    """The request contradicts what is stored, e.g. deleting a version others depend on."""


class StorageError(FermionError):
    """A metadata or artifact store is unreachable, out of date or corrupted."""


class IntegrityError(StorageError):
    """Stored content does not match its recorded checksum."""


class AuthenticationError(FermionError):
    """A missing, malformed, unknown, expired or revoked API key."""


class PermissionDeniedError(FermionError):
    """A valid API key that does not grant the scope asked for."""


class RateLimitedError(FermionError):
    """An API key is over its request rate; `retry_after` says in how many seconds to retry."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MissingDependencyError(FermionError):
    """An optional extra is needed; the message says which one to install."""


def require(module: str, extra: str) -> object:
    """Import an optional heavy module, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed: pip install 'fermion[{extra}]'"
        ) from exc


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a database driver's own, when it wraps one),
    or its type's name: what a one-line error shows of a cause."""
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__
