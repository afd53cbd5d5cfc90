"""The snapshot's charts: static HTML that reads well in any theme and survives notebook sanitizers.

A chart is a tile of plain HTML text (title, tick labels, axis title, stats) around an SVG image that
holds only the drawing (frame, gridlines, lines). Text stays HTML so it takes the page's own colour
(JupyterLab Light or Dark, nbconvert, GitHub), muted with ``opacity`` rather than a fixed grey; the
drawing is an ``<img>`` with a data URI, since JupyterLab strips ``<svg>`` from untrusted outputs. Every
style used here is one JupyterLab's sanitizer keeps (``position``, ``left``/``top``, ``width``,
``opacity``, flex). Round ticks, gridlines, the x axis and log scale the user chose, and smoothing follow
the live charts (``scales`` and ``static/charts.js`` share the rules).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracker_jupyter.display import scales
from tracker_jupyter.display.charts import PALETTE, MinMaxSeries, column_decimate, escape, format_number

__all__ = ["Line", "chart_sections", "chart_tile", "pair_groups", "section_list", "section_of"]

WIDTH = 320
HEIGHT = 150
PAD_LEFT = 50  # room for the y tick labels, in HTML beside the image
PAD_BOTTOM = 30  # x tick labels and the axis title
PAD_TOP = 8  # the top tick label's upper half
GRID = "rgba(128,128,128,0.28)"
FRAME = "rgba(128,128,128,0.5)"
MUTED = "opacity:0.78"  # of the page's text colour: >= 4.5:1 in JupyterLab's light and dark themes
AXIS_TITLES = {"step": "step", "time": "wall time", "relative": "relative time"}
PAIR_SECTION = "train · val"
# sections closed until the user opens them: the system metrics, a dozen charts beside the run's own
DEFAULT_CLOSED = ("system",)
_PAIR_PREFIX = re.compile(r"^(train|training|val|valid|validation|eval|test)([/_])(.+)$", re.IGNORECASE)


def _points(
    series: MinMaxSeries, axis: str, origin_ms: float, x_of: Callable[[float], float] | None = None
) -> tuple[list[tuple[float, float]], list[tuple[float, float, int]]]:
    """The raw points to draw (first, extremes, last per bucket) and each bucket's mean, on ``axis``
    (``x_of``: the x of a step, on a step metric's axis)."""
    raw: list[tuple[float, float]] = []
    means: list[tuple[float, float, int]] = []
    for _, s0, s1, t0, t1, first, last, lo, hi, n, total in series.buckets():
        if x_of is not None:
            x0, x1 = x_of(s0), x_of(s1)
        elif axis == "time":
            x0, x1 = t0, t1
        elif axis == "relative":
            x0, x1 = (t0 - origin_ms) / 1000, (t1 - origin_ms) / 1000
        else:
            x0, x1 = s0, s1
        raw.append((x0, first))
        if n > 2:
            mid = (x0 + x1) / 2
            pair = (hi, lo) if hi - first < first - lo else (lo, hi)
            raw.extend(((mid, pair[0]), (mid, pair[1])))
        if n > 1:
            raw.append((x1, last))
        means.append(((x0 + x1) / 2, total / n, n))
    return raw, means


def _x_label(value: float, axis: str, step: float) -> str:
    if axis == "time":
        return scales.clock_label(value, step)
    if axis == "relative":
        return scales.duration_label(value)
    return scales.format_tick(value, step)


def _label(left: float, top: float, width: float, align: str, text: str) -> str:
    return (
        f'<div style="position:absolute;left:{left:.0f}px;top:{top:.0f}px;width:{width:.0f}px;'
        f'text-align:{align};{MUTED}">{escape(text)}</div>'
    )


def _frame(plot_w: int, plot_h: int) -> str:
    return f'<rect x="0.5" y="0.5" width="{plot_w - 1}" height="{plot_h - 1}" fill="none" stroke="{FRAME}"/>'


@dataclass(frozen=True)
class Line:
    """One line of a chart: a label (the run's name, or the metric's in a train/val pair), its series,
    colour and the wall time its relative-time axis counts from (a run's start; default the chart's)."""

    label: str
    series: MinMaxSeries
    color: str = PALETTE[0]
    origin_ms: float | None = None
    x_of: Callable[[float], float] | None = None  # on a step metric's axis: the x of a step


def _drawing(
    lines: Sequence[tuple[list[tuple[float, float]], list[tuple[float, float]], str]],
    *,
    axis: str,
    log: bool,
    size: tuple[int, int],
) -> tuple[list[str], list[str]]:
    """The SVG elements (gridlines, frame, lines) and the HTML tick labels of a chart with data:
    ``lines`` are (raw points, smoothed points, colour), each with at least one raw point."""
    plot_w, plot_h = size
    body: list[str] = []
    labels: list[str] = []
    x_lo = min(raw[0][0] for raw, _, _ in lines)
    x_hi = max(raw[-1][0] for raw, _, _ in lines)
    if not x_hi > x_lo:
        x_hi = x_lo + (1000 if axis == "time" else 1)
    count = max(2, plot_w // 80)
    if axis == "time":
        xt = scales.time_ticks(x_lo, x_hi, count)
    elif axis == "relative":  # round durations: 30 s, 1 min, 5 min, ...
        ms = scales.time_ticks(x_lo * 1000, x_hi * 1000, count)
        xt = scales.Ticks(ms.lo / 1000, ms.hi / 1000, tuple(v / 1000 for v in ms.values), ms.step / 1000)
    else:
        xt = scales.nice_ticks(x_lo, x_hi, count)
    ys = [y for raw, _, _ in lines for _, y in raw]
    yt = scales.log_ticks(min(ys), max(ys)) if log else scales.nice_ticks(min(ys), max(ys), 4)
    fy = math.log10 if log else float
    y_lo, y_hi = fy(yt.lo), fy(yt.hi)

    def sx(x: float) -> float:
        return (x - x_lo) / (x_hi - x_lo) * (plot_w - 1) + 0.5

    def sy(y: float) -> float:
        return plot_h - 0.5 - (fy(y) - y_lo) / ((y_hi - y_lo) or 1) * (plot_h - 1)

    for t in yt.values:
        y = sy(t)
        body.append(f'<line x1="0" x2="{plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        text = scales.format_tick(t, t) if log else scales.format_tick(t, yt.step)
        labels.append(_label(0, PAD_TOP + y - 8, PAD_LEFT - 6, "right", text))
    eps = (x_hi - x_lo) * 1e-9
    for t in (v for v in xt.values if x_lo - eps <= v <= x_hi + eps):
        x = sx(t)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{plot_h}" stroke="{GRID}"/>')
        labels.append(
            _label(PAD_LEFT + x - 40, PAD_TOP + plot_h + 1, 80, "center", _x_label(t, axis, xt.step))
        )
    body.append(_frame(plot_w, plot_h))

    def path(points: Sequence[tuple[float, float]]) -> str:  # at most two points per pixel column
        pixels = column_decimate([(sx(x), sy(y)) for x, y in points])
        return "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in pixels)

    for raw, smoothed, color in lines:
        faint = ' stroke-opacity="0.3"' if smoothed else ""
        body.append(
            f'<path d="{path(raw)}" fill="none" stroke="{color}" stroke-width="{1 if smoothed else 1.6}"'
            f'{faint} stroke-linejoin="round"/>'
        )
        if smoothed:
            body.append(
                f'<path d="{path(smoothed)}" fill="none" stroke="{color}" stroke-width="2" '
                'stroke-linejoin="round"/>'
            )
        if len(raw) == 1:
            body.append(f'<circle cx="{sx(raw[0][0]):.1f}" cy="{sy(raw[0][1]):.1f}" r="2.5" fill="{color}"/>')
    return body, labels


def swatch(color: str) -> str:
    """A small square of a line's colour, for legends (a block, not text: no contrast rule applies)."""
    return (
        f'<span style="display:inline-block;width:10px;height:10px;border-radius:2px;background:{color};'
        'vertical-align:-1px"></span>'
    )


def chart_tile(
    name: str,
    series: MinMaxSeries | None = None,
    *,
    lines: Sequence[Line] | None = None,
    axis: str = "step",
    log: bool = False,
    smoothing: float = 0.0,
    origin_ms: float = 0.0,
    color: str = PALETTE[0],
    width: int = WIDTH,
    height: int = HEIGHT,
    x_of: Callable[[float], float] | None = None,
    x_title: str | None = None,
) -> str:
    """A static chart tile (all user text escaped): one metric's ``series``, or several ``lines`` in one
    chart (runs compared, or a train/val pair), with a legend. ``x_of`` and ``x_title``: on a step
    metric's axis, the x of a step and the axis title."""
    if lines is None:
        if series is None:
            raise TypeError("chart_tile() needs a series or lines")
        lines = [Line(name, series, color, origin_ms, x_of)]
    drawn = []
    dropped = 0
    for line in lines:
        origin = origin_ms if line.origin_ms is None else line.origin_ms
        raw, means = _points(line.series, axis, origin, line.x_of)
        smoothed = scales.smooth(means, smoothing) if smoothing > 0 else []
        if log:
            kept = [p for p in raw if p[1] > 0]
            dropped += len(raw) - len(kept)
            raw = kept
            smoothed = [p for p in smoothed if p[1] > 0]
        if raw:
            drawn.append((raw, smoothed, line.color))
    plot_w, plot_h = width - PAD_LEFT, height - PAD_BOTTOM - PAD_TOP
    if drawn:
        body, labels = _drawing(drawn, axis=axis, log=log, size=(plot_w, plot_h))
    else:
        note = "no data yet" if not dropped else f"{dropped} point(s) ≤ 0: none on the log scale"
        body, labels = (
            [_frame(plot_w, plot_h)],
            [_label(PAD_LEFT, PAD_TOP + plot_h // 2 - 8, plot_w, "center", note)],
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{plot_w}" height="{plot_h}" '
        f'viewBox="0 0 {plot_w} {plot_h}">{"".join(body)}</svg>'
    )
    data = base64.b64encode(svg.encode()).decode("ascii")
    title = (x_title or AXIS_TITLES.get(axis, axis)) + (" · log y" if log else "")
    title += f" · smoothing {smoothing:.2f}" if smoothing > 0 and drawn else ""
    title += f" · {dropped} point(s) ≤ 0 left out" if dropped and drawn else ""
    if len(lines) == 1:
        only = lines[0].series
        stats = (
            f"last <b>{escape(format_number(only.last))}</b> · min {escape(format_number(only.vmin))}"
            f" · max {escape(format_number(only.vmax))}"
        )
        if only.skipped:
            stats += f" · {only.skipped:,} non-finite"
        legend = ""
    else:
        stats = ""
        legend = "".join(
            f'<span class="tj-legend-item" style="margin-right:10px;white-space:nowrap">{swatch(line.color)} '
            f"{escape(line.label)} <b>{escape(format_number(line.series.last))}</b></span> "
            for line in lines
        )
        legend = f'<div class="tj-legend" style="line-height:15px">{legend}</div>'
    return (
        f'<div class="tj-chart" style="width:{width}px;margin:0 10px 10px 0;font-size:11px;line-height:16px">'
        f'<div class="tj-chart-title" style="font-weight:600;font-size:12px;white-space:nowrap;overflow:hidden;'
        f'text-overflow:ellipsis" title="{escape(name)}">{escape(name)}</div>{legend}'
        f'<div style="position:relative;width:{width}px;height:{height}px">'
        f'<img src="data:image/svg+xml;base64,{data}" width="{plot_w}" height="{plot_h}" '
        f'alt="chart of {escape(name)}" style="position:absolute;left:{PAD_LEFT}px;top:{PAD_TOP}px;display:block">'
        f"{''.join(labels)}{_label(PAD_LEFT, PAD_TOP + plot_h + 15, plot_w, 'center', title)}</div>"
        f'<div class="tj-stats" style="{MUTED}">{stats}</div></div>'
    )


def section_of(name: str) -> str:
    """The section a metric is shown in: what comes before its first ``/`` (``train/loss`` → ``train``)."""
    head, sep, _ = name.partition("/")
    return head if sep and head else ""


def _section_order(key: str) -> tuple[int, str]:
    """Unprefixed first, then train/val pairs, then by name, ``system`` last (as the live charts)."""
    return ({"": 0, PAIR_SECTION: 1, "system": 3}.get(key, 2), key)


def pair_groups(names: Sequence[str]) -> dict[str, tuple[str, list[str]]]:
    """Metrics of one quantity on train and validation data, to overlay on request (``pair`` in the
    view): ``train/loss`` with ``val/loss`` (train, training, val, valid, validation, eval or test, with
    ``/`` or ``_``), and Keras' ``loss`` with ``val_loss``. Returns id → (title, members), groups of two
    or more, in the order the live charts (``pairGroups``) find them."""
    found: dict[str, tuple[str, list[str]]] = {}
    for name in names:
        match = _PAIR_PREFIX.match(name)
        if match:
            found.setdefault(match[2] + match[3], (match[3], []))[1].append(name)
    present = set(names)
    groups = {}
    for key, (title, members) in found.items():
        if key[0] == "_" and key[1:] in present:
            members.insert(0, key[1:])
        if len(members) >= 2:
            groups[key] = (title, members)
    return groups


def chart_sections(
    all_series: Mapping[str, MinMaxSeries],
    names: Sequence[str],
    *,
    view: Mapping[str, Any],
    origin_ms: float,
    color: str = PALETTE[0],
    steps_of: Mapping[str, str] | None = None,
) -> str:
    """The charts of ``names`` in collapsible sections by prefix, drawn as ``view`` says (x axis, log
    scale, smoothing, train/val pairs overlaid; sections the user closed stay closed). On the step axis a
    metric with a step metric of its own (``steps_of``) is drawn against it; ``x: metric:<name>`` draws
    every chart against that metric."""
    axis = str(view.get("x", "step"))
    lookups: dict[str, Callable[[float], float]] = {}

    def x_for(name: str) -> tuple[Callable[[float], float] | None, str | None]:
        step = (
            axis[7:] if axis.startswith("metric:") else (steps_of or {}).get(name) if axis == "step" else None
        )
        if step is None or step not in all_series or step == name:
            return None, None
        if step not in lookups:
            lookups[step] = scales.step_lookup(all_series[step].buckets())
        return lookups[step], step

    style: dict[str, Any] = {
        "axis": "step" if axis.startswith("metric:") else axis,
        "log": bool(view.get("log")),
        "smoothing": float(view.get("smoothing") or 0.0),
        "origin_ms": origin_ms,
    }
    paired: dict[str, str] = {}
    groups = pair_groups(names) if view.get("pair") else {}
    for group_id, (_, members) in groups.items():
        paired.update(dict.fromkeys(members, group_id))
    tiles: dict[str, list[str]] = {}
    for name in names:
        key = paired.get(name)
        if key is None and section_of(name) == "system":  # sampled in time, not at the run's steps
            in_time = {**style, "axis": "relative" if style["axis"] == "step" else style["axis"]}
            tiles.setdefault("system", []).append(chart_tile(name, all_series[name], color=color, **in_time))
        elif key is None:
            x_of, x_title = x_for(name)
            tile = chart_tile(name, all_series[name], color=color, x_of=x_of, x_title=x_title, **style)
            tiles.setdefault(section_of(name), []).append(tile)
        elif groups[key][1][0] == name:
            title, members = groups[key]
            lines = [
                Line(m, all_series[m], PALETTE[i % len(PALETTE)], None, x_for(m)[0])
                for i, m in enumerate(members)
            ]
            x_titles = {x_for(m)[1] for m in members}
            x_title = x_titles.pop() if len(x_titles) == 1 else None
            tiles.setdefault(PAIR_SECTION, []).append(
                chart_tile(title, lines=lines, x_title=x_title, **style)
            )
    return section_list(tiles, closed=set(view.get("closed", DEFAULT_CLOSED) or ()))


def section_list(tiles: Mapping[str, Sequence[str]], *, closed: set[str]) -> str:
    """Chart tiles by section as collapsible ``<details>`` (closed ones stay closed)."""
    parts = []
    for key in sorted(tiles, key=_section_order):
        title = key or "charts"
        is_open = "" if title in closed else " open"
        parts.append(
            f'<details class="tj-section" data-section="{escape(title)}"{is_open}>'
            '<summary style="font-weight:600;cursor:pointer">'
            f'{escape(title)} <span style="{MUTED};font-weight:400">({len(tiles[key])})</span></summary>'
            f'<div style="display:flex;flex-wrap:wrap;margin-top:4px">{"".join(tiles[key])}</div></details>'
        )
    return "".join(parts)
