"""Following a shell's cells and outputs: one ``ShellTap`` per shell, shared by every run that records.

The tap registers ``pre_run_cell`` / ``post_run_cell`` and wraps the shell's display publisher and
displayhook (and, while a cell runs, ``sys.stdout`` / ``sys.stderr``) for as long as at least one listener
records. Outputs go to the cell that is running when they arrive, and a cell takes its number from its
own ``ExecutionResult``: never from ``shell.execution_count``, which already names the next cell while
this one runs. Nothing here may raise into the user's cell: a failure goes to the listener's ``report``.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from tracker_jupyter.core.patching import Patch, call_then
from tracker_jupyter.history.recorder import SessionRecorder

__all__ = ["CellListener", "ShellTap", "tap_for"]

_taps: dict[int, ShellTap] = {}  # shell id -> its tap, while anything listens


class CellListener(Protocol):
    """What the tap hands cells to: a recorder, a hook after each cell, and where failures go."""

    recorder: SessionRecorder

    def after_cell(self) -> None: ...
    def report(self, what: str, exc: BaseException) -> None: ...


def tap_for(shell: Any) -> ShellTap:
    """The shell's tap, made on first use; it removes itself when its last listener leaves."""
    tap = _taps.get(id(shell))
    if tap is None:
        tap = _taps[id(shell)] = ShellTap(shell)
    return tap


class ShellTap:
    """Follows one shell's cells and outputs and hands them to every recording run."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.listeners: list[CellListener] = []
        self._events: list[tuple[str, Callable[..., None]]] = []
        self._patches: list[Patch] = []
        self._stream_patches: list[Patch] = []
        self._running: Any = None  # the ExecutionInfo of the cell running now
        self._running_count: int | None = None
        self._nested: set[int] = set()

    # ----- listeners
    def add(self, listener: CellListener) -> None:
        self.listeners.append(listener)
        if len(self.listeners) == 1:
            try:
                self._install()
            except BaseException:
                self.listeners.remove(listener)
                self._uninstall()
                raise
        if self._running is not None:
            listener.recorder.begin_cell(self._running.raw_cell or "", self._current_count())

    def remove(self, listener: CellListener) -> None:
        if listener not in self.listeners:
            return
        if self._running is not None:  # finish() inside a cell: that cell is the run's last
            listener.recorder.end_cell(self._current_count(), keep=bool(self._running.store_history))
        self.listeners.remove(listener)
        if not self.listeners:
            self._uninstall()

    # ----- install / uninstall
    def _install(self) -> None:
        shell = self.shell
        self._patch(shell.display_pub, "publish", self._on_publish)
        self._patch(shell.display_pub, "clear_output", self._on_clear_output)
        self._patch(shell.displayhook, "write_format_data", self._on_result)
        for event, callback in (("pre_run_cell", self._pre_run_cell), ("post_run_cell", self._post_run_cell)):
            shell.events.register(event, callback)
            self._events.append((event, callback))
        # Installed from inside a cell (the one calling init()): that cell is already running, and its
        # ExecutionResult says which one it is.
        current = getattr(shell.displayhook, "exec_result", None)
        info = getattr(current, "info", None)
        if info is not None and not info.silent:  # silent executions get no post_run_cell to end them
            self._running = info
            self._running_count = getattr(current, "execution_count", None)
            self._patch_streams()

    def _uninstall(self) -> None:
        self._unpatch_streams()
        for patch in reversed(self._patches):
            patch.undo()
        self._patches.clear()
        for event, callback in self._events:
            try:
                self.shell.events.unregister(event, callback)
            except ValueError:
                pass
        self._events.clear()
        self._running = None
        self._nested.clear()
        if _taps.get(id(self.shell)) is self:
            del _taps[id(self.shell)]

    def _patch(self, obj: Any, name: str, after: Callable[..., None]) -> None:
        self._patches.append(Patch(obj, name, call_then(after, self._report)))

    def _patch_streams(self) -> None:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name, None)
            if stream is None:
                continue
            try:
                patch = Patch(
                    stream, "write", call_then(functools.partial(self._on_stream, name), self._report)
                )
            except (AttributeError, TypeError):
                continue  # a plain file (terminal IPython): its text is not recorded
            self._stream_patches.append(patch)

    def _unpatch_streams(self) -> None:
        for patch in reversed(self._stream_patches):
            patch.undo()
        self._stream_patches.clear()

    def _current_count(self) -> int | None:
        current = getattr(self.shell.displayhook, "exec_result", None)
        if current is not None and getattr(current, "info", None) is self._running:
            return current.execution_count
        return self._running_count

    # ----- IPython events
    def _pre_run_cell(self, info: Any) -> None:
        try:
            if self._running is not None:
                self._nested.add(id(info))  # run_cell() called from a running cell: part of that cell
                return
            self._running = info
            self._running_count = None
            self._patch_streams()
            for listener in self.listeners:
                listener.recorder.begin_cell(info.raw_cell or "")
        except Exception as exc:
            self._report(exc)

    def _post_run_cell(self, result: Any) -> None:
        try:
            info = getattr(result, "info", None)
            running = self._running
            if running is None:
                return
            if info is not running and info is not None:
                if id(info) in self._nested:
                    self._nested.discard(id(info))
                    return
                # IPython rebuilds the ExecutionInfo when the cell's runner itself raised (and passes
                # no result at all when running the cell failed outright): both end the running cell.
                if info.raw_cell != running.raw_cell:
                    return
            self._running = None
            self._nested.clear()
            self._unpatch_streams()
            error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
            count = getattr(result, "execution_count", None)
            if count is None:
                count = self._running_count
            for listener in list(self.listeners):
                try:
                    if error is not None:
                        listener.recorder.add_error(*_error_parts(error))
                    listener.recorder.end_cell(count, keep=bool(running.store_history))
                    listener.after_cell()
                except Exception as exc:
                    listener.report("session recording failed", exc)
        except Exception as exc:
            self._report(exc)

    # ----- outputs
    def _on_publish(self, *args: Any, **kwargs: Any) -> None:
        data = kwargs.get("data", args[0] if args else None)
        if not isinstance(data, dict):
            return
        metadata = kwargs.get("metadata", args[1] if len(args) > 1 else None)
        transient = kwargs.get("transient") or {}
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        for listener in self.listeners:
            if kwargs.get("update") and display_id:
                listener.recorder.update_display(data, metadata, display_id)
            else:
                listener.recorder.add_display(data, metadata, display_id)

    def _on_clear_output(self, wait: bool = False, *args: Any, **kwargs: Any) -> None:
        for listener in self.listeners:
            listener.recorder.clear_output(bool(wait))

    def _on_result(self, format_dict: Any, md_dict: Any = None, *args: Any, **kwargs: Any) -> None:
        if isinstance(format_dict, dict) and format_dict:
            for listener in self.listeners:
                listener.recorder.add_result(format_dict, md_dict if isinstance(md_dict, dict) else None)

    def _on_stream(self, name: str, data: Any = None, *args: Any, **kwargs: Any) -> None:
        if not isinstance(data, str) or not data:
            return
        shell = self.shell
        # What the display machinery itself prints (terminal shells) is recorded as the display already.
        if (
            getattr(shell.display_pub, "is_publishing", False)
            or getattr(shell.displayhook, "is_active", False)
            or getattr(shell, "showing_traceback", False)
        ):
            return
        for listener in self.listeners:
            listener.recorder.add_stream(name, data)

    def _report(self, exc: Exception) -> None:
        for listener in self.listeners:
            listener.report("session recording failed", exc)


def _error_parts(error: BaseException) -> tuple[str, str, list[str]]:
    """Name, message and traceback lines of the exception a cell ended with (IPython's frames left out)."""
    frames = traceback.extract_tb(error.__traceback__)
    while frames and _is_ipython_frame(frames[0].filename):
        frames = traceback.StackSummary.from_list(frames[1:])
    lines = ["Traceback (most recent call last):\n", *frames.format()] if frames else []
    lines.extend(traceback.format_exception_only(type(error), error))
    return type(error).__name__, str(error), [line.rstrip("\n") for line in lines]


def _is_ipython_frame(filename: str) -> bool:
    normalized = filename.replace("\\", "/")
    return "/IPython/core/" in normalized
