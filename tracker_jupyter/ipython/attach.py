"""What ``init()`` attaches to a run in an IPython shell: the session history and the live widget.

``attach_run(run, shell)`` is called by ``init()`` whenever an IPython shell exists, magics or not. With
``save_code`` it records the session history (``code/_session_history.ipynb``) and copies the notebook
file; in a notebook it shows the live widget. Everything it sets up is undone when the run finishes.

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

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter import store
from tracker_jupyter.core import host
from tracker_jupyter.core.report import Once, hook_failed
from tracker_jupyter.core.values import mask_code, secret_values
from tracker_jupyter.history import notebook
from tracker_jupyter.history.recorder import SessionRecorder
from tracker_jupyter.ipython.tap import ShellTap, tap_for
from tracker_jupyter.settings import Settings, resolve

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

__all__ = ["attach_run", "show_widget"]

_attachments: dict[int, _Attachment] = {}  # run id() -> its recording, until the run finishes


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
    if run.options.save_code and run.run_dir is not None:
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
        hook_failed(
            f"the live widget for run {run.id} could not be shown ({exc!r}); the run goes on without it"
        )


class _Attachment:
    """One recording run in one shell: its recorder, its files, its teardown."""

    def __init__(self, run: Run, shell: Any) -> None:
        self.run = run
        self.shell = shell
        self.recorder = SessionRecorder()
        assert run.run_dir is not None, "a disabled run records no session history"
        self.history_path = run.run_dir / notebook.HISTORY_PATH
        self.history: notebook.HistoryNotebook | None = None
        self.notebook_file: Path | None = None
        self.saved_version = -1
        self.tap: ShellTap | None = None
        self.started = False  # set once start() went through; a failed start writes nothing at finish
        self._reported = Once()
        masking = resolve("mask_secrets", None, run.settings or Settings())
        self._mask: Callable[[str], str] | None = self._masked_text if masking else None

    def start(self) -> None:
        tap = self.tap = tap_for(self.shell)
        tap.add(self)  # may raise (a shell without cell events): init() then finishes the run
        self.started = True
        self._guard("could not prepare the session history", self._prepare_files)
        self.save()

    def _prepare_files(self) -> None:
        run = self.run
        earlier: list[dict[str, Any]] = []
        if run.resumed:
            earlier = notebook.cells_in(store.read_bytes(self.history_path))  # earlier sessions stay
        session = notebook.sessions_in(earlier) + 1
        started = time.strftime("%Y-%m-%d %H:%M:%S %z")
        self.history = notebook.HistoryNotebook(
            header=notebook.session_header(session, run.name, run.id, started),
            session=session, earlier=earlier, metadata=self._notebook_metadata(), mask=self._mask,
        )  # fmt: skip
        meta: dict[str, Any] = {"session_history": notebook.HISTORY_PATH}
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
        # the metadata, and replacing values (not adding keys) is safe while it does.
        run.update_meta(**meta)
        self._copy_notebook()

    def _copy_notebook(self) -> None:
        copy = self.run.meta.get("notebook_copy")
        if self.notebook_file is not None and copy:
            if self._mask is None:
                self.run.put_file(copy, self.notebook_file)
            else:
                self.run.put_file(copy, notebook.masked_notebook(self.notebook_file.read_bytes(), self._mask))

    def _masked_text(self, text: str) -> str:
        """Secrets out of saved code (``mask_code``): the run's own secret values, and the literal forms."""
        return mask_code(text, secret_values(self.run.config.as_dict(), self.run.meta.get("args") or ()))

    # ----- called by the tap
    def after_cell(self) -> None:
        if self.recorder.version != self.saved_version:
            self.save()

    def report(self, what: str, exc: BaseException) -> None:
        if self._reported():
            hook_failed(
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
            self.run.put_file(notebook.HISTORY_PATH, self.history.text(self.recorder.cells()))
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
