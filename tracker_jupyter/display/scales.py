"""Axes for charts: round ticks (linear, log and time), tick labels, and the smoothing of a series.

The live charts' JavaScript (``static/charts.js``) does the same in the browser; both are tested on the
same cases, so a chart looks the same live and in the snapshot. Pure functions of plain numbers.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Ticks", "format_tick", "log_ticks", "nice_step", "nice_ticks", "smooth", "time_ticks"]

TIME_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class Ticks:
    """Where the ticks of an axis are: the domain ``lo``..``hi``, the tick values, and their spacing."""

    lo: float
    hi: float
    values: tuple[float, ...]
    step: float


def nice_step(span: float, count: int) -> float:
    """A round spacing (1, 2 or 5 times a power of ten) giving about ``count`` intervals over ``span``."""
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    unit = raw / power
    # the nearest of 1, 2, 5, 10 on a log scale (as d3 picks): about ``count`` intervals, never far more
    nice = 10 if unit >= math.sqrt(50) else 5 if unit >= math.sqrt(10) else 2 if unit >= math.sqrt(2) else 1
    return nice * power


def nice_ticks(lo: float, hi: float, count: int = 5) -> Ticks:
    """Round ticks covering ``lo``..``hi``, the domain widened to the outer ticks (a flat series gets a
    band around its value)."""
    if not hi > lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, count)
    start = math.floor(lo / step + 1e-9) * step
    stop = math.ceil(hi / step - 1e-9) * step
    n = round((stop - start) / step)
    values = tuple(0.0 if abs(v) < step * 1e-9 else v for v in (start + i * step for i in range(n + 1)))
    return Ticks(start, stop, values, step)


def log_ticks(lo: float, hi: float) -> Ticks:
    """Ticks of a log axis over positive ``lo``..``hi``: powers of ten, with 2 and 5 between them when
    the range spans two decades or less."""
    a = math.floor(math.log10(lo))
    b = math.ceil(math.log10(hi))
    if b == a:
        b += 1
    mantissas = (1, 2, 5) if b - a <= 2 else (1,)
    values = tuple(m * 10.0**e for e in range(a, b + 1) for m in mantissas if m * 10.0**e <= 10.0**b)
    return Ticks(10.0**a, 10.0**b, values, 10.0)


def time_ticks(lo_ms: float, hi_ms: float, count: int = 5) -> Ticks:
    """Ticks of a wall-time axis (values in ms) at round seconds, minutes, hours or days."""
    span = (hi_ms - lo_ms) / 1000
    if span / max(1, count) < 1:
        return nice_ticks(lo_ms, hi_ms, count)
    round_step = next((s for s in TIME_STEPS_S if span / s <= count), None)
    step_s = float(round_step) if round_step is not None else nice_step(span / 86400, count) * 86400
    ms = step_s * 1000
    start = math.floor(lo_ms / ms) * ms
    stop = math.ceil(hi_ms / ms) * ms
    n = round((stop - start) / ms)
    return Ticks(start, stop, tuple(start + i * ms for i in range(n + 1)), ms)


def format_tick(value: float, step: float | None = None) -> str:
    """A tick label: as many decimals as the spacing needs, ``k``/``M``/``G`` for large values."""
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    for limit, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if magnitude >= limit:
            return f"{float(f'{value / scale:.3g}'):g}{suffix}"
    if magnitude < 1e-3:
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step else 3
    return f"{value:.{min(decimals, 6)}f}"


def clock_label(ms: float, step_ms: float) -> str:
    """A wall-time tick in local time: ``14:05:30``, ``14:05`` or ``12/3`` by the spacing."""
    t = time.localtime(ms / 1000)
    if step_ms >= 86_400_000:
        return f"{t.tm_mon}/{t.tm_mday}"
    if step_ms >= 60_000:
        return f"{t.tm_hour:02d}:{t.tm_min:02d}"
    return f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def duration_label(seconds: float) -> str:
    """A relative-time tick: ``250ms``, ``45s``, ``3m05s``, ``2h03m``, ``1d4h``."""
    if 0 < seconds < 1:
        return f"{round(seconds * 1000)}ms"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def smooth(points: Sequence[tuple[float, float, int]], weight: float) -> list[tuple[float, float]]:
    """The debiased exponential moving average TensorBoard and wandb draw, over ``(x, mean, n)`` points
    where a point stands for ``n`` raw steps (a bucket weighs as its steps would, so the line keeps its
    shape whatever the bucket size)."""
    if not weight > 0:
        return [(x, y) for x, y, _ in points]
    out = []
    acc = norm = 0.0
    for x, y, n in points:
        w = weight**n
        acc = acc * w + (1 - w) * y
        norm = norm * w + (1 - w)
        out.append((x, acc / norm))
    return out


def step_lookup(buckets: Sequence[Sequence[Any]]) -> Callable[[float], float]:
    """A function from a step to the value of a step metric (``define_metric(step_metric=...)``) at that
    step, read from the step metric's buckets (``MinMaxSeries.buckets()``): within a bucket, between its
    first and last values; between buckets, between one's last and the next one's first; before the
    first or after the last, that end's value. The live charts' ``stepLookup`` computes the same."""
    ordered = sorted(buckets, key=lambda b: b[1])
    starts = [b[1] for b in ordered]

    def at(step: float) -> float:
        if not ordered:
            return step
        if step <= ordered[0][1]:
            return float(ordered[0][5])
        if step >= ordered[-1][2]:
            return float(ordered[-1][6])
        i = bisect.bisect_right(starts, step) - 1
        _, s0, s1, _, _, first, last = ordered[i][:7]
        if step >= s1:
            nxt = ordered[i + 1]
            return float(last + (nxt[5] - last) * (step - s1) / ((nxt[1] - s1) or 1))
        return float(first if s1 == s0 else first + (last - first) * (step - s0) / (s1 - s0))

    return at


def step_metrics(definitions: Iterable[Mapping[str, Any]], names: Iterable[str]) -> dict[str, str]:
    """Which charted metrics have a step metric of their own (``define_metric("val/*",
    step_metric="epoch")``), as ``{metric: step metric}``, by the run's own matching rules
    (``core.metrics``: an exact name, else the first glob that matches) applied to the definitions the
    run keeps in its metadata; only step metrics that are charted too."""
    from tracker_jupyter.core.metrics import Metric, MetricDefinitions

    rules = MetricDefinitions()
    for definition in definitions:
        try:
            rules.define(Metric(**definition), overwrite=True)
        except TypeError:  # not a definition's shape: left out
            continue
    present = set(names)
    out = {}
    for name in present:
        metric = rules.of(name)
        step = metric.step_metric if metric is not None else None
        if isinstance(step, str) and step in present and step != name:
            out[name] = step
    return out
