"""The live run widget below the cell, and the entry points that show a run (the runs dashboard is
``runs``; the machinery every live display shares, and the text fallback, are ``live``; the data and
markup come from ``view``).

``attach(run, shell)`` shows one widget below the current cell: a header (name, state, elapsed time,
step, steps per second, where the run lives), the interactive charts (``panel``: an anywidget whose
code comes over the kernel's comm), the newest media, and collapsible details (latest values, config,
artifacts, system, output). A later cell that logs gets a live view of the same widget too.

Its updates are comm messages that ipykernel sends through its IOPub thread, so they reach the frontend
while the cell that logs is still running. Nothing clears the cell's outputs: the widget is a display
with a ``display_id`` and is only ever updated in place. On ``finish()`` the display is replaced by the
static HTML snapshot and the widgets' comms are closed, so a saved notebook shows the result without a
kernel. Where widgets cannot render (terminal IPython, no ipywidgets) ``live.TextDashboard`` takes its
place; nothing here raises into the user's cell.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracker_jupyter.display import charts
from tracker_jupyter.display.charts import escape, format_duration, format_number
from tracker_jupyter.display.live import (  # TEXT_REFRESH_S: the fallback's pace, read by the tests
    MAX_FPS,
    TEXT_REFRESH_S,
    Publisher,
    TextDashboard,
    _Dashboard,
    _report,
)
from tracker_jupyter.display.scales import step_metrics
from tracker_jupyter.display.view import (
    MUTED,
    STATE_COLORS,
    RunFeed,
    artifact_items,
    config_items,
    latest_media,
    output_tail,
    render_header,
    render_media_label,
    render_output,
    render_text,
    snapshot_bundle,
    summary_items,
    system_items,
)

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

__all__ = ["TEXT_REFRESH_S", "RunFeed", "TextDashboard", "attach", "show", "snapshot_bundle"]

MEDIA_REFRESH_S = 2.0  # the media state is re-sent at most this often (it reads the files it shows)
MEDIA_WIDGET_BYTES = 8 << 20  # the newest video is sent to the widget's player up to this size
HEADER_REFRESH_S = 1.0  # the elapsed time ticks this often even when no rows arrive
CONFIG_REFRESH_S = 2.0
MIME_WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_AFTER_S = 0.5  # a run shows its header alone until it has lived this long, then its widget
SETTLE_S = 1.0  # finish waits until a widget has been on screen this long before replacing it


class WidgetDashboard(_Dashboard):
    """The ipywidgets dashboard of a live run: a header, the interactive charts and the media (one
    ``panel`` model), the newest video and collapsible details."""

    def __init__(self, run: Run, *, publisher: Publisher, fps: float, start_timer: bool = True) -> None:
        self.messages = 0  # trait updates sent (each one comm message)
        self._header_at = 0.0
        self._config_at = 0.0
        self._drawn_version = -1
        self.box: Any = None  # the widgets, built when the run has lived WIDGET_AFTER_S (``_build``)
        self._media_shown: tuple[Any, ...] | None = None
        self._media_version, self._media_at = 0, -math.inf
        self._shell: Any = None
        self.followers: list[str] = []  # display ids of the views below later cells that logged
        self._created = time.monotonic()
        self._placeholder = False  # the header stands in for the widget (a run younger than WIDGET_AFTER_S)
        self._on_screen_at: float | None = None  # when the widget itself was first displayed (monotonic)
        super().__init__(run, publisher=publisher, fps=fps, start_timer=False)
        try:
            if WIDGET_AFTER_S <= 0:
                self._build()
        except Exception:
            self._detach()
            raise
        if start_timer and not run.finished:
            self._thread = threading.Thread(target=self._loop, name=f"tracker-widget-{run.id}", daemon=True)
            self._thread.start()

    def _build(self) -> None:
        """Make the widgets (their comms open now: a run that ends sooner never opens one, since closing
        models the browser is still setting up makes it log errors)."""
        if self.box is not None:
            return
        import ipywidgets as w

        from tracker_jupyter.display.panel import LivePanel

        run = self.run
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
        # the newest video (gym recordings, run.log({"x": Video(...)})), hidden until one is logged
        self.media_label = w.HTML()
        self.media = w.VBox([self.media_label], layout=w.Layout(display="none"))
        self.panel = LivePanel(
            self.feed, run_name=str(run.name or run.id), origin_ms=run.start_time * 1000, view={}
        )
        self.box = w.VBox(
            [self.header, self.panel.widget, self.media, self.details],
            layout=w.Layout(padding="6px 10px", margin="4px 0"),
        )
        self.box.add_class("tracker-run")
        self.redraw(force=True)

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
        with self._draw_lock:
            self._upgrade(self._created + WIDGET_AFTER_S)  # a later cell: the widget goes up now
        self._on_screen_at = time.monotonic()
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
        if self.box is None:
            from tracker_jupyter.display.panel import DEFAULT_VIEW

            return dict(DEFAULT_VIEW)
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
            if self._placeholder:
                self._upgrade(time.monotonic())
            if self.box is None:
                return False
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
            self._draw_media_state(now, force)
            if force or now - self._config_at >= CONFIG_REFRESH_S:
                self._set(self.config, charts.kv_table(config_items(self.run), empty="no config"))
                found = artifact_items(self.run.meta)
                self._set(self.artifacts, charts.kv_table(found, empty="no artifacts logged or used"))
                self._set(self.system, charts.kv_table(system_items(self.run), empty="no sample yet"))
                self._set(self.output, render_output(output_tail(self.run)))
                self._system_reader.read(self.feed)  # system metrics: charted in their own section
                with self.feed.lock:
                    steps_of = step_metrics(self.run.meta.get("metrics") or (), self.feed.series)
                if self.panel.widget.steps_of != steps_of:
                    self.panel.widget.steps_of = steps_of
                    self.messages += 1
                self._config_at = now
            self.redraws += 1
            return True

    def _draw_media_state(self, now: float, force: bool) -> None:
        """Send the media state when it changed, at most every ``MEDIA_REFRESH_S`` (it reads files)."""
        media = self.feed.media
        if media is None:
            return
        version = media.version
        if version == self._media_version or not (force or now - self._media_at >= MEDIA_REFRESH_S):
            return
        from tracker_jupyter.display.media_panel import media_state

        self._media_version, self._media_at = version, now
        self.panel.widget.media = media_state(media, self.run.run_dir)
        self.messages += 1

    def _draw_media(self) -> None:
        """The newest video, as a player (images and the other media are drawn with the charts)."""
        found = latest_media(self.run, "video")
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
            layout = w.Layout(max_width="min(100%, 640px)")
            if kind == "video" and fmt in ("mp4", "webm", "ogg"):
                data = path.read_bytes()
                viewer = w.Video(
                    value=data, format=fmt, autoplay=False, loop=False, controls=True, layout=layout
                )
            else:  # gif videos
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

    def first_bundle(self) -> dict[str, Any]:
        """The header alone while the run is younger than ``WIDGET_AFTER_S``; the widget after that.

        A run that ends within a fraction of a second (a cell that runs many) never puts a widget on
        screen: its header is replaced by the snapshot. Replacing a widget whose views the browser is
        still building makes JupyterLab log errors ("Could not add child view to box").
        """
        if self._on_screen_at is None and time.monotonic() - self._created < WIDGET_AFTER_S:
            self._placeholder = True
            info = self.info()
            return {"text/plain": render_text(info, self.feed), "text/html": render_header(info, self.feed)}
        self._on_screen_at = self._on_screen_at or time.monotonic()
        return self.live_bundle()

    def _upgrade(self, now: float) -> None:
        """Put the widget where the header stood (the run lived past ``WIDGET_AFTER_S``)."""
        if self._placeholder and now - self._created >= WIDGET_AFTER_S:
            self._placeholder = False
            self._build()
            self._on_screen_at = now
            self.publisher.update(self.live_bundle(), self.display_id)

    def _settle(self) -> None:
        """Give the browser ``SETTLE_S`` to build a widget put on screen just now before replacing it."""
        if self._on_screen_at is not None and not self._placeholder:
            time.sleep(max(0.0, min(SETTLE_S, self._on_screen_at + SETTLE_S - time.monotonic())))

    def live_bundle(self) -> dict[str, Any]:
        self._build()
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
            if self.box is not None:
                self._set(self.header, render_header(self.info(), self.feed))
            self._unfollow()
            snapshot = self.final_bundle(self.view)
            self._settle()
            self.publisher.update(snapshot, self.display_id)
            if self.followers:
                line = finished_line(self.run, self.info())
                for display_id in self.followers:
                    self.publisher.update(line, display_id)
            for widget in self._all_widgets():
                with contextlib.suppress(Exception):
                    widget.close()

    def _all_widgets(self) -> list[Any]:
        found: list[Any] = []
        stack = [self.box] if self.box is not None else []
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
    from tracker_jupyter.display.compact import summary_numbers

    numbers = summary_numbers(run)
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
