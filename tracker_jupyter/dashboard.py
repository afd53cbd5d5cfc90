"""The live run widget and its static snapshot (the runs dashboard is ``runs_dashboard``).

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
import shlex
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from . import charts
from .charts import MinMaxSeries, escape, format_duration, format_number

__all__ = ["RunFeed", "attach", "show", "snapshot_bundle"]

PAGE_SIZE = 12  # charts shown at once; more metrics are paged
MAX_SERIES = 240  # metrics charted per run; the rest appear in the latest values only
SNAPSHOT_CHARTS = 24  # charts kept in a saved notebook (each is a few kB of SVG)
MEDIA_WIDGET_BYTES = 8 << 20  # the newest video or image is sent to the widget up to this size
MEDIA_SNAPSHOT_BYTES = 1 << 20  # and kept in the saved notebook (images only) up to this size
DRAIN_TIMEOUT_S = 2.0  # how long finish waits for the writer to hand over the last rows
MAX_FPS = 10.0  # widget_fps above this is taken as this: each redraw costs the kernel time and comm traffic
HEADER_REFRESH_S = 1.0  # the elapsed time ticks this often even when no rows arrive
CONFIG_REFRESH_S = 2.0
SYNC_REFRESH_S = 2.0  # the sync status counts unsent rows in the history file: not at every redraw
TEXT_REFRESH_S = 1.0  # the fallback display is re-sent whole, so it updates less often
MIME_WIDGET = "application/vnd.jupyter.widget-view+json"
_NUMERIC = (int, float, bool)
_STATE_COLORS = {"running": "#1f77b4", "finished": "#2ca02c", "failed": "#d62728", "crashed": "#ff7f0e"}


def _report(message: str) -> None:
    """Say that the display failed, on stderr: the run itself goes on unharmed."""
    print(f"tracker: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- data


class _Column(Sequence):
    """One key of a list of rows, read only where asked (timestamps are needed at bucket edges only)."""

    __slots__ = ("key", "rows")

    def __init__(self, rows: list[dict[str, Any]], key: str) -> None:
        self.rows = rows
        self.key = key

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [row.get(self.key, 0) for row in self.rows[index]]
        return self.rows[index].get(self.key, 0)


class RunFeed:
    """What the dashboard knows of a run's history: one bounded ``MinMaxSeries`` per numeric metric.

    ``ingest`` is the store writer's listener (it runs in the writer thread); everything else reads under
    ``lock``. Memory is bounded: at most ``max_series`` series of ``capacity`` buckets each.
    """

    def __init__(self, *, capacity: int = charts.DEFAULT_CAPACITY, max_series: int = MAX_SERIES) -> None:
        self.lock = threading.Lock()
        self.capacity = capacity
        self.max_series = max_series
        self.series: dict[str, MinMaxSeries] = {}
        self.uncharted = 0  # numeric metrics beyond max_series
        self._uncharted: set[str] = set()
        self._non_numeric: set[str] = set()
        self.rows = 0
        self.last_step = -1
        self.version = 0  # bumped by every ingest: the redraw loop compares it with what it drew
        self._rate: deque[tuple[float, int]] = deque(maxlen=64)
        self._skip_through: int | None = None  # deliveries of steps up to this one are read from the file
        self.origin: int | None = None  # the first step of the history, when rows may come out of order

    def ingest(self, rows: list[dict[str, Any]]) -> None:
        """Fold a batch of committed rows (dicts with ``_step``, ``_timestamp`` and metrics) into the series."""
        if not rows:
            return
        with self.lock:
            skip = self._skip_through
            if skip is not None and rows[0].get("_step", -1) <= skip:
                rows = [row for row in rows if row.get("_step", -1) > skip]  # already read from the file
                if not rows:
                    return
            self._ingest(rows)

    def preload(self, history: Iterable[dict[str, Any]], *, chunk: int = 4096) -> None:
        """Fold in rows logged before the dashboard subscribed (taking the lock a chunk at a time)."""
        batch: list[dict[str, Any]] = []
        for row in history:
            batch.append(row)
            if len(batch) >= chunk:
                with self.lock:
                    self._ingest(batch)
                batch = []
        if batch:
            with self.lock:
                self._ingest(batch)

    def _ingest(self, rows: list[dict[str, Any]]) -> None:
        n = len(rows)
        first_step = rows[0].get("_step", 0)
        last_step = rows[-1].get("_step", 0)
        steps: Sequence[int]
        if type(first_step) is int and type(last_step) is int and last_step - first_step == n - 1:
            steps = range(first_step, last_step + 1)  # steps only grow, so this means consecutive
        else:
            steps = [row.get("_step", 0) for row in rows]
        times = _Column(rows, "_timestamp")
        first = rows[0]
        complete = True
        for key in [k for k in first if k[:1] != "_"]:
            complete &= self._ingest_key(key, rows, steps, times)
        # Every row has _step and _timestamp, so rows as long as the first that all have the first's
        # keys have exactly its keys: then there is no need to look at the keys of every row.
        if not complete or len(set(map(len, rows))) != 1:
            for key in dict.fromkeys(chain.from_iterable(rows)):
                if key[:1] != "_" and key not in first:
                    self._ingest_key(key, rows, steps, times)
        self.rows += n
        if last_step > self.last_step:
            self.last_step = last_step
            self._rate.append((rows[-1].get("_timestamp", 0), last_step))  # rows read late do not count
        self.version += 1

    def _ingest_key(
        self, key: str, rows: list[dict[str, Any]], steps: Sequence[int], times: Sequence[float]
    ) -> bool:
        """Add one key of a batch to its series; returns whether every row had the key."""
        complete = True
        try:  # the common case: every row of the batch has the key, read at C speed
            values = list(map(itemgetter(key), rows))
        except KeyError:
            complete = False
            indexes = [i for i, row in enumerate(rows) if key in row]
            values = [rows[i][key] for i in indexes]
            steps = [steps[i] for i in indexes]
            times = [rows[i].get("_timestamp", 0) for i in indexes]
        series = self.series.get(key)
        if series is None:
            series = self._new_series(key, values)
        if series is not None:
            series.extend(steps, values, times)
        return complete

    def _new_series(self, key: str, values: list[Any]) -> MinMaxSeries | None:
        if key in self._uncharted:
            return None
        if key in self._non_numeric and type(values[-1]) not in _NUMERIC:
            return None
        if not any(type(v) in _NUMERIC for v in values):
            self._non_numeric.add(key)
            return None
        if len(self.series) >= self.max_series:
            self._uncharted.add(key)
            self.uncharted += 1
            return None
        self._non_numeric.discard(key)
        series = self.series[key] = MinMaxSeries(self.capacity)
        series.origin = self.origin
        return series

    def steps_per_second(self, now: float) -> float | None:
        """Steps per second over the last ten seconds of rows; None when idle for five seconds or unknown."""
        if len(self._rate) < 2:
            return None
        last_t, last_s = self._rate[-1]
        if now * 1000 - last_t > 5000:
            return None
        for t, s in self._rate:
            if last_t - t <= 10_000:
                if last_t > t:
                    return (last_s - s) / ((last_t - t) / 1000)
                return None
        return None


# ------------------------------------------------------------------------------------------ run info


def sync_status(run: Any) -> Mapping[str, Any] | None:
    """The run's sync progress from ``run._sync_status()`` or ``run._meta['sync']``, when either exists."""
    status = None
    probe = getattr(run, "_sync_status", None)
    if callable(probe):
        try:
            status = probe()
        except Exception:
            status = None
    if status is None:
        status = (getattr(run, "_meta", None) or {}).get("sync")
    return status if isinstance(status, Mapping) else None


def run_info(run: Any, now: float | None = None, sync: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The plain data the header shows, read from a ``Run``; ``sync`` is a ``sync_status`` read earlier.

    Everything but ``sync_status`` is cheap (no I/O); a live display passes ``sync`` to read it less often.
    """
    meta = getattr(run, "_meta", {}) or {}
    now = time.time() if now is None else now
    state = run.state
    start = meta.get("start_time")
    end = meta.get("end_time") if state != "running" else None
    return {
        "name": run.name,
        "id": run.id,
        "project": run.project,
        "group": run.group,
        "job_type": run.job_type,
        "tags": tuple(run.tags),
        "notes": run.notes,
        "state": state,
        "elapsed": ((end or now) - start) if start else None,
        "step": run.step - 1 if run.step > 0 else None,
        "mode": run.mode,
        "url": run.url,
        "dir": str(run._run_dir) if getattr(run, "_run_dir", None) is not None else None,
        "offline_reason": meta.get("offline_reason"),
        "sync": sync_status(run) if sync is None else sync,
    }


def _chip(text: str, color: str = "#555", background: str = "#eee") -> str:
    return (
        f'<span style="display:inline-block;padding:0 6px;margin-right:4px;border-radius:8px;'
        f'background:{background};color:{color};font-size:11px">{escape(text)}</span>'
    )


def _where(info: Mapping[str, Any]) -> str:
    mode = info.get("mode")
    if mode == "disabled":
        return "disabled: nothing is saved"
    if mode == "online" and info.get("url"):
        url = charts.scrub(str(info["url"]))
        link = (
            f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">open in MLflow</a>'
            if url.startswith(("http://", "https://"))
            else f"<code>{escape(url)}</code>"
        )
        parts = [f"online · {link}"]
        sync = info.get("sync") or {}
        for label, keys in (
            ("synced", ("synced", "records_synced")),
            ("pending", ("pending", "records_pending")),
        ):
            value = next((sync[k] for k in keys if sync.get(k) is not None), None)
            if value is not None:
                parts.append(
                    f"{label} {escape(format_number(value) if isinstance(value, (int, float)) else value)}"
                )
        error = sync.get("error") or sync.get("last_error")
        if error:
            text = charts.scrub(str(error))
            text = text if len(text) <= 300 else text[:299] + "…"
            parts.append(f'<span style="color:#d62728">last sync error: {escape(text)}</span>')
        return " · ".join(parts)
    where = info.get("dir")
    if not where:
        return escape(str(mode or ""))
    command = f"tracker sync {shlex.quote(where)}"
    reason = info.get("offline_reason")
    note = f" ({escape(reason)})" if reason else ""
    return (
        f"offline{note} · saved in <code>{escape(where)}</code> · upload later: "
        f'<code style="user-select:all">{escape(command)}</code>'
    )


def render_header(info: Mapping[str, Any], feed: RunFeed | None = None, now: float | None = None) -> str:
    """The header: name, id, project / group / job_type, tags, state, elapsed, step, steps/s, location."""
    now = time.time() if now is None else now
    state = str(info.get("state"))
    color = _STATE_COLORS.get(state, "#555")
    badge = (
        f'<span class="tj-state" style="padding:0 8px;border-radius:8px;background:{color};color:#fff;'
        f'font-size:12px">{escape(state)}</span>'
    )
    where = " / ".join(escape(x) for x in (info.get("project"), info.get("group"), info.get("job_type")) if x)
    tags = "".join(_chip(t) for t in info.get("tags") or ())
    stats = [f"elapsed {escape(format_duration(info.get('elapsed')))}"]
    step = info.get("step")
    stats.append(f"step {escape(format_number(step))}")
    if state == "running" and feed is not None:
        rate = feed.steps_per_second(now)
        stats.append(f"{escape(format_number(round(rate, 1)))} steps/s" if rate is not None else "— steps/s")
    notes = info.get("notes")
    notes_html = ""
    if notes:
        short = notes if len(notes) <= 200 else notes[:199] + "…"
        notes_html = f'<div style="color:#555;font-style:italic">{escape(short)}</div>'
    return (
        '<div class="tj-header" style="font:13px/1.5 sans-serif">'
        f'<span class="tj-name" style="font-weight:600;font-size:14px">{escape(info.get("name"))}</span> '
        f'<code style="color:#666">{escape(info.get("id"))}</code> {badge}'
        f"<div>{where} {tags}</div>"
        f'<div class="tj-stats">{" · ".join(stats)}</div>'
        f'<div style="color:#444;font-size:12px">{_where(info)}</div>{notes_html}</div>'
    )


def render_charts(feed: RunFeed, names: Sequence[str], *, axis: str = "step", as_image: bool = False) -> str:
    """Chart cards for ``names`` (call with ``feed.lock`` held); ``as_image`` for notebook outputs."""
    if not names:
        return '<div class="tj-charts" style="color:#888;font:12px sans-serif">no metrics logged yet</div>'
    cards = "".join(
        charts.chart_card(name, feed.series[name], axis=axis, as_image=as_image)
        for name in names
        if name in feed.series
    )
    return f'<div class="tj-charts" style="display:flex;flex-wrap:wrap">{cards}</div>'


def render_text(info: Mapping[str, Any], feed: RunFeed | None, *, limit: int = PAGE_SIZE) -> str:
    """The plain-text view: one line about the run, then last/min/max of the first metrics."""
    head = (
        f"run {info.get('name')} ({info.get('id')}) {info.get('state')} · project {info.get('project')}"
        f" · step {format_number(info.get('step'))} · {format_duration(info.get('elapsed'))}"
    )
    lines = [head]
    if feed is not None:
        with feed.lock:
            items = list(feed.series.items())
            for name, series in items[:limit]:
                lines.append(
                    f"  {name}: last {format_number(series.last)}  min {format_number(series.vmin)}"
                    f"  max {format_number(series.vmax)}"
                )
        if len(items) > limit:
            lines.append(f"  … and {len(items) - limit} more metrics")
    if info.get("mode") == "offline" and info.get("dir"):
        lines.append(f"  upload later: tracker sync {shlex.quote(str(info['dir']))}")
    elif info.get("url"):
        lines.append(f"  {charts.scrub(str(info['url']))}")
    return "\n".join(lines)


def _summary_items(run: Any) -> list[tuple[str, Any]]:
    # list() of a dict view runs in C without letting another thread in, so a log() call in the loop
    # cannot change the dict under us.
    return (
        list(run.summary.as_dict().items()) if hasattr(run.summary, "as_dict") else list(run.summary.items())
    )


def _config_items(run: Any) -> list[tuple[str, Any]]:
    return charts.flatten(dict(list(run.config.items())))


def latest_media(run: Any) -> tuple[dict[str, Any], Path | None] | None:
    """The run's newest logged video or image, and its file when the run has one on disk."""
    from . import media

    newest = media.latest_media(run)
    if newest is None:
        return None
    run_dir = getattr(run, "_run_dir", None)
    path = Path(run_dir) / newest["path"] if run_dir is not None and newest.get("path") else None
    return newest, (path if path is not None and path.is_file() else None)


def render_media_label(newest: Mapping[str, Any], path: Path | None, *, shown: bool) -> str:
    """One line naming the newest media: kind, key, step, caption, and where the file is when not shown."""
    parts = [f"<b>latest {escape(newest.get('_type', 'media'))}</b>", escape(newest.get("key", ""))]
    parts.append(f"step {escape(newest.get('step'))}")
    if newest.get("caption"):
        parts.append(escape(newest["caption"]))
    if not shown:
        parts.append(escape(str(path)) if path is not None else "not stored (disabled run)")
    return f'<div class="tj-media-label" style="font:12px sans-serif;color:#444">{" · ".join(parts)}</div>'


def _render_media_snapshot(run: Any) -> str:
    found = latest_media(run)
    if found is None:
        return ""
    newest, path = found
    image = (
        newest.get("_type") == "image"
        and path is not None
        and path.stat().st_size <= MEDIA_SNAPSHOT_BYTES
        and newest.get("format") in ("png", "jpeg", "jpg", "gif", "webp")
    )
    label = render_media_label(newest, path, shown=bool(image))
    if not image or path is None:
        return label
    import base64

    mime = "jpeg" if newest["format"] == "jpg" else newest["format"]
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'{label}<img class="tj-media" style="max-width:360px" src="data:image/{mime};base64,{data}">'


def render_snapshot(run: Any, feed: RunFeed, info: Mapping[str, Any] | None = None) -> str:
    """The static HTML left in the notebook at finish: header, charts, summary, config.

    The charts are SVG inlined as data-URI images, since JupyterLab strips ``<svg>`` elements from the
    outputs of untrusted notebooks (any notebook it did not save itself) but keeps images.
    """
    info = run_info(run) if info is None else info
    with feed.lock:
        names = list(feed.series)
        shown = names[:SNAPSHOT_CHARTS]
        first = render_charts(feed, shown[:PAGE_SIZE], as_image=True)
        rest = render_charts(feed, shown[PAGE_SIZE:], as_image=True) if len(shown) > PAGE_SIZE else ""
    more = ""
    if rest:
        more = f"<details><summary>{len(shown) - PAGE_SIZE} more charts</summary>{rest}</details>"
    if len(names) > len(shown) or feed.uncharted:
        left = len(names) - len(shown) + feed.uncharted
        more += f'<div style="color:#888;font:11px sans-serif">{left} more metrics: see the summary</div>'
    summary = _summary_items(run)
    config = _config_items(run)
    return (
        '<div class="tracker-run tracker-run-snapshot" style="border:1px solid #ddd;border-radius:6px;'
        'padding:8px 10px;font-family:sans-serif;background:#fff;color:#222">'
        f"{render_header(info)}{first}{more}{_render_media_snapshot(run)}"
        f"<details open><summary>Summary ({len(summary)})</summary>{charts.kv_table(summary)}</details>"
        f"<details><summary>Config ({len(config)})</summary>{charts.kv_table(config, empty='no config')}"
        "</details></div>"
    )


def snapshot_bundle(run: Any) -> dict[str, str]:
    """``text/plain`` and ``text/html`` of the run as it is now (the rich repr of a ``Run``)."""
    feed = _feed_of(run)
    info = run_info(run)
    return {"text/plain": render_text(info, feed), "text/html": render_snapshot(run, feed, info)}


def _feed_of(run: Any) -> RunFeed:
    dashboard = getattr(run, "_dashboard", None)
    if dashboard is not None:
        return dashboard.feed
    feed = RunFeed()
    history = _history_path(run)
    if history is not None:
        from .store import iter_history

        feed.preload(iter_history(history))
    return feed


def _history_extent(path: Path) -> tuple[int, int | None, int | None]:
    """The size of a history file, and the steps of its first and last complete rows within that size."""
    from . import store

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0, None, None
    first = next(store.iter_history(path, end=size), {}).get("_step")
    last = (store.last_row(path, end=size) or {}).get("_step")
    return size, first, last


def _rows_before(path: Path, size: int) -> Iterable[dict[str, Any]]:
    """The complete rows in the first ``size`` bytes of a history file."""
    from .store import iter_history

    return iter_history(path, end=size)


def _history_path(run: Any) -> Path | None:
    run_dir = getattr(run, "_run_dir", None)
    if run_dir is None or getattr(run, "disabled", False):
        return None
    from .store import HISTORY

    return Path(run_dir) / HISTORY


# ------------------------------------------------------------------------------------------ displays


class Publisher:
    """Where displays go: IPython's ``display`` / ``update_display``. Tests pass a recorder instead."""

    def show(self, bundle: dict[str, Any], display_id: str | None) -> None:
        from . import _env

        if _env.get_shell() is None:  # a plain script: IPython's display would print the dict itself
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

    def __init__(self, run: Any, *, publisher: Publisher, fps: float, start_timer: bool = True) -> None:
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
        if start_timer and not getattr(run, "_finished", False):
            self._thread = threading.Thread(target=self._loop, name=f"tracker-widget-{run.id}", daemon=True)
            self._thread.start()

    def _follow(self) -> None:
        """Subscribe to the writer and read what was written before, with no row missed or doubled.

        The file is read up to its size at subscription, in a thread of its own (a long history must not
        hold up ``init()``); the writer delivers everything written after that. A batch written before
        but delivered after is in both: its steps, up to the last one read, are skipped on delivery.
        """
        sink = self.run._sink
        history = _history_path(self.run)
        if history is None or self.run.step == 0:
            sink.subscribe(self.feed.ingest)
            return
        with self.feed.lock:
            sink.subscribe(self.feed.ingest)
            size, first, last = _history_extent(history)
            self.feed.origin = first
            self.feed._skip_through = last
        if size:
            self._preload = threading.Thread(
                target=self.feed.preload, args=(_rows_before(history, size),), daemon=True,
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
        if getattr(run, "disabled", False) or run.step == 0:
            return
        if self._preload is not None:
            self._preload.join(timeout=DRAIN_TIMEOUT_S * 5)
        with contextlib.suppress(Exception):
            run._sink.flush()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self.feed.last_step < run.step - 1 and time.monotonic() < deadline:
            time.sleep(0.005)

    def _on_finish(self, run: Any) -> None:
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
            with contextlib.suppress(Exception):
                run._sink.unsubscribe(self.feed.ingest)

    def _detach(self) -> None:
        """Stop following the run (a dashboard that failed to build must not linger)."""
        self._stop.set()
        self.finished = True
        with contextlib.suppress(Exception):
            self.run._sink.unsubscribe(self.feed.ingest)

    def teardown(self) -> None:
        self.publisher.update(snapshot_bundle(self.run), self.display_id)


class WidgetDashboard(_Dashboard):
    """The ipywidgets dashboard of a live run."""

    def __init__(self, run: Any, *, publisher: Publisher, fps: float, start_timer: bool = True) -> None:
        import ipywidgets as w

        self.axis = "step"
        self.page = 0
        self.messages = 0  # trait updates sent (each one comm message)
        self._header_at = 0.0
        self._config_at = 0.0
        self._drawn_version = -1
        self.header = w.HTML()
        self.charts = w.HTML()
        self.page_label = w.Label()
        self.prev_button = w.Button(description="◀", tooltip="previous charts", layout=w.Layout(width="36px"))
        self.next_button = w.Button(description="▶", tooltip="next charts", layout=w.Layout(width="36px"))
        self.pager = w.HBox(
            [self.prev_button, self.page_label, self.next_button], layout=w.Layout(display="none")
        )
        self.axis_toggle = w.ToggleButtons(
            options=[("step", "step"), ("wall time", "time")],
            value="step",
            tooltips=["x: step", "x: wall time"],
        )
        self.axis_toggle.style.button_width = "80px"
        self.latest = w.HTML()
        self.config = w.HTML()
        self.details = w.Accordion(children=[self.latest, self.config], titles=("Latest values", "Config"))
        self.details.selected_index = None
        # the newest video or image logged (gym recordings, run.log({"x": Image(...)})), hidden until one is
        self.media_label = w.HTML()
        self.media = w.VBox([self.media_label], layout=w.Layout(display="none"))
        self._media_shown: tuple[Any, ...] | None = None
        self.box = w.VBox(
            [self.header, self.charts, w.HBox([self.axis_toggle, self.pager]), self.media, self.details],
            layout=w.Layout(border="1px solid #ddd", padding="6px 10px", margin="4px 0"),
        )
        self.box.add_class("tracker-run")
        self.prev_button.on_click(lambda _: self._turn(-1))
        self.next_button.on_click(lambda _: self._turn(+1))
        self.axis_toggle.observe(self._on_axis, names="value")
        super().__init__(run, publisher=publisher, fps=fps, start_timer=start_timer)
        try:
            self.redraw(force=True)
        except Exception:
            self._detach()
            raise

    # ----- interaction (runs in the kernel's main thread, when it handles the frontend's messages)
    def _turn(self, delta: int) -> None:
        self.page += delta
        self.redraw(force=True)

    def _on_axis(self, change: Mapping[str, Any]) -> None:
        self.axis = str(change["new"])
        self.redraw(force=True)

    # ----- drawing
    def _set(self, widget: Any, value: Any) -> None:
        if widget.value != value:  # an unchanged value would still cost a message
            widget.value = value
            self.messages += 1

    def redraw(self, *, force: bool = False) -> bool:
        """Send what changed since the last redraw; returns whether anything was drawn."""
        with self._draw_lock:
            now = time.time()
            changed = self.feed.version != self._drawn_version
            if not (force or changed or now - self._header_at >= HEADER_REFRESH_S):
                return False
            self._set(self.header, render_header(self.info(now), self.feed, now))
            self._header_at = now
            if force or changed:
                with self.feed.lock:
                    names = list(self.feed.series)
                    pages = max(1, math.ceil(len(names) / PAGE_SIZE))
                    self.page = min(max(self.page, 0), pages - 1)
                    shown = names[self.page * PAGE_SIZE : (self.page + 1) * PAGE_SIZE]
                    charts_html = render_charts(self.feed, shown, axis=self.axis)
                    self._drawn_version = self.feed.version
                self._set(self.charts, charts_html)
                self._update_pager(len(names), pages)
                self._set(self.latest, charts.kv_table(_summary_items(self.run)))
                self._draw_media()
            if force or now - self._config_at >= CONFIG_REFRESH_S:
                self._set(self.config, charts.kv_table(_config_items(self.run), empty="no config"))
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

    def _update_pager(self, count: int, pages: int) -> None:
        if pages <= 1:
            if self.pager.layout.display != "none":
                self.pager.layout.display = "none"
            return
        first = self.page * PAGE_SIZE + 1
        label = f"charts {first}–{min(count, first + PAGE_SIZE - 1)} of {count}"
        if self.feed.uncharted:
            label += f" (+{self.feed.uncharted} not charted)"
        self._set(self.page_label, label)
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        if self.pager.layout.display != "flex":
            self.pager.layout.display = "flex"

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
            super().teardown()
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


class TextDashboard(_Dashboard):
    """Where widgets cannot render: a compact HTML + text display, re-sent in place at most once a second.

    In a terminal (``live=False``) a re-sent display would print again, so it shows once at attach and
    once, final, at finish.
    """

    refresh_s = TEXT_REFRESH_S

    def __init__(
        self, run: Any, *, publisher: Publisher, fps: float, live: bool, start_timer: bool = True
    ) -> None:
        self.live = live
        self._drawn_version = -1
        super().__init__(run, publisher=publisher, fps=fps, start_timer=start_timer and live)

    def live_bundle(self) -> dict[str, Any]:
        info = self.info()
        with self.feed.lock:
            names = list(self.feed.series)[:4]
            charts_html = render_charts(self.feed, names, as_image=True) if names else ""
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


def _fps(run: Any) -> float:
    from .settings import Settings, resolve

    try:
        value = float(resolve("widget_fps", None, getattr(run, "settings", None) or Settings()))
    except (TypeError, ValueError):
        value = 4.0
    return min(max(value, 0.1), MAX_FPS)


def _widget_enabled(run: Any) -> bool:
    from .settings import Settings, resolve

    try:
        return bool(resolve("show_widget", None, getattr(run, "settings", None) or Settings()))
    except Exception:
        return True


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _dashboard_for(run: Any, shell: Any, publisher: Publisher) -> _Dashboard:
    dashboard = getattr(run, "_dashboard", None)
    if dashboard is None:
        in_kernel = getattr(shell, "kernel", None) is not None
        if in_kernel and _widgets_available():
            try:
                dashboard = WidgetDashboard(run, publisher=publisher, fps=_fps(run))
            except Exception as exc:
                _report(f"the live widget could not be built ({exc!r}); showing a text view instead")
        if dashboard is None:
            dashboard = TextDashboard(run, publisher=publisher, fps=_fps(run), live=in_kernel)
        run._dashboard = dashboard
        if in_kernel:
            run._quiet_display = True  # the display says what init()'s and finish()'s lines would
    return dashboard


def attach(run: Any, shell: Any, *, publisher: Publisher | None = None) -> None:
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


def show(run: Any, shell: Any = None, *, publisher: Publisher | None = None) -> None:
    """Show ``run`` below the current cell: its live widget while it runs, its snapshot once finished.

    This is ``run.display()``; unlike ``attach`` it ignores the ``show_widget`` setting, since asking to
    see the run is explicit.
    """
    from . import _env

    shell = _env.get_shell() if shell is None else shell
    publisher = publisher or Publisher()
    try:
        if getattr(run, "_finished", False) and getattr(run, "_dashboard", None) is None:
            publisher.show(snapshot_bundle(run), None)
            return
        _dashboard_for(run, shell, publisher).show(shell)
    except Exception as exc:
        _report(f"could not display run {getattr(run, 'id', '?')}: {exc!r}")
