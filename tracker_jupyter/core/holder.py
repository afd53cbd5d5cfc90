"""The process's current run, in a plain holder (ipykernel does not keep ContextVars across cells)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run


class _Holder:
    def __init__(self) -> None:
        self.run: Run | None = None  # what tracker_jupyter.run / .log / .config refer to
        self.active: list[Run] = []  # every unfinished run of this process, oldest first
        self.atexit_installed = False
        self.uncaught_exception = False
        # the trial a sweep agent is running: the next init() takes its config, group and project
        self.sweep_trial: dict[str, Any] | None = None

    def add(self, run: Run, *, make_current: bool) -> None:
        self.active.append(run)
        if make_current or self.run is None:
            self.run = run
        run.on_finish(self.remove)

    def remove(self, run: Run) -> None:
        if run in self.active:
            self.active.remove(run)
        if self.run is run:  # the newest run still active (reinit="create_new") takes over, if any
            self.run = self.active[-1] if self.active else None


holder = _Holder()


def install_exit_handlers() -> None:
    """Finish unfinished runs at interpreter exit; an uncaught exception makes them ``failed``."""
    if holder.atexit_installed:
        return
    import atexit

    holder.atexit_installed = True
    previous = sys.excepthook

    def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
        holder.uncaught_exception = True
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    atexit.register(finish_all_at_exit)


def finish_all_at_exit() -> None:
    exit_code = 1 if holder.uncaught_exception else 0
    for run in list(reversed(holder.active)):
        try:
            run.finish(exit_code=exit_code)
        except Exception as exc:
            print(f"tracker: could not finish run {run.id} at exit: {exc}", file=sys.stderr)
