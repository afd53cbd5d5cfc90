"""The snapshot of a run in a cell that ran several: one row instead of a full card.

A cell that starts twenty runs would otherwise leave twenty snapshots of a few hundred pixels each. From
the second run of a cell on, each run's display becomes one row of fixed-width columns (name and id,
state, steps, duration, the first summary values, small line charts of the first metrics), so the rows
of the cell line up as a table; the first row carries the column titles. The full snapshot of any of
them is ``run.display()`` or ``%tracker_runs`` away.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracker_jupyter.display.charts import (
    PALETTE,
    MinMaxSeries,
    column_decimate,
    escape,
    format_duration,
    format_number,
)
from tracker_jupyter.display.view import MUTED, NUMERIC, STATE_COLORS, RunFeed, render_text, summary_items

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

__all__ = ["compact_row", "sparkline"]

CHARTS = 3  # small charts a row
VALUES = 3  # summary values a row
SPARK_W, SPARK_H = 80, 22
WIDTHS = {"run": 190, "state": 78, "steps": 56, "time": 56, "values": 230}


def sparkline(series: MinMaxSeries, *, color: str = PALETTE[0]) -> str:
    """A small line chart of ``series`` (no axes) as a data-URI image, with its range in the title."""
    points = series.points()
    if not points:
        return ""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    x0, x1, y0, y1 = xs[0], xs[-1], min(ys), max(ys)

    def sx(x: float) -> float:
        return 1 + (x - x0) / ((x1 - x0) or 1) * (SPARK_W - 2)

    def sy(y: float) -> float:
        return SPARK_H / 2 if y1 == y0 else SPARK_H - 2 - (y - y0) / (y1 - y0) * (SPARK_H - 4)

    pixels = column_decimate([(sx(x), sy(y)) for x, y in points])
    if len(pixels) == 1:
        pixels = [(pixels[0][0] - 1, pixels[0][1]), (pixels[0][0] + 1, pixels[0][1])]
    path = "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in pixels)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SPARK_W}" height="{SPARK_H}">'
        f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.4" stroke-linejoin="round"/></svg>'
    )
    data = base64.b64encode(svg.encode()).decode("ascii")
    return (
        f'<img src="data:image/svg+xml;base64,{data}" width="{SPARK_W}" height="{SPARK_H}" '
        f'alt="" style="display:inline-block;vertical-align:middle">'
    )


def summary_numbers(run: Run) -> list[tuple[str, Any]]:
    """The run's numeric summary values as (label, number), for the one-line forms (this row, and the
    line a view below a later cell becomes); ``define_metric(summary="min")`` keeps ``{"min": ...}``,
    shown as ``loss min``."""
    numbers: list[tuple[str, Any]] = []
    for key, value in summary_items(run):
        if str(key).startswith("_"):
            continue
        if isinstance(value, Mapping):
            numbers += [(f"{key} {k}", v) for k, v in value.items() if type(v) in NUMERIC]
        elif type(value) in NUMERIC:
            numbers.append((str(key), value))
    return numbers


def _cell(key: str, html: str, *, align: str = "left", title: str = "") -> str:
    width = WIDTHS.get(key)
    size = f"width:{width}px;flex:none;" if width else "flex:1 1 0;min-width:0;"  # the charts: what fits
    return (
        f'<div style="{size}padding:0 6px;text-align:{align};white-space:nowrap;overflow:hidden;'
        f'text-overflow:ellipsis" title="{escape(title)}">{html}</div>'
    )


def _row(cells: Sequence[str], *, head: bool = False) -> str:
    style = f"font-weight:600;{MUTED};font-size:11px" if head else ""
    return f'<div style="display:flex;align-items:center;min-height:26px;{style}">{"".join(cells)}</div>'


def compact_row(run: Run, feed: RunFeed, info: Mapping[str, Any], *, head: bool = False) -> dict[str, str]:
    """The one-row snapshot of ``run`` (``head``: with the column titles above it)."""
    state = str(info.get("state"))
    color = STATE_COLORS.get(state, "#555")
    numbers = summary_numbers(run)
    values = " · ".join(f"{escape(k)} <b>{escape(format_number(v))}</b>" for k, v in numbers[:VALUES])
    with feed.lock:
        names = list(feed.series)[:CHARTS]
        spark = "".join(
            f'<span style="margin-right:8px" title="{escape(n)}"><span style="{MUTED};font-size:11px">'
            f"{escape(n if len(n) <= 14 else n[:13] + '…')}</span> {sparkline(feed.series[n])}</span>"
            for n in names
        )
    cells = [
        _cell("run", f'<b>{escape(info.get("name"))}</b> <code style="{MUTED};background:transparent">'
                     f"{escape(info.get('id'))}</code>"),
        _cell("state", f'<span style="padding:0 6px;border-radius:8px;background:{color};color:#fff;'
                       f'font-size:11px">{escape(state)}</span>'),
        _cell("steps", escape(format_number((info.get("step") or -1) + 1)), align="right"),
        _cell("time", escape(format_duration(info.get("elapsed"))), align="right"),
        _cell("values", values, title=" · ".join(f"{k} {format_number(v)}" for k, v in numbers)),
        _cell("charts", spark),
    ]  # fmt: skip
    header = ""
    if head:
        titles = {"run": "run", "state": "state", "steps": "steps", "time": "time", "values": "summary"}
        heads = [_cell(k, t, align="right" if k in ("steps", "time") else "left") for k, t in titles.items()]
        header = _row([*heads, _cell("charts", "charts")], head=True)
    html = f'<div class="tj-compact-run" style="font:12px/1.4 sans-serif">{header}{_row(cells)}</div>'
    return {"text/plain": render_text(info, feed, limit=CHARTS), "text/html": html}
