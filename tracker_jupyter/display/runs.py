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

from tracker_jupyter.display import charts, figure
from tracker_jupyter.display.charts import MinMaxSeries, escape, format_duration
from tracker_jupyter.display.figure import PALETTE
from tracker_jupyter.display.view import MUTED, NUMERIC, STATE_COLORS, RunFeed, artifacts_line
from tracker_jupyter.display.widget import _report, _widgets_available

__all__ = ["RunsTable", "project_runs", "runs_table", "show_runs"]

RUN_SEP = "\x1f"  # a series of the runs dashboard is "<run id><RUN_SEP><metric>", as charts.js reads it
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
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    if column == "duration":
        return format_duration(value)
    if column == "tags":
        return ", ".join(value)
    return charts.format_value(value, column)


_TITLES = {"start": "started", "job_type": "job type", "artifacts": "artifacts", "sweep": "sweep trial"}


def column_title(column: str) -> tuple[str, str]:
    """A column's group and readable title: ``config.lr`` → (config, lr), ``job_type`` → (run, job type)."""
    group, dot, rest = column.partition(".")
    if dot and group in ("config", "summary"):
        return group, rest
    return "run", _TITLES.get(column, column)


def _numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    """Whether a column holds numbers (aligned right): durations, and columns of numbers only."""
    if column == "duration":
        return True
    values = [r.get(column) for r in rows if r.get(column) is not None]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def first_with(rows: Iterable[Mapping[str, Any]], metric: str | None, count: int = 5) -> list[str]:
    """The ids of the first ``count`` runs whose summary has ``metric``: the runs compared at first."""
    key = f"summary.{metric}"
    return [r["id"] for r in rows if metric and r.get(key) is not None][:count]


def run_colors(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """A colour for each run, by start time (oldest first): a run keeps it whatever is selected,
    filtered or sorted, and keeps it when newer runs join the project."""
    ordered = sorted(rows, key=lambda r: (r.get("start") is None, r.get("start") or 0, r["id"]))
    return {row["id"]: PALETTE[i % len(PALETTE)] for i, row in enumerate(ordered)}


def table_html(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, limit: int = 200,
    colors: Mapping[str, str] | None = None, selected: Iterable[str] = (),
) -> str:  # fmt: skip
    """The runs as an HTML table (text escaped, secret-looking config masked): a group row (run,
    config, summary) over readable column titles; with ``colors``, each run's swatch, ticked when it
    is in ``selected``."""
    picked = set(selected)
    groups: list[list[Any]] = []
    for column in columns:
        group = column_title(column)[0]
        if groups and groups[-1][0] == group:
            groups[-1][1] += 1
        else:
            groups.append([group, 1])
    lead = '<th style="padding:0 4px"></th>' if colors is not None else ""
    group_row = lead + "".join(
        f'<th colspan="{span}" style="text-align:left;padding:0 8px;font-weight:400;{MUTED}">{escape(g)}</th>'
        for g, span in groups
    )
    numeric = {c: _numeric(rows, c) for c in columns}
    title_row = lead + "".join(
        f'<th style="text-align:{"right" if numeric[c] else "left"};padding:2px 8px;border-bottom:1px solid '
        f'rgba(128,128,128,0.5)" title="{escape(c)}">{escape(column_title(c)[1])}</th>'
        for c in columns
    )
    body = []
    for row in rows[:limit]:
        cells = []
        if colors is not None:
            mark = "✓" if row["id"] in picked else ""
            cells.append(
                f'<td style="padding:1px 4px;white-space:nowrap">{figure.swatch(colors.get(row["id"], "#777"))}'
                f" {mark}</td>"
            )
        for column in columns:
            value = row.get(column)
            text = escape(_cell(column, value))
            if column == "state":
                color = STATE_COLORS.get(str(value), "#555")
                text = (
                    f'<span style="padding:0 6px;border-radius:8px;background:{color};color:#fff;'
                    f'font-size:11px">{text}</span>'
                )
            align = "right" if numeric[column] else "left"
            cells.append(f'<td style="text-align:{align};padding:1px 8px;white-space:nowrap">{text}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = (
        f'<div style="{MUTED};font:11px sans-serif">… and {len(rows) - limit} more runs</div>'
        if len(rows) > limit
        else ""
    )
    return (
        '<div style="overflow-x:auto"><table class="tj-runs" style="border-collapse:collapse;font:12px sans-serif;'
        f'font-variant-numeric:tabular-nums"><thead><tr>{group_row}</tr><tr>{title_row}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{more}"
    )


class RunsTable:
    """Runs of a project as a table, with the metrics of some of them overlaid in charts.

    Made by ``runs_table()``; shows itself as HTML in a notebook (the table, then one chart per metric
    with a line per selected run) and as text elsewhere. ``rows`` is a list of dicts (``name``,
    ``state``, ``start``, ``duration``, ``tags``, ``group``, ``job_type``, ``config.<key>``,
    ``summary.<key>``); ``colors`` gives each run its colour; ``to_pandas()`` makes it a DataFrame.
    """

    def __init__(
        self, records: Sequence[Any], rows: list[dict[str, Any]], columns: list[str], metric: str | None,
        selected: list[str], colors: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.records = {r.id: r for r in records}
        self.rows = rows
        self.columns = columns
        self.metric = metric
        self.selected = selected
        self.colors = colors if colors is not None else run_colors(rows)
        self._feeds: dict[str, dict[str, MinMaxSeries]] = {}

    def metrics(self) -> list[str]:
        """Numeric summary metrics of the runs, the ones most runs have first."""
        counts: dict[str, int] = {}
        for row in self.rows:
            for key, value in row.items():
                if key.startswith("summary.") and type(value) in NUMERIC:
                    counts[key[8:]] = counts.get(key[8:], 0) + 1
        return sorted(counts, key=lambda k: (-counts[k], k))

    def run_series(self, run_id: str) -> dict[str, MinMaxSeries]:
        """Every numeric metric of one run as a downsampled series (read once, then cached).

        A local run's history is read in one pass; a server's run is read metric by metric (its summary's
        numbers), as MLflow serves it.
        """
        cached = self._feeds.get(run_id)
        if cached is None:
            record = self.records[run_id]
            feed = RunFeed()
            if getattr(record, "source", "local") == "local":
                feed.preload(record.scan_history())
            else:
                summary = record.summary or {}
                for key in [k for k, v in summary.items() if type(v) in NUMERIC and not k.startswith("_")]:
                    feed.preload(record.scan_history(keys=[key]))
            cached = self._feeds[run_id] = feed.series
        return cached

    def series(self, run_id: str, metric: str) -> MinMaxSeries:
        """The downsampled history of one metric of one run (empty when the run has none)."""
        return self.run_series(run_id).get(metric) or MinMaxSeries()

    def _selected_ids(self, run_ids: Sequence[str] | None = None) -> list[str]:
        return [i for i in (self.selected if run_ids is None else run_ids) if i in self.records]

    def compared_metrics(self, run_ids: Sequence[str] | None = None) -> list[str]:
        """The metrics of the selected runs, ``metric`` first, then as the runs logged them."""
        names: dict[str, None] = {}
        for run_id in self._selected_ids(run_ids):
            names.update(dict.fromkeys(self.run_series(run_id)))
        ordered = list(names)
        if self.metric in names:
            ordered.remove(self.metric)
            ordered.insert(0, self.metric)
        return ordered

    def overlay_tiles(self, run_ids: Sequence[str] | None = None, *, limit: int = 12) -> str:
        """The selected runs' metrics as static charts in sections, a line per run in its colour."""
        ids = self._selected_ids(run_ids)
        names = {row["id"]: row["name"] for row in self.rows}
        tiles: dict[str, list[str]] = {}
        for metric in self.compared_metrics(ids)[:limit]:
            lines = [
                figure.Line(str(names.get(i, i)), self.run_series(i)[metric], self.colors.get(i, PALETTE[0]),
                            self.records[i].start_time * 1000 if self.records[i].start_time else None)
                for i in ids
                if metric in self.run_series(i)
            ]  # fmt: skip
            tiles.setdefault(figure.section_of(metric), []).append(figure.chart_tile(metric, lines=lines))
        return figure.section_list(tiles, closed=set())

    def html(self) -> str:
        """The table, then the selected runs' charts (static HTML: see ``figure``)."""
        table = table_html(self.rows, self.columns, colors=self.colors, selected=self.selected)
        if not self._selected_ids():
            return table
        return table + f'<div class="tj-runs-charts" style="margin-top:8px">{self.overlay_tiles()}</div>'

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
        A summary metric: its chart comes first, and without ``select`` the first five runs shown that
        have it are the ones compared.
    filter
        Words that must all appear in a run's name, id, state, tags, group, job_type or config values;
        ``key=value`` matches a column exactly (``state=finished``, ``lr=0.01``).
    sort
        The column to sort by (``start``, ``duration``, ``name``, ``summary.loss``, ``config.lr``...).
    descending
        Sort direction; runs without a value come last either way.
    select
        Run ids to compare (their metrics overlaid, a line per run).
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
    fixed = [c for c in fixed if c == "name" or any(r.get(c) not in (None, "", ()) for r in all_rows)]
    columns = [*fixed, *_pick_columns(all_rows, "config.", max_config),
               *_pick_columns(all_rows, "summary.", max_summary)]  # fmt: skip
    if select is None:
        select = first_with(rows, metric)
    return RunsTable(records, rows, columns, metric, list(select), colors=run_colors(all_rows))


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
    """Display the runs dashboard: the runs table (filter, sort by a column, tick runs to compare) over
    the ticked runs' metrics as interactive charts, a line per run in the run's own colour.

    A widget (``anywidget``, the run widget's charts) in a kernel; its output also carries the static
    table and charts as HTML, which a saved notebook, nbconvert and GitHub show. Without a kernel or
    ipywidgets that static form is displayed alone.

    Parameters
    ----------
    records
        Run records from ``tracker_jupyter.Api(...).runs(project)``.
    metric
        The metric whose chart comes first (default: the one most runs have); the first five runs that
        have it are compared.
    """
    from IPython.display import display

    from tracker_jupyter.core import host

    table = runs_table(records, metric)
    shell = host.get_shell()
    if getattr(shell, "kernel", None) is None or not _widgets_available():
        display(table)
        return
    try:
        board = RunsDashboard(table, metric)
        display(board.bundle(), raw=True)
    except Exception as exc:
        _report(f"the runs widget could not be built ({exc!r}); showing the table instead")
        display(table)


class RunsDashboard:
    """The runs dashboard widget of a ``RunsTable``.

    The kernel keeps the rules: the browser's ``query`` (filter words, sort column and direction) is
    applied with ``filter_rows`` / ``sort_rows`` and the rows shown are sent back formatted; its
    ``selected`` run ids are kept across filtering and sorting (a run hidden by the filter stays
    selected), and their histories are read once and sent as the charts' series.
    """

    def __init__(self, table: RunsTable, metric: str | None = None) -> None:
        import uuid

        from tracker_jupyter.display.panel import runs_panel_class

        self.table = table
        self.all_rows = list(table.rows)
        metrics = table.metrics()
        table.metric = metric if metric in metrics else (metrics[0] if metrics else None)
        if not table.selected:
            table.selected = first_with(self.all_rows, table.metric)
        self.columns = table.columns  # runs_table left out the columns no run fills
        self.widget = runs_panel_class()(
            uid=uuid.uuid4().hex,
            columns=[
                {"key": c, "group": column_title(c)[0], "title": column_title(c)[1],
                 "numeric": _numeric(self.all_rows, c)}
                for c in self.columns
            ],
            total=len(self.all_rows),
            selected=list(table.selected),
        )  # fmt: skip
        self._seq = 0
        self.refresh_rows()
        self.refresh_charts()
        self.widget.observe(lambda _: self.refresh_rows(), names="query")
        self.widget.observe(lambda _: self.refresh_charts(), names="selected")

    @property
    def selected(self) -> list[str]:
        known = {r["id"] for r in self.all_rows}
        return [i for i in self.widget.selected if isinstance(i, str) and i in known]

    def shown(self) -> list[dict[str, Any]]:
        """The rows the browser's query shows, in its order."""
        query = self.widget.query if isinstance(self.widget.query, dict) else {}
        column = str(query["sort"]) if query.get("sort") in self.table.columns else "start"
        rows = filter_rows(self.all_rows, str(query.get("filter") or "")[:500])
        return sort_rows(rows, column, descending=bool(query.get("descending", True)))

    def refresh_rows(self) -> None:
        rows = self.shown()
        self.table.rows = rows
        self.widget.rows = [
            {"id": r["id"], "name": str(r["name"]), "color": self.table.colors.get(r["id"], PALETTE[0]),
             "cells": [_cell(c, r.get(c)) for c in self.columns]}
            for r in rows[:500]
        ]  # fmt: skip

    def refresh_charts(self) -> None:
        """Send the selected runs (names, colours, starts) and their series as the charts' state."""
        from tracker_jupyter.display.panel import series_wire

        ids = self.selected
        self.table.selected = ids
        names = {r["id"]: str(r["name"]) for r in self.all_rows}
        series = {}
        for run_id in ids:
            for metric, one in self.table.run_series(run_id).items():
                series[f"{run_id}{RUN_SEP}{metric}"] = series_wire(one)
        start: dict[str, float | None] = {r["id"]: r.get("start") for r in self.all_rows}
        self._seq += 1
        with self.widget.hold_sync():
            self.widget.runs = [
                {"id": i, "name": names[i], "color": self.table.colors.get(i, PALETTE[0]),
                 "origin": (start[i] or 0) * 1000 or None}
                for i in ids
            ]  # fmt: skip
            self.widget.data = {"seq": self._seq, "origin": None, "series": series}

    def bundle(self) -> dict[str, Any]:
        """The widget, with the static table and charts beside it for frontends without widgets."""
        shown = self.widget._repr_mimebundle_()
        bundle = dict(shown[0] if isinstance(shown, tuple) else shown)  # anywidget: (data, metadata)
        bundle["text/html"] = self.table.html()
        bundle["text/plain"] = repr(self.table)
        return bundle
