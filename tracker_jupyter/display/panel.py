"""The live charts of the run widget: an ``anywidget`` model whose JavaScript (``static/charts.js``) draws
interactive SVG charts in the browser, and the pure bookkeeping that decides what to send it.

Why a renderer of our own rather than a charting library's widget: plotly's ``FigureWidget`` (also built on
anywidget) sends a 6.9 MB bundle to the browser with every widget, takes about 1.4 s to import in the
kernel and about 250 ms of browser CPU a redraw of 20 charts; this module's code is about 75 kB, imports
in a fraction of that and redraws in about 20 ms. The measurement is ``bench/widget_renderers.py``; its
table is in the README.

The code reaches the browser over the kernel's own comm channel together with the widget (the anywidget
way): no CDN and no extension for the user to install, so it works offline and in VS Code and Colab.

What is sent stays bounded whatever the number of steps: each metric is a ``MinMaxSeries`` of at most a
few hundred buckets. The ``data`` trait holds every series in full; it is sent when the widget is built,
then at most every ``FULL_REFRESH_S`` seconds, and when a view asks for it (a reloaded page that sees a gap
in the deltas' sequence numbers; its request is read when the kernel is idle, so the periodic state covers
a page reloaded while a cell trains). Between those, each redraw sends one ``delta`` message with the buckets changed since the
last one. When a metric's buckets merge pairwise (every time its steps double), the browser merges its own
copy the same way (``h``: how many times) and gets only the buckets that changed. The browser's view settings (x axis, log
scale, smoothing, filter, closed sections) come back in the ``view`` trait, which the static snapshot at
finish follows.
"""

from __future__ import annotations

import functools
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter.display.figure import DEFAULT_CLOSED

if TYPE_CHECKING:
    from tracker_jupyter.display.charts import MinMaxSeries
    from tracker_jupyter.display.view import RunFeed

STATIC = Path(__file__).with_name("static")
FULL_REFRESH_S = 30.0
DEFAULT_VIEW: dict[str, Any] = {
    "x": "step", "log": False, "smoothing": 0.0, "filter": "", "closed": list(DEFAULT_CLOSED), "pair": False,
}  # fmt: skip
X_AXES = ("step", "time", "relative")


def series_wire(series: MinMaxSeries, start: int = 0) -> dict[str, Any]:
    """One metric as the browser reads it: its bucket generation, buckets from ``start`` on, and stats."""
    # wall times as whole ms: a third fewer bytes, and the readout shows seconds
    buckets = [[b[0], b[1], b[2], int(b[3]), int(b[4]), *b[5:]] for b in series.buckets(start)]
    return {
        "g": series.generation,
        "b": buckets,
        "last": series.last,
        "min": series.vmin,
        "max": series.vmax,
        "count": series.count,
        "skipped": series.skipped,
    }


class ChartUpdates:
    """What to send the browser next, from a ``RunFeed``: a full state or the buckets changed since the
    last message. Pure bookkeeping (no widget), so it is tested without a frontend."""

    def __init__(self, feed: RunFeed, *, origin_ms: float | None = None) -> None:
        self.feed = feed
        self.origin_ms = origin_ms
        self.seq = 0
        self._generation: dict[str, int] = {}  # the bucket generation the browser holds, per metric

    def full(self) -> dict[str, Any]:
        """Every series in full (and what was pending is now sent)."""
        with self.feed.lock:
            self.seq += 1
            out = {}
            for name, series in self.feed.series.items():
                series.take_changes()
                self._generation[name] = series.generation
                out[name] = series_wire(series)
        return {"seq": self.seq, "origin": self.origin_ms, "series": out}

    def delta(self) -> dict[str, Any] | None:
        """The buckets changed since the last ``full`` or ``delta``; None when nothing changed."""
        with self.feed.lock:
            out = {}
            for name, series in self.feed.series.items():
                start = series.take_changes()
                held = self._generation.get(name)
                if start is None and held == series.generation:
                    continue
                wire = series_wire(series, 0 if held is None else (start or 0))
                if held is None:  # a metric new to the browser: all of it
                    pass
                elif start is None:  # merged, nothing else changed: the browser merges its own copy
                    wire["b"] = []
                    wire["h"] = series.generation - held
                elif held != series.generation:
                    wire["h"] = series.generation - held  # merge this often, then take the buckets sent
                self._generation[name] = series.generation
                out[name] = wire
            if not out:
                return None
            self.seq += 1
        return {"type": "delta", "seq": self.seq, "origin": self.origin_ms, "series": out}


def clean_view(value: Any) -> dict[str, Any]:
    """The browser's view settings, checked: unknown keys dropped, bad values replaced by the defaults."""
    view = {**DEFAULT_VIEW, "closed": list(DEFAULT_VIEW["closed"])}
    if not isinstance(value, dict):
        return view
    x = value.get("x")
    if x in X_AXES or (isinstance(x, str) and x.startswith("metric:") and 7 < len(x) <= 207):
        view["x"] = x  # metric:<name>: every chart against that metric (the snapshot checks it exists)
    view["log"] = bool(value.get("log", False))
    view["pair"] = bool(value.get("pair", False))
    try:
        view["smoothing"] = min(0.99, max(0.0, float(value.get("smoothing", 0.0))))
    except (TypeError, ValueError):
        pass
    if isinstance(value.get("filter"), str):
        view["filter"] = value["filter"][:200]
    closed = value.get("closed")
    if isinstance(closed, list):
        view["closed"] = [str(name) for name in closed[:100]]
    return view


@functools.cache
def panel_class() -> type:
    """The widget class, built on first use (anywidget and ipywidgets are imported here, not at import)."""
    import anywidget
    import traitlets

    class ChartPanel(anywidget.AnyWidget):  # type: ignore[misc]
        _esm = STATIC / "charts.js"
        _css = STATIC / "charts.css"
        uid = traitlets.Unicode().tag(sync=True)
        run_name = traitlets.Unicode().tag(sync=True)
        color = traitlets.Unicode("#1f77b4").tag(sync=True)
        data = traitlets.Dict().tag(sync=True)
        view = traitlets.Dict(dict(DEFAULT_VIEW)).tag(sync=True)
        kind = traitlets.Unicode("run").tag(sync=True)
        # metric -> its step metric (define_metric): on the step axis it is drawn against it
        steps_of = traitlets.Dict().tag(sync=True)
        # the run's media (``media_panel.media_state``), drawn below the charts
        media = traitlets.Dict().tag(sync=True)

    return ChartPanel


@functools.cache
def runs_panel_class() -> type:
    """The runs dashboard's widget: the same charts (a line per selected run) under a runs table.

    The kernel holds the rows and the rules (``runs.filter_rows`` / ``sort_rows``): the browser sends
    ``query`` (filter, sort, descending) and ``selected`` (run ids, in the order ticked) and gets the
    rows shown, formatted, in ``rows``; ``runs`` names, colours and start times the selected runs.
    """
    import traitlets

    class RunsPanel(panel_class()):  # type: ignore[misc]
        kind = traitlets.Unicode("runs").tag(sync=True)
        columns: Any = traitlets.List().tag(sync=True)
        rows: Any = traitlets.List().tag(sync=True)
        total = traitlets.Int(0).tag(sync=True)
        query = traitlets.Dict({"filter": "", "sort": "start", "descending": True}).tag(sync=True)
        selected: Any = traitlets.List().tag(sync=True)
        runs: Any = traitlets.List().tag(sync=True)

    return RunsPanel


class LivePanel:
    """The charts of one run's widget: sends ``ChartUpdates`` to a ``ChartPanel`` (call ``push`` from the
    dashboard's redraw, under its lock)."""

    def __init__(
        self, feed: RunFeed, *, run_name: str, origin_ms: float | None, view: dict[str, Any]
    ) -> None:
        self.updates = ChartUpdates(feed, origin_ms=origin_ms)
        self.widget = panel_class()(uid=uuid.uuid4().hex, run_name=run_name, view=clean_view(view))
        self.messages = 0  # comm messages sent
        self._full_at = -FULL_REFRESH_S
        self._full_version = -1  # the feed's version at the last full state
        self.resync_requested = False
        self.widget.on_msg(self._on_msg)
        self.push(force=True)

    def _on_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        """A view that missed deltas (a reloaded page) asks for the full state: sent at the next push."""
        if isinstance(content, dict) and content.get("type") == "resync":
            self.resync_requested = True

    @property
    def view(self) -> dict[str, Any]:
        return clean_view(self.widget.view)

    def push(self, *, force: bool = False) -> bool:
        """Send what changed (a full state every ``FULL_REFRESH_S``); returns whether anything was sent."""
        now = time.monotonic()
        version = self.updates.feed.version
        due = now - self._full_at >= FULL_REFRESH_S and version != self._full_version
        if force or due or self.resync_requested:
            self.resync_requested = False
            data = self.updates.full()
            self._full_at = now
            self._full_version = version
            self.widget.data = data
            self.messages += 1
            return True
        delta = self.updates.delta()
        if delta is None:
            return False
        self.widget.send(delta)
        self.messages += 1
        return True

    def close(self) -> None:
        self.widget.close()
