"""The session recorder: the cells a run saw, in execution order, with the outputs each one produced.

This is the engine behind ``code/_session_history.ipynb``. It takes plain data (a cell's source, its
execution count, mime bundles, stream text) and knows nothing of IPython: ``ipython.tap`` feeds it from
the shell's events and display machinery, ``notebook.py`` turns its cells into an nbformat notebook.

Outputs go to the cell that is running when they arrive, and a cell is numbered with the execution count
its own execution reported. Nothing is keyed by "the shell's current count", which is what sends outputs
to the wrong cell when it is read at the wrong moment.

Every method may be called from any thread (display updates can come from background threads).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

# A cell that prints for hours must not grow without bound: past these limits, the rest is left out
# and a note says so.
MAX_STREAM_CHARS = 200_000
MAX_OUTPUTS_PER_CELL = 200


@dataclasses.dataclass(frozen=True)
class Output:
    """One output of a cell, shaped like an nbformat v4 output.

    ``output_type`` is ``display_data``, ``execute_result``, ``stream`` or ``error``; ``data`` and
    ``metadata`` are mime bundles (display_data, execute_result); ``name`` and ``text`` belong to
    streams; ``ename``, ``evalue`` and ``traceback`` to errors. ``display_id`` is kept only to apply
    later updates of the same display; it is not saved.
    """

    output_type: str
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    name: str = ""
    text: str = ""
    ename: str = ""
    evalue: str = ""
    traceback: tuple[str, ...] = ()
    display_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Cell:
    """A recorded cell: its source, its execution count (None when unknown) and its outputs.

    ``serial`` names the cell within its recorder and ``revision`` changes whenever the cell does, so a
    writer can reuse what it made of a cell that did not change.
    """

    source: str
    execution_count: int | None
    outputs: tuple[Output, ...]
    serial: int | None = dataclasses.field(default=None, compare=False)
    revision: int = dataclasses.field(default=0, compare=False)


class _OpenCell:
    def __init__(self, source: str, execution_count: int | None, serial: int) -> None:
        self.source = source
        self.execution_count = execution_count
        self.serial = serial
        self.revision = 0
        self.outputs: list[Output] = []
        self.clear_pending = False  # clear_output(wait=True): clear when the next output arrives
        self.dropped = 0
        self._frozen: Cell | None = None

    def freeze(self) -> Cell:
        # Snapshots are taken after every cell, of every cell: an unchanged cell reuses its last one.
        if self._frozen is not None and self._frozen.revision == self.revision:
            return self._frozen
        outputs = list(self.outputs)
        if self.dropped:
            note = f"[{self.dropped} more outputs of this cell were not recorded]\n"
            outputs.append(Output("stream", name="stderr", text=note))
        self._frozen = Cell(self.source, self.execution_count, tuple(outputs), self.serial, self.revision)
        return self._frozen


class SessionRecorder:
    """Collects cells and their outputs while a run is active.

    The caller brackets each cell with ``begin_cell`` / ``end_cell`` and reports outputs in between;
    ``cells()`` is a snapshot (finished cells, then the running one), ``version`` changes whenever the
    snapshot would, so a writer can skip saving when nothing happened.

    Parameters
    ----------
    max_stream_chars
        Stream text kept per cell and stream; the rest is replaced by a note.
    max_outputs_per_cell
        Outputs kept per cell; later ones are counted and mentioned in a note.
    """

    def __init__(
        self, *, max_stream_chars: int = MAX_STREAM_CHARS, max_outputs_per_cell: int = MAX_OUTPUTS_PER_CELL
    ) -> None:
        self.max_stream_chars = max_stream_chars
        self.max_outputs_per_cell = max_outputs_per_cell
        self._lock = threading.RLock()
        self._done: list[_OpenCell] = []
        self._current: _OpenCell | None = None
        self._version = 0
        self._serials = 0

    @property
    def version(self) -> int:
        """A counter that moves on every change."""
        return self._version

    @property
    def running(self) -> bool:
        """True between ``begin_cell`` and ``end_cell``."""
        return self._current is not None

    # ----- cells
    def begin_cell(self, source: str, execution_count: int | None = None) -> None:
        """A cell started. A cell still open (its end never reported) is kept as it is."""
        with self._lock:
            if self._current is not None:
                self._done.append(self._current)
            self._serials += 1
            self._current = _OpenCell(source, execution_count, self._serials)
            self._touch(self._current)

    def end_cell(self, execution_count: int | None, *, keep: bool = True) -> None:
        """The running cell ended with ``execution_count``; ``keep=False`` forgets it (not a user cell)."""
        with self._lock:
            cell = self._current
            if cell is None:
                return
            self._current = None
            if keep:
                if execution_count is not None:
                    cell.execution_count = execution_count
                self._done.append(cell)
            self._touch(cell)

    def cells(self) -> list[Cell]:
        """Every recorded cell in execution order, the running one last."""
        with self._lock:
            cells = [cell.freeze() for cell in self._done]
            if self._current is not None:
                cells.append(self._current.freeze())
            return cells

    # ----- outputs of the running cell
    def add_display(
        self,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        display_id: str | None = None,
    ) -> None:
        """A ``display_data`` output; ignored when no cell is running (nothing would show it)."""
        self._add(Output("display_data", dict(data), dict(metadata or {}), display_id=display_id))

    def add_result(self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
        """The cell's ``Out`` value, as a mime bundle."""
        self._add(Output("execute_result", dict(data), dict(metadata or {})))

    def add_error(self, ename: str, evalue: str, traceback: Sequence[str]) -> None:
        """The exception the cell ended with."""
        self._add(Output("error", ename=ename, evalue=evalue, traceback=tuple(traceback)))

    def add_stream(self, name: str, text: str) -> None:
        """Text the cell wrote to ``stdout`` or ``stderr``; consecutive writes are merged."""
        if not text:
            return
        with self._lock:
            cell = self._current
            if cell is None:
                return
            self._apply_pending_clear(cell)
            last = cell.outputs[-1] if cell.outputs else None
            if last is not None and last.output_type == "stream" and last.name == name:
                kept = len(last.text)
                if kept >= self.max_stream_chars:
                    return  # the note is already there
                text = _cut(last.text + text, self.max_stream_chars)
                cell.outputs[-1] = dataclasses.replace(last, text=text)
            else:
                if not self._room(cell):
                    return
                cell.outputs.append(Output("stream", name=name, text=_cut(text, self.max_stream_chars)))
            self._touch(cell)

    def update_display(
        self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None, display_id: str
    ) -> None:
        """Replace every earlier output shown with ``display_id`` (``update_display``), in any cell."""
        with self._lock:
            cells = [*self._done, *([self._current] if self._current is not None else [])]
            for cell in cells:
                for index, output in enumerate(cell.outputs):
                    if output.display_id == display_id:
                        cell.outputs[index] = dataclasses.replace(
                            output, data=dict(data), metadata=dict(metadata or {})
                        )
                        self._touch(cell)

    def clear_output(self, wait: bool = False) -> None:
        """``clear_output``: the running cell's outputs so far are gone (at its next output with wait)."""
        with self._lock:
            cell = self._current
            if cell is None:
                return
            if wait:
                cell.clear_pending = True
                return
            cell.outputs.clear()
            cell.clear_pending = False
            cell.dropped = 0
            self._touch(cell)

    # ----- internals
    def _add(self, output: Output) -> None:
        with self._lock:
            cell = self._current
            if cell is None:
                return
            self._apply_pending_clear(cell)
            if not self._room(cell):
                return
            cell.outputs.append(output)
            self._touch(cell)

    def _room(self, cell: _OpenCell) -> bool:
        if len(cell.outputs) < self.max_outputs_per_cell:
            return True
        cell.dropped += 1
        self._touch(cell)
        return False

    def _touch(self, cell: _OpenCell) -> None:
        self._version += 1
        cell.revision = self._version

    def _apply_pending_clear(self, cell: _OpenCell) -> None:
        if cell.clear_pending:
            cell.outputs.clear()
            cell.clear_pending = False
            cell.dropped = 0
            self._touch(cell)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[output cut at {limit} characters]\n"
