"""Every error tracker_jupyter raises.

The hierarchy::

    Error (Exception)
    ├── UsageError (Error, ValueError)        bad arguments: what, where, how to fix
    ├── ConfigError (Error, ValueError)       a config key changed without allow_val_change
    └── CommError (Error, ConnectionError)    the tracking server could not be reached or refused a call
        └── AuthenticationError (CommError, PermissionError)
                                              credentials missing, refused (401) or lacking permission (403)

Third-party errors (``requests``, ``OSError`` from the store) are mapped once at the boundary that
meets them and chained with ``raise ... from exc``. Each class also subclasses the built-in that fits,
so ``except ValueError`` or ``except ConnectionError`` keep working for callers that prefer those.
"""

from __future__ import annotations

__all__ = ["AuthenticationError", "CommError", "ConfigError", "Error", "UsageError"]


class Error(Exception):
    """Base class of every error raised by tracker_jupyter."""


class UsageError(Error, ValueError):
    """An argument is invalid; the message names it, the bad value and what is allowed."""


class ConfigError(Error, ValueError):
    """A config value was changed without ``allow_val_change``."""


class CommError(Error, ConnectionError):
    """The tracking server could not be reached, or answered with an error.

    ``status`` is the HTTP status when there was an answer, ``url`` the address that was called.
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class AuthenticationError(CommError, PermissionError):
    """Credentials are missing, wrong, or lack permission for what was asked."""
