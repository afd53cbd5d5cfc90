"""The IPython side of tracker_jupyter: the extension entry points and what a run needs in a shell.

- ``load_ipython_extension`` / ``unload_ipython_extension`` register and remove ``TrackerMagics``
  (``%load_ext``, ``%reload_ext`` and ``c.InteractiveShellApp.extensions`` all go through them).
- ``attach_run(run, shell)`` is called by ``init()`` whenever an IPython shell exists, magics or not.
  With ``save_code`` it records the session history (``code/_session_history.ipynb``) and copies the
  notebook file; in a notebook it shows the live widget. Everything it sets up is undone when the run
  finishes.

How cells are followed: one ``_ShellTap`` per shell registers ``pre_run_cell`` / ``post_run_cell`` and
wraps the shell's display publisher and displayhook (and, while a cell runs, ``sys.stdout`` /
``sys.stderr``) for as long as at least one run records. Outputs go to the cell that is running when
they arrive, and a cell takes its number from its own ``ExecutionResult``: never from
``shell.execution_count``, which already names the next cell while this one runs. Nothing here may
raise into the user's cell: a failure is reported once (a ``RuntimeWarning``) and the cell goes on.

Which cells the session history holds, and why:

- the cell that started the run (its ``init()`` or ``%tracker_init``, with the outputs it produced
  from then on) and every cell executed after it, up to the one that finished the run. Cells run
  before are not part of this run's history: the notebook copy has them, and when several runs share
  a kernel each history holds its own run's cells instead of repeating the whole session;
- in execution order, each with its execution count, source, ``Out`` value, displays (HTML, images,
  widgets' fallbacks), stdout/stderr text and the exception it ended with;
- not the executions a frontend makes for itself (``store_history=False``, or silent): the user never
  ran them and they have no execution count. ``run_cell()`` called from a cell belongs to that cell;
- outputs published while no cell runs (a thread after its cell ended) are left out, except updates of
  an earlier display, which replace it in its own cell as they do on screen;
- a resumed run keeps its earlier sessions in the file and adds the new one after a header.
"""

from __future__ import annotations

import functools
import shutil
import sys
import time
import traceback
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter import store
from tracker_jupyter.core import host
from tracker_jupyter.history import notebook
from tracker_jupyter.history.recorder import SessionRecorder
from tracker_jupyter.settings import Settings, resolve

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run
    from tracker_jupyter.ipython.magics import TrackerMagics

__all__ = ["attach_run", "load_ipython_extension", "show_widget", "unload_ipython_extension"]

_MISSING = object()

# Module state, all of it: which shells have the magics, which shells are being followed, which runs
# record. Each entry is removed when its shell unloads or its run finishes.
_loaded: weakref.WeakKeyDictionary[Any, TrackerMagics] = weakref.WeakKeyDictionary()
_taps: dict[int, _ShellTap] = {}
_attachments: dict[int, _Attachment] = {}


# --------------------------------------------------------------------------------------- load/unload


def load_ipython_extension(shell: Any) -> None:
    """Register ``TrackerMagics`` on ``shell``; loading again is harmless."""
    if shell in _loaded:
        return
    from tracker_jupyter.ipython.magics import TrackerMagics

    magics = TrackerMagics(shell=shell)  # joins shell.configurables: %config TrackerMagics works
    shell.register_magics(magics)
    _loaded[shell] = magics


def unload_ipython_extension(shell: Any) -> None:
    """Remove what ``load_ipython_extension`` added: the magics and their configurable.

    Runs that are still active keep recording; they clean up after themselves when they finish.
    """
    magics = _loaded.pop(shell, None)
    if magics is None:
        return
    manager = shell.magics_manager
    for table in manager.magics.values():
        for name, func in list(table.items()):
            if getattr(func, "__self__", None) is magics:
                del table[name]
    if manager.registry.get(type(magics).__name__) is magics:
        del manager.registry[type(magics).__name__]
    if magics in shell.configurables:
        shell.configurables.remove(magics)


# ------------------------------------------------------------------------------------------ attach


def attach_run(run: Run, shell: Any) -> None:
    """Set up what ``run`` needs in ``shell``; undone by the run's finish.

    With ``save_code`` (and ``TRACKER_DISABLE_CODE`` unset), the run records its session history and
    copies the notebook file. In a notebook kernel with the ``show_widget`` setting on, the live widget
    is shown below the current cell; a widget failure is reported and the run goes on.

    The finish hook is registered before anything is installed, so when this raises, ``init()``
    finishing the run as failed undoes whatever was set up.
    """
    if shell is None:
        return
    if getattr(run, "_save_code", False) and getattr(run, "_run_dir", None) is not None:
        attachment = _Attachment(run, shell)
        _attachments[id(run)] = attachment
        run.on_finish(attachment.finish)
        attachment.start()
    if host.in_notebook(shell) and resolve("show_widget", None, run.settings or Settings()):
        show_widget(run, shell)


def show_widget(run: Run, shell: Any) -> None:
    """Display ``run``'s live widget below the current cell; a failure is reported, never raised."""
    try:
        from tracker_jupyter.display import widget

        widget.attach(run, shell)
    except Exception as exc:
        _report(f"the live widget for run {run.id} could not be shown ({exc!r}); the run goes on without it")


def _report(message: str) -> None:
    """Say that something of ours failed, without ever raising into the user's code."""
    try:
        warnings.warn(f"tracker: {message}", RuntimeWarning, stacklevel=3)
    except Exception:  # warnings turned into errors: the cell must still proceed
        print(f"tracker: {message}", file=sys.stderr)


class _Attachment:
    """One recording run in one shell: its recorder, its files, its teardown."""

    def __init__(self, run: Run, shell: Any) -> None:
        self.run = run
        self.shell = shell
        self.recorder = SessionRecorder()
        self.code_dir = Path(run._run_dir) / "code"
        self.history_path = self.code_dir / notebook.SESSION_HISTORY
        self.history: notebook.HistoryNotebook | None = None
        self.notebook_file: Path | None = None
        self.saved_version = -1
        self.tap: _ShellTap | None = None
        self.started = False  # set once start() went through; a failed start writes nothing at finish
        self._reported = False

    def start(self) -> None:
        tap = _taps.get(id(self.shell))
        if tap is None:
            tap = _taps[id(self.shell)] = _ShellTap(self.shell)
        self.tap = tap
        tap.add(self)  # may raise (a shell without cell events): init() then finishes the run
        self.started = True
        self._guard("could not prepare the session history", self._prepare_files)
        self.save()

    def _prepare_files(self) -> None:
        run = self.run
        earlier: list[dict[str, Any]] = []
        if run.resumed:
            earlier = notebook.cells_in(
                store.read_bytes(self.history_path)
            )  # earlier sessions stay in the file
        session = notebook.sessions_in(earlier) + 1
        started = time.strftime("%Y-%m-%d %H:%M:%S %z")
        self.history = notebook.HistoryNotebook(
            header=notebook.session_header(session, run.name, run.id, started),
            session=session, earlier=earlier, metadata=self._notebook_metadata(),
        )  # fmt: skip
        meta: dict[str, Any] = {"session_history": f"code/{notebook.SESSION_HISTORY}"}
        given = host.notebook_path(self.shell, resolve("notebook_name", None, run.settings or Settings()))
        if given:
            self.notebook_file = _find_notebook(given)
            name = Path(given).name
            meta["notebook_name"] = name
            meta["notebook_path"] = str(self.notebook_file) if self.notebook_file else given
            meta["notebook_copy"] = None
            if self.notebook_file is not None and name != notebook.SESSION_HISTORY:
                meta["notebook_copy"] = f"code/{name}"
        # Every key this attachment will ever write is set here, once: the writer thread serializes
        # this dict, and replacing values (not adding keys) is safe while it does.
        run._meta.update(meta)
        run._sink.mark_meta()
        self.code_dir.mkdir(exist_ok=True)
        self._copy_notebook()

    def _copy_notebook(self) -> None:
        copy = self.run._meta.get("notebook_copy")
        if self.notebook_file is not None and copy:
            shutil.copyfile(self.notebook_file, self.code_dir / Path(copy).name)

    # ----- called by the tap
    def after_cell(self) -> None:
        if self.recorder.version != self.saved_version:
            self.save()

    def report(self, what: str, exc: BaseException) -> None:
        if not self._reported:
            self._reported = True
            _report(
                f"{what} for run {self.run.id} ({exc!r}); your code is not affected, the session history "
                "may be incomplete"
            )

    # ----- files
    def save(self) -> None:
        """Write the history notebook (atomically); a failure is reported once, the data stays in memory."""

        def write() -> None:
            version = self.recorder.version
            if self.history is None:  # preparing failed: still keep what can be kept
                self.history = notebook.HistoryNotebook(metadata=self._notebook_metadata())
            self.code_dir.mkdir(exist_ok=True)
            store.atomic_write(self.history_path, self.history.text(self.recorder.cells()))
            self.saved_version = version

        self._guard("could not save the session history", write)

    def _notebook_metadata(self) -> dict[str, Any]:
        run = self.run
        return {"tracker": {"run_id": run.id, "run_name": run.name, "project": run.project}}

    def finish(self, run: Run) -> None:
        """Teardown: stop following the shell, write the final history, copy the notebook again."""
        if self.tap is not None:
            tap, self.tap = self.tap, None
            self._guard("could not stop following the shell", lambda: tap.remove(self))
        if self.started:
            self.save()
            self._guard("could not copy the notebook", self._copy_notebook)
        _attachments.pop(id(run), None)

    def _guard(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:
            self.report(what, exc)


def _find_notebook(given: str) -> Path | None:
    """The notebook file ``given`` names; a relative path is relative to the server's root, somewhere up."""
    path = Path(given).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    cwd = Path.cwd()
    for base in (cwd, *cwd.parents):
        if (base / path).is_file():
            return (base / path).resolve()
    return (cwd / path.name).resolve() if (cwd / path.name).is_file() else None


# --------------------------------------------------------------------------------------- the tap


class _Patch:
    """``obj.<name>`` replaced by a wrapper that calls the original, then ``after`` with the same arguments.

    ``undo`` puts the original back when the wrapper is still the outermost one; when something else
    wrapped it since, the wrapper stays in that chain and only passes calls through.
    """

    def __init__(
        self, obj: Any, name: str, after: Callable[..., None], on_error: Callable[[Exception], None]
    ):
        self.obj = obj
        self.name = name
        self.active = True
        self.saved = getattr(obj, "__dict__", {}).get(name, _MISSING)
        original = getattr(obj, name)
        patch = self

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if patch.active:
                try:
                    after(*args, **kwargs)
                except Exception as exc:
                    on_error(exc)
            return result

        self.wrapper = wrapper
        setattr(obj, name, wrapper)  # AttributeError for objects that refuse it (a real file's write)

    def undo(self) -> None:
        self.active = False
        if getattr(self.obj, "__dict__", {}).get(self.name, _MISSING) is not self.wrapper:
            return
        if self.saved is _MISSING:
            delattr(self.obj, self.name)
        else:
            setattr(self.obj, self.name, self.saved)


class _ShellTap:
    """Follows one shell's cells and outputs and hands them to every recording run."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.listeners: list[_Attachment] = []
        self._events: list[tuple[str, Callable[..., None]]] = []
        self._patches: list[_Patch] = []
        self._stream_patches: list[_Patch] = []
        self._running: Any = None  # the ExecutionInfo of the cell running now
        self._running_count: int | None = None
        self._nested: set[int] = set()

    # ----- listeners
    def add(self, listener: _Attachment) -> None:
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

    def remove(self, listener: _Attachment) -> None:
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
        self._patches.append(_Patch(obj, name, after, self._report))

    def _patch_streams(self) -> None:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name, None)
            if stream is None:
                continue
            try:
                patch = _Patch(stream, "write", functools.partial(self._on_stream, name), self._report)
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
