"""The live run widget and its static snapshot on screen (the runs dashboard is ``runs``; the data and
markup both show come from ``view``).

``attach(run, shell)`` shows one compact widget below the current cell: a header (name, state, elapsed
time, step, steps per second, where the run lives), one small chart per numeric metric, and the latest
values and config in an accordion. It is built from standard ipywidgets (HTML holding inline SVG made by
``charts``), so every frontend that renders widgets shows it, with no custom JavaScript and no iframe.

How data reaches it: the run's writer thread hands each batch of rows that reached the disk to
``RunFeed.ingest``, which folds them into fixed-size min/max series (memory does not grow with steps).
A timer thread of the dashboard redraws at most ``widget_fps`` times a second, and only what changed; its
trait updates are comm messages that ipykernel sends through its IOPub thread, so they reach the frontend
while the cell that logs is still running. Nothing clears the cell's outputs: the widget is a display
with a ``display_id`` and is only ever updated in place.

On ``finish()`` the widget draws the final state, the display is replaced (``update_display``) by a static
HTML snapshot with the SVG charts inlined (as data-URI images), and the widgets' comms are closed, so a
saved notebook shows the result without a kernel. Where widgets cannot render (terminal IPython, no ipywidgets) a compact HTML and
text display takes its place; nothing here raises into the user's cell.
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
from tracker_jupyter.display import charts
from tracker_jupyter.display.charts import escape, format_duration, format_number
from tracker_jupyter.display.view import (
    MUTED,
    NUMERIC,
    STATE_COLORS,
    RunFeed,
    artifact_items,
    config_items,
    history_extent,
    history_path,
    latest_media,
    output_tail,
    render_charts,
    render_header,
    render_media_label,
    render_output,
    render_text,
    rows_before,
    run_info,
    snapshot_bundle,
    summary_items,
    sync_status,
    system_items,
)

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

__all__ = ["RunFeed", "attach", "show", "snapshot_bundle"]

MEDIA_WIDGET_BYTES = 8 << 20  # the newest video or image is sent to the widget up to this size
DRAIN_TIMEOUT_S = 2.0  # how long finish waits for the writer to hand over the last rows
MAX_FPS = 10.0  # widget_fps above this is taken as this: each redraw costs the kernel time and comm traffic
HEADER_REFRESH_S = 1.0  # the elapsed time ticks this often even when no rows arrive
CONFIG_REFRESH_S = 2.0
SYNC_REFRESH_S = 2.0  # the sync status counts unsent rows in the history file: not at every redraw
TEXT_REFRESH_S = 1.0  # the fallback display is re-sent whole, so it updates less often
MIME_WIDGET = "application/vnd.jupyter.widget-view+json"


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
        self.feed = RunFeed()
        self.display_id = f"tracker-{run.id}-{uuid.uuid4().hex[:8]}"
        self.refresh_s = max(self.refresh_s, 1.0 / max(fps, 0.01))
        self.redraws = 0
        self.finished = False
        self._shown_in: set[Any] = set()
        self._preload: threading.Thread | None = None
        self._sync: tuple[float, Mapping[str, Any] | None] = (-math.inf, None)
        self._draw_lock = threading.RLock()
        self._stop = threading.Event()
        self._follow()
        run.on_finish(self._on_finish)
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
        self._shown_in.add(cell)
        if self.finished:
            self.publisher.show(snapshot_bundle(self.run), None)
            return
        self.publisher.show(self.live_bundle(), self.display_id)

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
            self.finished = True
            self.teardown()
        except Exception as exc:
            _report(f"could not leave the final snapshot: {exc!r}")
        finally:
            self._unfollow()
            with contextlib.suppress(Exception):
                run.sink.unsubscribe(self.feed.ingest)

    def _unfollow(self) -> None:
        """Stop showing views below later cells (only the widget does)."""

    def _detach(self) -> None:
        """Stop following the run (a dashboard that failed to build must not linger)."""
        self._unfollow()
        self._stop.set()
        self.finished = True
        with contextlib.suppress(Exception):
            self.run.sink.unsubscribe(self.feed.ingest)

    def teardown(self) -> None:
        self.publisher.update(snapshot_bundle(self.run), self.display_id)


class WidgetDashboard(_Dashboard):
    """The ipywidgets dashboard of a live run: a header, the interactive charts (``panel``), the newest
    media and collapsible details."""

    def __init__(self, run: Run, *, publisher: Publisher, fps: float, start_timer: bool = True) -> None:
        import ipywidgets as w

        from tracker_jupyter.display.panel import LivePanel

        self.messages = 0  # trait updates sent (each one comm message)
        self._header_at = 0.0
        self._config_at = 0.0
        self._drawn_version = -1
        self.header = w.HTML()
        self.latest = w.HTML()
        self.config = w.HTML()
        self.artifacts = w.HTML()
        self.system = w.HTML()
        self.output = w.HTML()
        # one accordion per part, so any number of them can be open at once
        self.details = w.VBox(
            [
                _section(self.latest, "Latest values"),
                _section(self.config, "Config"),
                _section(self.artifacts, "Artifacts"),
                _section(self.system, "System"),
                _section(self.output, "Output"),
            ]
        )
        # the newest video or image logged (gym recordings, run.log({"x": Image(...)})), hidden until one is
        self.media_label = w.HTML()
        self.media = w.VBox([self.media_label], layout=w.Layout(display="none"))
        self._media_shown: tuple[Any, ...] | None = None
        self._shell: Any = None
        self.followers: list[str] = []  # display ids of the views below later cells that logged
        super().__init__(run, publisher=publisher, fps=fps, start_timer=False)
        try:
            self.panel = LivePanel(
                self.feed, run_name=str(run.name or run.id), origin_ms=run.start_time * 1000, view={}
            )
            self.box = w.VBox(
                [self.header, self.panel.widget, self.media, self.details],
                layout=w.Layout(padding="6px 10px", margin="4px 0"),
            )
            self.box.add_class("tracker-run")
            self.redraw(force=True)
        except Exception:
            self._detach()
            raise
        if start_timer and not run.finished:
            self._thread = threading.Thread(target=self._loop, name=f"tracker-widget-{run.id}", daemon=True)
            self._thread.start()

    # ----- following the cells that log
    def follow_cells(self, shell: Any) -> None:
        """Show a live view below each later cell that logs to the run (the ``widget_follow`` setting).

        A cell's first ``log()`` shows it (IPython's ``pre_run_cell`` arms a one-shot callback on the
        run, run in ``log()``'s own thread, so the view lands under the cell that logs). Each view is
        the same widget model, so it costs no extra comm traffic; at finish each one becomes a line.
        """
        events = getattr(shell, "events", None)
        if events is None or self.finished:
            return
        self._shell = shell
        events.register("pre_run_cell", self._on_cell)

    def _on_cell(self, *_: Any) -> None:
        if self.finished:
            self._unfollow()
            return
        self.run._on_next_log(self._show_here)

    def _show_here(self) -> None:
        cell = getattr(self._shell, "execution_count", None)
        if self.finished or cell is None or cell in self._shown_in:
            return
        self._shown_in.add(cell)
        display_id = f"{self.display_id}-cell{cell}"
        self.publisher.show(self.live_bundle(), display_id)
        self.followers.append(display_id)

    def _unfollow(self) -> None:
        shell, self._shell = self._shell, None
        if shell is not None:
            with contextlib.suppress(Exception):
                shell.events.unregister("pre_run_cell", self._on_cell)

    @property
    def view(self) -> dict[str, Any]:
        """The chart settings chosen in the browser (x axis, log scale, smoothing, filter, closed sections)."""
        return self.panel.view

    # ----- drawing
    def _set(self, widget: Any, value: Any) -> None:
        if widget.value != value:  # an unchanged value would still cost a message
            widget.value = value
            self.messages += 1

    def redraw(self, *, force: bool = False) -> bool:
        """Send what changed since the last redraw; returns whether anything was drawn."""
        with self._draw_lock:
            now = time.time()
            changed = self.feed.version != self._drawn_version or self.panel.resync_requested
            if not (force or changed or now - self._header_at >= HEADER_REFRESH_S):
                return False
            self._set(self.header, render_header(self.info(now), self.feed, now))
            self._header_at = now
            if force or changed:
                self._drawn_version = self.feed.version
                if self.panel.push(force=force):
                    self.messages += 1
                self._set(self.latest, charts.kv_table(summary_items(self.run)))
                self._draw_media()
            if force or now - self._config_at >= CONFIG_REFRESH_S:
                self._set(self.config, charts.kv_table(config_items(self.run), empty="no config"))
                found = artifact_items(self.run.meta)
                self._set(self.artifacts, charts.kv_table(found, empty="no artifacts logged or used"))
                self._set(self.system, charts.kv_table(system_items(self.run), empty="no sample yet"))
                self._set(self.output, render_output(output_tail(self.run)))
                self._config_at = now
            self.redraws += 1
            return True

    def _draw_media(self) -> None:
        found = latest_media(self.run)
        if found is None:
            return
        newest, path = found
        shown = (newest.get("sha256"), newest.get("step"), newest.get("key"))
        if shown == self._media_shown:
            return
        self._media_shown = shown
        import ipywidgets as w

        kind, fmt = newest.get("_type"), newest.get("format")
        viewer = None
        if path is not None and path.stat().st_size <= MEDIA_WIDGET_BYTES:
            layout = w.Layout(max_width="360px")
            if kind == "video" and fmt in ("mp4", "webm", "ogg"):
                data = path.read_bytes()
                viewer = w.Video(
                    value=data, format=fmt, autoplay=False, loop=False, controls=True, layout=layout
                )
            else:  # images, and gif videos
                viewer = w.Image(value=path.read_bytes(), format=fmt, layout=layout)
        self._set(self.media_label, render_media_label(newest, path, shown=viewer is not None))
        old = [child for child in self.media.children if child is not self.media_label]
        self.media.children = [self.media_label] + ([viewer] if viewer is not None else [])
        for child in old:
            with contextlib.suppress(Exception):
                child.close()
        if self.media.layout.display != "flex":
            self.media.layout.display = "flex"
        self.messages += 1

    def live_bundle(self) -> dict[str, Any]:
        bundle = self.box._repr_mimebundle_()
        info = self.info()
        # Frontends without a widget manager (nbconvert, GitHub) fall back on these.
        bundle["text/plain"] = render_text(info, self.feed)
        bundle["text/html"] = render_header(info, self.feed)
        return bundle

    def teardown(self) -> None:
        with self._draw_lock:
            # The widget's last state says the run is over (its charts are replaced right after, by the
            # snapshot's, so redrawing them would only cost time at finish).
            self._set(self.header, render_header(self.info(), self.feed))
            self._unfollow()
            self.publisher.update(snapshot_bundle(self.run, view=self.view), self.display_id)
            if self.followers:
                line = finished_line(self.run, self.info())
                for display_id in self.followers:
                    self.publisher.update(line, display_id)
            for widget in self._all_widgets():
                with contextlib.suppress(Exception):
                    widget.close()

    def _all_widgets(self) -> list[Any]:
        found: list[Any] = []
        stack = [self.box]
        while stack:
            widget = stack.pop()
            found.append(widget)
            stack.extend(getattr(widget, "children", ()))
            for part in ("layout", "style"):
                sub = getattr(widget, part, None)
                if sub is not None:
                    found.append(sub)
        return found


def _section(child: Any, title: str) -> Any:
    import ipywidgets as w

    section = w.Accordion(children=[child], titles=(title,))
    section.selected_index = None
    return section


def finished_line(run: Run, info: Mapping[str, Any], *, values: int = 4) -> dict[str, str]:
    """The one line a view below a later cell becomes at finish: the run, its state, steps, time and
    its first numeric summary values (the full snapshot stays below the cell that started the run)."""
    state = str(info.get("state"))
    color = STATE_COLORS.get(state, "#555")
    numbers = []
    for key, value in summary_items(run):
        if str(key).startswith("_"):
            continue
        if isinstance(value, Mapping):  # define_metric(summary="min") keeps {"min": ...}
            numbers += [(f"{key} {k}", v) for k, v in value.items() if type(v) in NUMERIC]
        elif type(value) in NUMERIC:
            numbers.append((key, value))
    parts = [f"step {format_number(info.get('step'))}", format_duration(info.get("elapsed"))]
    parts += [f"{k} {format_number(v)}" for k, v in numbers[:values]]
    where = "its charts are below the cell that started it"
    text = f"run {info.get('name')} ({info.get('id')}) {state} · {' · '.join(parts)} · {where}"
    html = (
        '<div class="tj-finished-line" style="font:13px/1.5 sans-serif">'
        f'<span style="display:inline-block;width:9px;height:9px;border-radius:50%;background:{color}">'
        "</span> "
        f'<b>{escape(info.get("name"))}</b> <code style="{MUTED};background:transparent">'
        f"{escape(info.get('id'))}</code> {escape(state)} · {escape(' · '.join(parts))} "
        f'<span style="{MUTED}">· {escape(where)}</span></div>'
    )
    return {"text/plain": text, "text/html": html}


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


# ----------------------------------------------------------------------------------------- entry points


def _fps(run: Run) -> float:
    from tracker_jupyter.settings import Settings, resolve

    try:
        value = float(resolve("widget_fps", None, run.settings or Settings()))
    except (TypeError, ValueError):
        value = 4.0
    return min(max(value, 0.1), MAX_FPS)


def _widget_enabled(run: Run) -> bool:
    from tracker_jupyter.settings import Settings, resolve

    try:
        return bool(resolve("show_widget", None, run.settings or Settings()))
    except Exception:
        return True


def _follow_enabled(run: Run) -> bool:
    from tracker_jupyter.settings import Settings, resolve

    try:
        return bool(resolve("widget_follow", None, run.settings or Settings()))
    except Exception:
        return True


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _dashboard_for(run: Run, shell: Any, publisher: Publisher) -> _Dashboard:
    dashboard = run.parts.dashboard
    if dashboard is None:
        in_kernel = getattr(shell, "kernel", None) is not None
        if in_kernel and _widgets_available():
            try:
                dashboard = WidgetDashboard(run, publisher=publisher, fps=_fps(run))
                if _follow_enabled(run):
                    dashboard.follow_cells(shell)
            except Exception as exc:
                _report(f"the live widget could not be built ({exc!r}); showing a text view instead")
        if dashboard is None:
            dashboard = TextDashboard(run, publisher=publisher, fps=_fps(run), live=in_kernel)
        run.parts.dashboard = dashboard
        if in_kernel:
            run.parts.quiet_lines = True  # the display says what init()'s and finish()'s lines would
    return dashboard


def attach(run: Run, shell: Any, *, publisher: Publisher | None = None) -> None:
    """Show the live widget of ``run`` below the current cell, unless the ``show_widget`` setting is off.

    Called when a run starts in a notebook, by ``%%tracker`` and by ``run.display()``. A run gets one
    widget however often this is called: each call adds a view of it (one per cell), and at finish every
    view becomes the static snapshot. Never raises: a display problem is reported on stderr.

    Parameters
    ----------
    run
        The ``Run`` to follow.
    shell
        The IPython shell (``get_ipython()``); None outside IPython, where nothing is shown.
    publisher
        Where displays go; default ``IPython.display``.
    """
    if shell is None or not _widget_enabled(run):
        return
    show(run, shell, publisher=publisher)


def show(run: Run, shell: Any = None, *, publisher: Publisher | None = None) -> None:
    """Show ``run`` below the current cell: its live widget while it runs, its snapshot once finished.

    This is ``run.display()``; unlike ``attach`` it ignores the ``show_widget`` setting, since asking to
    see the run is explicit.
    """
    from tracker_jupyter.core import host

    shell = host.get_shell() if shell is None else shell
    publisher = publisher or Publisher()
    try:
        if run.finished and run.parts.dashboard is None:
            publisher.show(snapshot_bundle(run), None)
            return
        _dashboard_for(run, shell, publisher).show(shell)
    except Exception as exc:
        _report(f"could not display run {getattr(run, 'id', '?')}: {exc!r}")
