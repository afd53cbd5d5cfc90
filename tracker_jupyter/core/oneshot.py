"""A function that runs a callback once, after its first call: how a part (the dashboard) hooks into the
next ``log()`` without costing the calls that come after it anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracker_jupyter.core.report import log

__all__ = ["one_shot", "pending"]


def one_shot(
    base: Callable[[Any], None],
    callback: Callable[[], None],
    restore: Callable[[Callable[[Any], None]], None],
) -> Callable[[Any], None]:
    """``base``, which on its first call hands ``restore`` the plain ``base``, then runs ``callback()``.

    A failing callback is reported (the ``tracker_jupyter`` logger) and never reaches the caller.
    """

    def once(value: Any) -> None:
        restore(base)
        base(value)
        try:
            callback()
        except Exception as exc:
            log(f"a callback on log() failed: {exc!r}")

    once.tj_pending = callback  # type: ignore[attr-defined]
    return once


def pending(function: Callable[..., Any]) -> Callable[[], None] | None:
    """The callback a ``one_shot`` function still holds (None for a plain function)."""
    return getattr(function, "tj_pending", None)
