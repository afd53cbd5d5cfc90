"""What every live run display does, and the one for frontends without widgets.

``_Dashboard`` follows a run: the run's writer thread hands each batch of rows that reached the disk to
``RunFeed.ingest``, which folds them into fixed-size min/max series (memory does not grow with steps);
a timer thread redraws at most ``widget_fps`` times a second, and only what changed; at ``finish()`` the
display is replaced (``update_display``) by the static snapshot. ``widget.WidgetDashboard`` is the
ipywidgets form; ``TextDashboard`` here is the compact HTML and text display where widgets cannot
render. Nothing here raises into the user's cell.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracker_jupyter.core.report import log
from tracker_jupyter.display.system_series import SystemReader
from tracker_jupyter.display.view import (
    RunFeed,
    history_extent,
    history_path,
    render_charts,
    render_header,
    render_text,
    rows_before,
    run_info,
    snapshot_bundle,
    sync_status,
)
from tracker_jupyter.store.console import SYSTEM

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

__all__ = ["Publisher", "TextDashboard"]

DRAIN_TIMEOUT_S = 2.0  # how long finish waits for the writer to hand over the last rows
MAX_FPS = 10.0  # widget_fps above this is taken as this: each redraw costs the kernel time and comm traffic
SYNC_REFRESH_S = 2.0  # the sync status counts unsent rows in the history file: not at every redraw
TEXT_REFRESH_S = 1.0  # the fallback display is re-sent whole, so it updates less often
MAX_CELL_RUNS = 64  # dashboards a cell keeps count of (the first and the newest are all it needs)
_CELL: dict[str, Any] = {}  # the shell and cell execution showing runs now, and their dashboards


def _report(message: str) -> None:
    """Say that the display failed (the ``tracker_jupyter`` logger): the run itself goes on unharmed."""
    log(message)


# ------------------------------------------------------------------------------------------ displays


class Publisher:
    """Where displays go: IPython's ``display`` / ``update_display``. Tests pass a recorder instead."""

    def show(self, bundle: dict[str, Any], display_id: str | None) -> None:
        from tracker_jupyter.core import host

        if host.get_shell() is None:  # a plain script: IPython's display would print the dict itself
            print(bundle.get("text/plain", ""))
            return
        from IPython.display import display

        display(bundle, raw=True, display_id=display_id)

    def update(self, bundle: dict[str, Any], display_id: str) -> None:
        from IPython.display import update_display

        update_display(bundle, raw=True, display_id=display_id)


class _Dashboard:
    """What every dashboard does: follow the run's rows, redraw on a timer, leave a snapshot at finish."""

    refresh_s = 1.0 / MAX_FPS  # the shortest pause between redraws

    def __init__(self, run: Run, *, publisher: Publisher, fps: float, start_timer: bool = True) -> None:
        self.run = run
        self.publisher = publisher
        self.feed = self.new_feed()
        self._system_reader = SystemReader(run.run_dir / SYSTEM if run.run_dir is not None else None)
        self.display_id = f"tracker-{run.id}-{uuid.uuid4().hex[:8]}"
        self.refresh_s = max(self.refresh_s, 1.0 / max(fps, 0.01))
        self.redraws = 0
        self.finished = False
        self._snapshot_left = False  # teardown replaced the live display with the snapshot
        self.compact = False  # one of several runs of a cell: a row at finish (``compact``)
        self.compact_head = False  # the first of them, whose row has the column titles
        self._shown_in: set[Any] = set()
        self._preload: threading.Thread | None = None
        self._sync: tuple[float, Mapping[str, Any] | None] = (-math.inf, None)
        self._draw_lock = threading.RLock()
        self._stop = threading.Event()
        self._follow()
        run.on_finish(self._on_finish)
        run.on_closed(self._on_closed)
        self._thread: threading.Thread | None = None
        if start_timer and not run.finished:
            self._thread = threading.Thread(target=self._loop, name=f"tracker-widget-{run.id}", daemon=True)
            self._thread.start()

    def _follow(self) -> None:
        """Subscribe to the writer and read what was written before, with no row missed or doubled.

        The file is read up to its size at subscription, in a thread of its own (a long history must not
        hold up ``init()``); the writer delivers everything written after that. A batch written before
        but delivered after is in both: its steps, up to the last one read, are skipped on delivery.
        """
        sink = self.run.sink
        history = history_path(self.run)
        if history is None or self.run.step == 0:
            sink.subscribe(self.feed.ingest)
            return
        with self.feed.lock:
            sink.subscribe(self.feed.ingest)
            size, first, last = history_extent(history)
            self.feed.origin = first
            self.feed._skip_through = last
        if size:
            self._preload = threading.Thread(
                target=self.feed.preload, args=(rows_before(history, size),), daemon=True,
                name=f"tracker-widget-preload-{self.run.id}",
            )  # fmt: skip
            self._preload.start()

    def show(self, shell: Any) -> None:
        """Display a view below the current cell (once per cell execution)."""
        cell = getattr(shell, "execution_count", None)
        if cell is not None and cell in self._shown_in:
            return  # init() already showed it in this cell; the Run's repr at the end would repeat it
        if not self._shown_in:
            self._join_cell(shell, cell)
        self._shown_in.add(cell)
        if self.finished:
            self.publisher.show(snapshot_bundle(self.run), None)
            return
        with self._draw_lock:  # the redraw thread must not replace it before it is shown
            self.publisher.show(self.first_bundle(), self.display_id)

    def first_bundle(self) -> dict[str, Any]:
        """What a new view shows first: the live display."""
        return self.live_bundle()

    def info(self, now: float | None = None) -> dict[str, Any]:
        """``run_info`` with the sync status read at most every ``SYNC_REFRESH_S`` seconds."""
        now = time.time() if now is None else now
        read_at, status = self._sync
        if now - read_at >= SYNC_REFRESH_S or self.finished:
            status = sync_status(self.run)
            self._sync = (now, status)
        return run_info(self.run, now, sync=status or {})

    def live_bundle(self) -> dict[str, Any]:
        raise NotImplementedError

    def redraw(self, *, force: bool = False) -> bool:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.redraw()
            except Exception as exc:  # a closed comm, a frontend gone: stop drawing, keep the run going
                _report(f"the live display stopped updating: {exc!r}")
                return

    def _drain(self) -> None:
        """Wait (briefly) until the earlier history is read and the writer has handed us every row."""
        run = self.run
        if run.disabled or run.step == 0:
            return
        if self._preload is not None:
            self._preload.join(timeout=DRAIN_TIMEOUT_S * 5)
        with contextlib.suppress(Exception):
            run.sink.flush()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self.feed.last_step < run.step - 1 and time.monotonic() < deadline:
            time.sleep(0.005)

    def _on_finish(self, run: Run) -> None:
        if self.finished:  # detached
            return
        try:
            self._stop.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
            self._drain()
            with contextlib.suppress(Exception):
                self._system_reader.read(self.feed)  # the samples up to the last, for the snapshot
            self.finished = True
            self.teardown()
            self._snapshot_left = True
        except Exception as exc:
            _report(f"could not leave the final snapshot: {exc!r}")
        finally:
            self._unfollow()
            with contextlib.suppress(Exception):
                run.sink.unsubscribe(self.feed.ingest)

    def _unfollow(self) -> None:
        """Stop showing views below later cells (only the widget does)."""

    def _on_closed(self, run: Run) -> None:
        """The system sampler writes its last sample when the run finishes, after the snapshot was made
        (finish callbacks run newest first): when one came, the snapshot is made again with it."""
        if not self._snapshot_left:
            return
        try:
            if self._system_reader.read(self.feed):
                self.publisher.update(self.final_bundle(getattr(self, "view", None)), self.display_id)
        except Exception as exc:
            _report(f"could not add the last system metrics sample to the snapshot: {exc!r}")

    def _detach(self) -> None:
        """Stop following the run (a dashboard that failed to build must not linger)."""
        self._unfollow()
        self._stop.set()
        self.finished = True
        with contextlib.suppress(Exception):
            self.run.sink.unsubscribe(self.feed.ingest)

    def new_feed(self) -> RunFeed:
        """The feed the run's rows go to (made before the first row can arrive), with its media."""
        from tracker_jupyter.display.media_panel import MediaFeed

        feed = RunFeed()
        feed.media = MediaFeed()
        return feed

    def _join_cell(self, shell: Any, cell: Any) -> None:
        """Count this run among those the cell shows; from the second on, each leaves a compact row
        (``compact``), and the first one, if it already finished, turns into the row with the titles."""
        if cell is None:
            return
        if _CELL.get("shell") is not shell or _CELL.get("cell") != cell:
            _CELL.clear()
            _CELL.update(shell=shell, cell=cell, runs=[])
        runs: list[_Dashboard] = _CELL["runs"]
        runs.append(self)
        if len(runs) < 2:
            return
        self.compact = True
        first = runs[0]
        if not first.compact:
            first.compact = first.compact_head = True
            if first.finished:
                with contextlib.suppress(Exception):
                    first.publisher.update(first.final_bundle(), first.display_id)
        if len(runs) > MAX_CELL_RUNS:
            del runs[1:-1]  # only the first (the titles) and the newest are ever looked at again

    def final_bundle(self, view: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the display becomes at finish: the snapshot, or a compact row in a cell of many runs."""
        if self.compact:
            from tracker_jupyter.display.compact import compact_row

            return compact_row(self.run, self.feed, self.info(), head=self.compact_head)
        return snapshot_bundle(self.run, view=view)

    def teardown(self) -> None:
        self.publisher.update(self.final_bundle(), self.display_id)


class TextDashboard(_Dashboard):
    """Where widgets cannot render: a compact HTML + text display, re-sent in place at most once a second.

    In a terminal (``live=False``) a re-sent display would print again, so it shows once at attach and
    once, final, at finish.
    """

    refresh_s = TEXT_REFRESH_S

    def __init__(
        self, run: Run, *, publisher: Publisher, fps: float, live: bool, start_timer: bool = True
    ) -> None:
        self.live = live
        self._drawn_version = -1
        super().__init__(run, publisher=publisher, fps=fps, start_timer=start_timer and live)

    def live_bundle(self) -> dict[str, Any]:
        info = self.info()
        with self.feed.lock:
            names = list(self.feed.series)[:4]
            charts_html = (
                render_charts(self.feed, names, origin_ms=self.run.start_time * 1000) if names else ""
            )
        return {
            "text/plain": render_text(info, self.feed),
            "text/html": render_header(info, self.feed) + charts_html,
        }

    def redraw(self, *, force: bool = False) -> bool:
        with self._draw_lock:
            if not self.live or self.finished:
                return False
            self.publisher.update(self.live_bundle(), self.display_id)
            self._drawn_version = self.feed.version
            self.redraws += 1
            return True

    def teardown(self) -> None:
        if self.live:
            super().teardown()
        else:
            self.publisher.show({"text/plain": render_text(run_info(self.run), self.feed)}, None)
