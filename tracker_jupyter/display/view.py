"""What the run dashboards show, as data and markup: no widgets, no display, no I/O beyond reading the store.

``RunFeed`` folds a run's rows into bounded min/max series; ``run_info`` gathers the header's facts; the
``render_*`` functions and ``snapshot_bundle`` turn them into escaped HTML and text (charts are inline SVG
from ``charts``). ``widget`` puts them on screen, live; a finished run's snapshot is built here alone.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter.display import charts
from tracker_jupyter.display.charts import MinMaxSeries, escape, format_duration, format_number

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run
    from tracker_jupyter.display.media_panel import MediaFeed

PAGE_SIZE = 12  # metrics in the text view
IDLE_AFTER_S = 1.5  # no row for this long (or three row intervals) and the steps/s reading is dropped
OUTPUT_LINES = 20  # lines of the run's output.log shown
MAX_SERIES = 240  # metrics charted per run; the rest appear in the latest values only
SNAPSHOT_CHARTS = 24  # charts kept in a saved notebook (each is a few kB of SVG)
MEDIA_SNAPSHOT_BYTES = 1 << 20  # the newest image is kept in the saved notebook up to this size
NUMERIC = (int, float, bool)
# state badges: white text on these is >= 4.5:1 (WCAG AA), and the badge is its own background
STATE_COLORS = {"running": "#1565c0", "finished": "#2e7d32", "failed": "#c62828", "crashed": "#a84300"}
MUTED = "opacity:0.78"  # of the page's own text colour: readable in light and dark themes


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
        self.media: MediaFeed | None = None  # where values that are not numbers go (the widget's media)

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
        elif self.media is not None:
            self.media.add(key, values, steps)
        return complete

    def _new_series(self, key: str, values: list[Any]) -> MinMaxSeries | None:
        if key in self._uncharted:
            return None
        if key in self._non_numeric and type(values[-1]) not in NUMERIC:
            return None
        if not any(type(v) in NUMERIC for v in values):
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
        """Steps per second over the last ten seconds of rows; None when unknown, or when no row came for
        three times the recent time between rows (at least ``IDLE_AFTER_S``): logging has stopped."""
        if len(self._rate) < 2:
            return None
        last_t, last_s = self._rate[-1]
        for i, (t, s) in enumerate(self._rate):
            if last_t - t <= 10_000:
                if last_t <= t:
                    return None
                gap_ms = (last_t - t) / (len(self._rate) - 1 - i)  # between the batches of rows seen
                if now * 1000 - last_t > max(IDLE_AFTER_S * 1000, 3 * gap_ms):
                    return None
                return (last_s - s) / ((last_t - t) / 1000)
        return None


# ------------------------------------------------------------------------------------------ run info


def sync_status(run: Run) -> Mapping[str, Any] | None:
    """The run's sync progress from the live syncer (``run.parts.sync_status``) or, after finish, from
    ``run.meta['sync']``, when either exists."""
    status = None
    probe = run.parts.sync_status
    if callable(probe):
        try:
            status = probe()
        except Exception:
            status = None
    if status is None:
        status = run.meta.get("sync")
    return status if isinstance(status, Mapping) else None


def run_info(run: Run, now: float | None = None, sync: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The plain data the header shows, read from a ``Run``; ``sync`` is a ``sync_status`` read earlier.

    Everything but ``sync_status`` is cheap (no I/O); a live display passes ``sync`` to read it less often.
    """
    meta = run.meta
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
        "dir": str(run.run_dir) if run.run_dir is not None else None,
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
            parts.append(f'<b class="tj-error">⚠ last sync error:</b> {escape(text)}')
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
    color = STATE_COLORS.get(state, "#555")
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
        notes_html = f'<div style="{MUTED};font-style:italic">{escape(short)}</div>'
    return (
        '<div class="tj-header" style="font:13px/1.5 sans-serif">'
        f'<span class="tj-name" style="font-weight:600;font-size:14px">{escape(info.get("name"))}</span> '
        f'<code style="{MUTED};background:transparent">{escape(info.get("id"))}</code> {badge}'
        f"<div>{where} {tags}</div>"
        f'<div class="tj-stats">{" · ".join(stats)}</div>'
        f'<div class="tj-where" style="{MUTED};font-size:12px">{_where(info)}</div>{notes_html}</div>'
    )


def render_charts(feed: RunFeed, names: Sequence[str], *, axis: str = "step", origin_ms: float = 0.0) -> str:
    """Static chart tiles for ``names`` (call with ``feed.lock`` held): the text display's charts."""
    from tracker_jupyter.display import figure

    if not names:
        return f'<div class="tj-charts" style="{MUTED};font:12px sans-serif">no metrics logged yet</div>'
    tiles = "".join(
        figure.chart_tile(name, feed.series[name], axis=axis, origin_ms=origin_ms)
        for name in names
        if name in feed.series
    )
    return f'<div class="tj-charts" style="display:flex;flex-wrap:wrap">{tiles}</div>'


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


def summary_items(run: Run) -> list[tuple[str, Any]]:
    """The summary's keys and values; a logged media or data value shows as what it is (``video
    episode_11.mp4 · 16×16``), never as its stored reference."""
    # list() of a dict view runs in C without letting another thread in, so a log() call in the loop
    # cannot change the dict under us.
    items = (
        list(run.summary.as_dict().items()) if hasattr(run.summary, "as_dict") else list(run.summary.items())
    )
    return [(key, media_label(value) if _is_media(value) else value) for key, value in items]


def _is_media(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("_type"), str) and "path" in value


def media_label(value: Mapping[str, Any]) -> str:
    """A short description of a media reference: kind, file name, size, caption."""
    parts = [str(value["_type"]).replace("-file", ""), Path(str(value.get("path", ""))).name]
    if value.get("width") and value.get("height"):
        parts.append(f"{value['width']}×{value['height']}")
    if value.get("caption"):
        parts.append(f"“{value['caption']}”")
    return " · ".join(p for p in parts if p)


def config_items(run: Run) -> list[tuple[str, Any]]:
    return charts.flatten(dict(list(run.config.items())))


def system_items(run: Run) -> list[tuple[str, Any]]:
    """The newest system metrics sample, by MLflow's names (``cpu_utilization_percentage``...)."""
    if run.run_dir is None:
        return []
    from tracker_jupyter.store import SYSTEM, last_system_sample

    sample = last_system_sample(run.run_dir / SYSTEM) or {}
    return [(key.removeprefix("system/"), round(value, 1) if isinstance(value, float) else value)
            for key, value in sample.items() if key.startswith("system/")]  # fmt: skip


def output_tail(run: Run, lines: int = OUTPUT_LINES) -> list[str]:
    """The last lines the run printed (``files/output.log``)."""
    if run.run_dir is None:
        return []
    from tracker_jupyter.store import OUTPUT_LOG, tail_lines

    return tail_lines(run.run_dir / OUTPUT_LOG, lines)


def render_output(lines: Sequence[str]) -> str:
    if not lines:
        return f'<div style="{MUTED};font:12px sans-serif">nothing printed yet</div>'
    text = escape("\n".join(lines))
    return f'<pre class="tj-output" style="font:11px monospace;max-height:240px;overflow:auto;margin:0">{text}</pre>'


def artifact_items(meta: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The artifact versions a run logged and used, as rows ``(name:vN, "logged · type")``."""
    items: list[tuple[str, Any]] = []
    for field, verb in (("logged_artifacts", "logged"), ("used_artifacts", "used")):
        for item in meta.get(field) or []:
            where = "" if item.get("project") == meta.get("project") else f"{item.get('project')}/"
            items.append(
                (f"{where}{item.get('name')}:v{item.get('version')}", f"{verb} · {item.get('type')}")
            )
    return items


def artifacts_line(meta: Mapping[str, Any]) -> str:
    """The same, in a line for a table cell: ``↑ model:v1 · ↓ corpus:v0``."""
    up = [f"{i.get('name')}:v{i.get('version')}" for i in meta.get("logged_artifacts") or []]
    down = [f"{i.get('name')}:v{i.get('version')}" for i in meta.get("used_artifacts") or []]
    return " · ".join(part for part in (("↑ " + ", ".join(up)) if up else "",
                                         ("↓ " + ", ".join(down)) if down else "") if part)  # fmt: skip


def latest_media(run: Run, kind: str | None = None) -> tuple[dict[str, Any], Path | None] | None:
    """The run's newest logged video or image (``kind``: one of them), and its file when it is on disk."""
    from tracker_jupyter import media

    newest = media.latest_media(run, kind)
    if newest is None:
        return None
    run_dir = run.run_dir
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
    return f'<div class="tj-media-label" style="font:12px sans-serif;{MUTED}">{" · ".join(parts)}</div>'


def _render_media_snapshot(run: Run, feed: RunFeed) -> str:
    """The media section (``media_panel``) and the newest video's line; without a media feed, the
    newest image or video alone."""
    if feed.media is not None:
        from tracker_jupyter.display.media_panel import media_snapshot

        video = latest_media(run, "video")
        label = render_media_label(video[0], video[1], shown=False) if video is not None else ""
        return media_snapshot(feed.media, run.run_dir) + label
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


def render_snapshot(
    run: Run, feed: RunFeed, info: Mapping[str, Any] | None = None, view: Mapping[str, Any] | None = None
) -> str:
    """The static HTML left in the notebook at finish: header, charts by section, media, summary, config.

    The charts are drawn as ``view`` says (the live charts' x axis, log scale, smoothing and closed
    sections; see ``figure``). Nothing sets a background or a text colour: the page's theme shows through.
    """
    from tracker_jupyter.display import figure
    from tracker_jupyter.display.scales import step_metrics

    info = run_info(run) if info is None else info
    view = view or {}
    with feed.lock:
        names = list(feed.series)
        shown = names[:SNAPSHOT_CHARTS]
        charts_html = (
            figure.chart_sections(
                feed.series,
                shown,
                view=view,
                origin_ms=run.start_time * 1000,
                steps_of=step_metrics(run.meta.get("metrics") or (), feed.series),
            )
            if shown
            else f'<div style="{MUTED}">no metrics logged</div>'
        )
    more = ""
    if len(names) > len(shown) or feed.uncharted:
        left = len(names) - len(shown) + feed.uncharted
        more = f'<div style="{MUTED};font-size:11px">{left} more metrics: see the summary</div>'
    summary = summary_items(run)
    config = config_items(run)
    return (
        '<div class="tracker-run tracker-run-snapshot" style="border:1px solid rgba(128,128,128,0.4);'
        'border-radius:6px;padding:8px 10px;font-family:sans-serif">'
        f"{render_header(info)}{charts_html}{more}{_render_media_snapshot(run, feed)}"
        f"<details open><summary>Summary ({len(summary)})</summary>{charts.kv_table(summary)}</details>"
        f"<details><summary>Config ({len(config)})</summary>{charts.kv_table(config, empty='no config')}"
        f"</details>{_render_artifacts(run)}{_render_system_and_output(run)}</div>"
    )


def _render_system_and_output(run: Run) -> str:
    parts = []
    system = system_items(run)
    if system:
        parts.append(f"<details><summary>System ({len(system)})</summary>{charts.kv_table(system)}</details>")
    lines = output_tail(run)
    if lines:
        parts.append(
            f"<details><summary>Output (last {len(lines)} lines)</summary>{render_output(lines)}</details>"
        )
    return "".join(parts)


def _render_artifacts(run: Run) -> str:
    items = artifact_items(run.meta)
    if not items:
        return ""
    return f"<details open><summary>Artifacts ({len(items)})</summary>{charts.kv_table(items)}</details>"


def snapshot_bundle(run: Run, view: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``text/plain`` and ``text/html`` of the run as it is now (the rich repr of a ``Run``); the charts
    follow ``view`` (default: the settings chosen in the run's live charts, if it has them)."""
    feed = _feed_of(run)
    info = run_info(run)
    if view is None:
        view = getattr(run.parts.dashboard, "view", None)
    html = render_snapshot(run, feed, info, view)
    return {"text/plain": render_text(info, feed), "text/html": html}


def _feed_of(run: Run) -> RunFeed:
    dashboard = run.parts.dashboard
    if dashboard is not None:
        return dashboard.feed
    from tracker_jupyter.display.media_panel import MediaFeed
    from tracker_jupyter.display.system_series import SystemReader
    from tracker_jupyter.store import SYSTEM, iter_history

    feed = RunFeed()
    feed.media = MediaFeed()
    history = history_path(run)
    if history is not None:
        feed.preload(iter_history(history))
        SystemReader(history.parent / SYSTEM).read(feed)
    return feed


def history_extent(path: Path) -> tuple[int, int | None, int | None]:
    """The size of a history file, and the steps of its first and last complete rows within that size."""
    from tracker_jupyter import store

    size = store.content_size(path)  # not the zeros an open writer keeps ahead of its rows
    if not size:
        return 0, None, None
    first = next(store.iter_history(path, end=size), {}).get("_step")
    last = (store.last_row(path, end=size) or {}).get("_step")
    return size, first, last


def rows_before(path: Path, size: int) -> Iterable[dict[str, Any]]:
    """The complete rows in the first ``size`` bytes of a history file."""
    from tracker_jupyter.store import iter_history

    return iter_history(path, end=size)


def history_path(run: Run) -> Path | None:
    run_dir = run.run_dir
    if run_dir is None or run.disabled:
        return None
    from tracker_jupyter.store import HISTORY

    return Path(run_dir) / HISTORY
