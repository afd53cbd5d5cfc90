"""How tracker_jupyter tells the user something went wrong, in one place.

- warnings about the user's own call (a value stored as its repr, a dropped step) stay ``UserWarning``s
  from the caller's thread, said once with ``Once``, so ``warnings`` filters apply.
- ``hook_failed``: our code inside the user's cell failed (a hook, a display): a ``RuntimeWarning`` that
  never raises, even where warnings are turned into errors.
- ``log``: diagnostics of background work (the writer, the syncer, the live display) through the
  ``tracker_jupyter`` logger (it does not propagate). Its one default handler writes ``tracker: ...`` to
  the current ``sys.stderr``; the standard ways change that: ``setLevel(logging.ERROR)`` silences them,
  replacing ``handlers`` redirects them.
- ``Once``: each of these is said once per thing, not at every row or cell.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Hashable
from typing import Any

LOGGER_NAME = "tracker_jupyter"
_logger: Any = None
_logger_lock = threading.Lock()


class Once:
    """Remembers what was said: ``once(key)`` is True the first time only (thread-safe)."""

    def __init__(self) -> None:
        self._seen: set[Hashable] = set()
        self._lock = threading.Lock()

    def __call__(self, key: Hashable = None) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True


def hook_failed(message: str) -> None:
    """Say that our code in the user's cell failed, without ever raising into it."""
    try:
        warnings.warn(f"tracker: {message}", RuntimeWarning, stacklevel=3)
    except Exception:  # warnings turned into errors: the cell must still proceed
        print(f"tracker: {message}", file=sys.stderr)


def logger() -> Any:
    """The ``tracker_jupyter`` logger, set up on first use (``logging`` is not imported before)."""
    global _logger
    if _logger is None:
        with _logger_lock:
            if _logger is None:
                import logging

                class _DefaultHandler(logging.Handler):
                    """``tracker: message`` on the current ``sys.stderr`` (a notebook swaps it per cell)."""

                    def emit(self, record: logging.LogRecord) -> None:
                        try:
                            sys.stderr.write(f"tracker: {record.getMessage()}\n")
                        except Exception:
                            self.handleError(record)

                built = logging.getLogger(LOGGER_NAME)
                built.addHandler(_DefaultHandler(logging.INFO))
                built.propagate = False
                if built.level == logging.NOTSET:
                    built.setLevel(logging.INFO)
                _logger = built
    return _logger


def log(message: str, *args: Any) -> None:
    """A diagnostic of background work (a warning on the ``tracker_jupyter`` logger); never raises."""
    try:
        logger().warning(message, *args)
    except Exception:
        pass
