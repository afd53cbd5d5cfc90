"""The inline runs dashboard: a sortable, filterable table of a project's runs and a metric overlay.

``runs_table(records)`` builds the data (pure: usable in a script and in tests); ``show_runs`` displays it
with ipywidgets (a filter box, a sort choice, runs to overlay and the metric to compare), falling back to
plain HTML where widgets cannot render. ``%tracker_runs`` calls ``show_runs``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tracker_jupyter.display import charts
from tracker_jupyter.display.charts import MinMaxSeries, escape, format_duration
from tracker_jupyter.display.view import NUMERIC, STATE_COLORS, artifacts_line
from tracker_jupyter.display.widget import _report, _widgets_available

__all__ = ["RunsTable", "project_runs", "runs_table", "show_runs"]

_FIXED_COLUMNS = ("name", "state", "start", "duration", "tags", "group", "job_type")


def _record_row(record: Any) -> dict[str, Any]:
    start = record.start_time
    end = record.end_time
    state = record.state
    if start is None:
        duration = None
    elif end is not None:
        duration = end - start
    else:
        duration = time.time() - start if state == "running" else None
    row: dict[str, Any] = {
        "id": record.id,
        "name": record.name or record.id,
        "state": state,
        "start": start,
        "duration": duration,
        "tags": tuple(record.tags),
        "group": record.group,
        "job_type": record.job_type,
        "source": record.source,
        "artifacts": artifacts_line(getattr(record, "meta", None) or {}),
        "sweep": _sweep_cell(getattr(record, "meta", None) or {}),
    }
    for key, value in charts.flatten(record.config or {}, depth=2):
        row[f"config.{key}"] = value
    for key, value in (record.summary or {}).items():
        if not str(key).startswith("_"):
            row[f"summary.{key}"] = value
    return row


def _sweep_cell(meta: Mapping[str, Any]) -> str | None:
    sweep = meta.get("sweep")
    return f"{sweep.get('id')} #{sweep.get('trial')}" if isinstance(sweep, Mapping) else None


def mark_best_trials(records: Sequence[Any], rows: list[dict[str, Any]]) -> None:
    """Mark each sweep's best finished trial (by the sweep's metric and goal) with a ★ in its cell."""
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for record, row in zip(records, rows, strict=True):
        sweep = (getattr(record, "meta", None) or {}).get("sweep")
        if not isinstance(sweep, Mapping) or not isinstance(sweep.get("metric"), Mapping):
            continue
        name, goal = sweep["metric"].get("name"), sweep["metric"].get("goal", "minimize")
        value = (record.summary or {}).get(name)
        if row["state"] != "finished" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        score = float(value) if goal == "maximize" else -float(value)
        if sweep["id"] not in best or score > best[sweep["id"]][0]:
            best[sweep["id"]] = (score, row)
    for _, row in best.values():
        row["sweep"] = f"{row['sweep']} ★ best"


def _pick_columns(rows: Sequence[Mapping[str, Any]], prefix: str, limit: int) -> list[str]:
    """Up to ``limit`` columns with ``prefix``: those whose values differ between runs first."""
    keys: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key.startswith(prefix):
                keys.setdefault(key)
    varying = [k for k in keys if len({charts.format_value(r.get(k), k) for r in rows}) > 1]
    constant = [k for k in keys if k not in varying]
    return (varying + constant)[:limit]


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value) if value == value else (2, 0)
    return (1, str(value).lower())


def _matches(row: Mapping[str, Any], word: str) -> bool:
    if "=" in word:
        key, _, want = word.partition("=")
        for column in (key, f"config.{key}", f"summary.{key}"):
            value = next((v for k, v in row.items() if k.lower() == column), None)
            if value is None:
                continue
            if column == "tags":
                if want in (t.lower() for t in value):
                    return True
            elif str(value).lower() == want or charts.format_value(value).lower() == want:
                return True
        return False
    searchable = [
        v for k, v in row.items() if not k.startswith("summary.") and k not in ("start", "duration")
    ]
    text = " ".join(" ".join(v) if isinstance(v, tuple) else str(v) for v in searchable if v is not None)
    return word in text.lower()


def filter_rows(rows: Iterable[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """Rows matching every word of ``text``, case-insensitive.

    A word matches a run whose name, id, state, tags, group, job_type or config values contain it; a
    ``key=value`` word matches that column exactly (``state=finished``, ``tags=baseline``, ``lr=0.01``).
    """
    words = text.lower().split()
    return [row for row in rows if all(_matches(row, word) for word in words)]


def sort_rows(
    rows: Iterable[dict[str, Any]], column: str, *, descending: bool = True
) -> list[dict[str, Any]]:
    """Rows sorted by ``column``; runs without a value come last whichever the direction."""
    present = [r for r in rows if r.get(column) is not None]
    missing = [r for r in rows if r.get(column) is None]
    present.sort(key=lambda r: _sort_key(r.get(column)), reverse=descending)
    return present + missing


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "start":
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(value))
    if column == "duration":
        return format_duration(value)
    if column == "tags":
        return ", ".join(value)
    return charts.format_value(value, column)


def table_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, limit: int = 200) -> str:
    """The runs as an HTML table (text escaped, secret-looking config masked)."""
    head = "".join(
        f'<th style="text-align:left;padding:2px 8px;border-bottom:1px solid #ccc">{escape(c)}</th>'
        for c in columns
    )
    body = []
    for row in rows[:limit]:
        cells = []
        for column in columns:
            value = row.get(column)
            text = escape(_cell(column, value))
            if column == "state":
                color = STATE_COLORS.get(str(value), "#555")
                text = f'<span style="color:{color}">{text}</span>'
            cells.append(f'<td style="text-align:left;padding:1px 8px;white-space:nowrap">{text}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = (
        f'<div style="color:#888;font:11px sans-serif">… and {len(rows) - limit} more runs</div>'
        if len(rows) > limit
        else ""
    )
    return (
        '<div style="overflow-x:auto"><table class="tj-runs" style="border-collapse:collapse;font:12px sans-serif">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{more}"
    )


class RunsTable:
    """Runs of a project as a table, optionally with one metric of some of them overlaid in a chart.

    Made by ``runs_table()``; shows itself as HTML in a notebook and as text elsewhere.
    ``rows`` is a list of dicts (``name``, ``state``, ``start``, ``duration``, ``tags``, ``group``,
    ``job_type``, ``config.<key>``, ``summary.<key>``); ``to_pandas()`` makes it a DataFrame.
    """

    def __init__(
        self, records: Sequence[Any], rows: list[dict[str, Any]], columns: list[str], metric: str | None,
        selected: list[str],
    ) -> None:  # fmt: skip
        self.records = {r.id: r for r in records}
        self.rows = rows
        self.columns = columns
        self.metric = metric
        self.selected = selected
        self._series: dict[tuple[str, str], MinMaxSeries] = {}

    def metrics(self) -> list[str]:
        """Numeric summary metrics of the runs, the ones most runs have first."""
        counts: dict[str, int] = {}
        for row in self.rows:
            for key, value in row.items():
                if key.startswith("summary.") and type(value) in NUMERIC:
                    counts[key[8:]] = counts.get(key[8:], 0) + 1
        return sorted(counts, key=lambda k: (-counts[k], k))

    def series(self, run_id: str, metric: str) -> MinMaxSeries:
        """The downsampled history of one metric of one run (read once from the store, then cached)."""
        cached = self._series.get((run_id, metric))
        if cached is None:
            cached = MinMaxSeries()
            steps: list[int] = []
            values: list[Any] = []
            times: list[float] = []
            for row in self.records[run_id].scan_history(keys=[metric]):
                steps.append(row.get("_step", 0))
                values.append(row[metric])
                times.append(row.get("_timestamp", 0))
                if len(steps) >= 8192:
                    cached.extend(steps, values, times)
                    steps, values, times = [], [], []
            cached.extend(steps, values, times)
            self._series[(run_id, metric)] = cached
        return cached

    def overlay_svg(self, metric: str | None = None, run_ids: Sequence[str] | None = None) -> str:
        """One chart with ``metric`` of each selected run (labelled by run name)."""
        metric = metric or self.metric
        if not metric:
            return '<div style="color:#888;font:12px sans-serif">pick a metric to compare runs</div>'
        ids = [i for i in (self.selected if run_ids is None else run_ids) if i in self.records]
        names = {row["id"]: row["name"] for row in self.rows}
        lines = [(f"{names.get(i, i)} ({i})", self.series(i, metric).points()) for i in ids]
        return charts.overlay_svg(lines, title=metric)

    def html(self) -> str:
        """The table, and the overlay chart as an image (this HTML is a notebook output: see ``svg_image``)."""
        chart = (
            charts.svg_image(self.overlay_svg(), alt=f"{self.metric} of the selected runs")
            if self.metric
            else ""
        )
        return table_html(self.rows, self.columns) + chart

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self.html()}

    def __repr__(self) -> str:
        lines = [f"{len(self.rows)} runs"]
        for row in self.rows[:20]:
            lines.append(
                "  "
                + "  ".join(
                    _cell(c, row.get(c)) for c in ("name", "state", "start", "duration") if row.get(c)
                )
            )
        if len(self.rows) > 20:
            lines.append(f"  … and {len(self.rows) - 20} more")
        return "\n".join(lines)

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows)


def runs_table(
    records: Iterable[Any],
    metric: str | None = None,
    *,
    filter: str = "",
    sort: str = "start",
    descending: bool = True,
    select: Sequence[str] | None = None,
    max_config: int = 8,
    max_summary: int = 8,
) -> RunsTable:
    """A sortable, filterable table of runs (``Api(dir).runs(project)``), with a metric overlay.

    Parameters
    ----------
    records
        Run records from ``tracker_jupyter.Api(...).runs(project)``.
    metric
        A summary metric to overlay, for the ``select``ed runs (default: the first five shown that have it).
    filter
        Words that must all appear in a run's name, id, state, tags, group, job_type or config values;
        ``key=value`` matches a column exactly (``state=finished``, ``lr=0.01``).
    sort
        The column to sort by (``start``, ``duration``, ``name``, ``summary.loss``, ``config.lr``...).
    descending
        Sort direction; runs without a value come last either way.
    select
        Run ids to overlay.
    max_config, max_summary
        How many config and summary columns to show (those that differ between runs first).
    """
    records = list(records)
    all_rows = [_record_row(r) for r in records]
    mark_best_trials(records, all_rows)
    rows = sort_rows(filter_rows(all_rows, filter), sort, descending=descending)
    fixed = (
        [*_FIXED_COLUMNS, "source"] if any(r["source"] != "local" for r in all_rows) else [*_FIXED_COLUMNS]
    )
    if any(r["artifacts"] for r in all_rows):
        fixed.append("artifacts")
    if any(r["sweep"] for r in all_rows):
        fixed.append("sweep")
    columns = [*fixed, *_pick_columns(all_rows, "config.", max_config),
               *_pick_columns(all_rows, "summary.", max_summary)]  # fmt: skip
    if select is None:
        key = f"summary.{metric}"
        select = [r["id"] for r in rows if metric and r.get(key) is not None][:5]
    return RunsTable(records, rows, columns, metric, list(select))


def project_runs(
    project: str | None = None, dir: str | None = None, *, server: bool = True, entity: str | None = None
) -> list[Any]:
    """The runs to show for ``project``: the local store's, then the tracking server's it does not have.

    The server (``TRACKER_BASE_URL``) is asked only for a named project, when ``server`` is True and the mode
    (``TRACKER_MODE``) is not offline or disabled. A server that cannot be read is reported in one line, and
    the local runs are still returned.
    """
    from tracker_jupyter import store
    from tracker_jupyter.settings import Settings, resolve

    root = Path(resolve("root_dir", os.fspath(dir) if dir is not None else None, Settings()))
    records: list[Any] = store.list_runs(root, project)
    if (
        not server
        or project is None
        or resolve("mode", None, Settings()) in ("offline", "dryrun", "disabled")
    ):
        return records
    from tracker_jupyter.exceptions import CommError
    from tracker_jupyter.online.remote import server_runs

    try:
        remote = server_runs(project, entity=entity)
    except CommError as exc:
        _report(f"the runs of {project!r} on the tracking server could not be read ({exc}); local runs only")
        return records
    local = {r.id for r in records}
    return records + [r for r in remote if r.id not in local]


def show_runs(records: Iterable[Any], metric: str | None = None) -> None:
    """Display the runs dashboard: a filter box, a sort menu, the runs table, and a metric overlay chart.

    Built from ipywidgets (Text, Dropdown, SelectMultiple, HTML); without a kernel or ipywidgets the
    static ``runs_table()`` is displayed instead.

    Parameters
    ----------
    records
        Run records from ``tracker_jupyter.Api(...).runs(project)``.
    metric
        The metric to overlay first (default: the one most runs have).
    """
    from IPython.display import display

    from tracker_jupyter.core import host

    table = runs_table(records, metric)
    shell = host.get_shell()
    if getattr(shell, "kernel", None) is None or not _widgets_available():
        display(table)
        return
    try:
        display(RunsDashboard(table, metric).box)
    except Exception as exc:
        _report(f"the runs widget could not be built ({exc!r}); showing the table instead")
        display(table)


class RunsDashboard:
    """The ipywidgets form of a ``RunsTable``: filter, sort, select runs, pick a metric."""

    def __init__(self, table: RunsTable, metric: str | None = None) -> None:
        import ipywidgets as w

        self.all_rows = table.rows
        self.table = table
        metrics = table.metrics()
        metric = metric if metric in metrics else (metrics[0] if metrics else None)
        table.metric = metric
        sortable = [c for c in table.columns if c != "tags"]
        self.filter = w.Text(placeholder="filter: words, or key=value (state=finished, lr=0.01)",
                             description="filter", layout=w.Layout(width="420px"))  # fmt: skip
        self.sort = w.Dropdown(options=sortable, value="start", description="sort by")
        self.descending = w.ToggleButton(value=True, description="descending", icon="sort-amount-desc")
        self.metric = w.Dropdown(options=metrics, value=metric, description="metric")
        self.runs = w.SelectMultiple(description="runs", rows=8, layout=w.Layout(width="360px"))
        self.table_html = w.HTML()
        self.chart = w.HTML()
        self.box = w.VBox(
            [
                w.HBox([self.filter, self.sort, self.descending]),
                self.table_html,
                w.HBox([w.VBox([self.metric, self.runs]), self.chart]),
            ]
        )
        self.box.add_class("tracker-runs")
        for control in (self.filter, self.sort, self.descending):
            control.observe(lambda _: self.refresh_table(), names="value")
        self.metric.observe(lambda _: self.refresh_chart(pick=True), names="value")
        self.runs.observe(lambda _: self.refresh_chart(), names="value")
        self.refresh_table()
        self.refresh_chart(pick=True)

    def refresh_table(self) -> None:
        rows = sort_rows(filter_rows(self.all_rows, self.filter.value), self.sort.value,
                         descending=self.descending.value)  # fmt: skip
        self.table.rows = rows
        self.table_html.value = table_html(rows, self.table.columns)
        chosen = tuple(i for i in self.runs.value if any(r["id"] == i for r in rows))
        self.runs.options = [(f"{r['name']} ({r['id']})", r["id"]) for r in rows]
        self.runs.value = chosen

    def refresh_chart(self, *, pick: bool = False) -> None:
        metric = self.metric.value
        if pick and metric:
            key = f"summary.{metric}"
            wanted = tuple(r["id"] for r in self.table.rows if r.get(key) is not None)[:5]
            if wanted != tuple(self.runs.value):
                self.runs.value = wanted  # observing runs redraws the chart
                return
        self.chart.value = self.table.overlay_svg(metric, list(self.runs.value))
