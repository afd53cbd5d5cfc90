"""Pure markup builders for the run widget and its static snapshot: downsampling, SVG charts, tables.

Nothing here imports IPython or ipywidgets, and nothing does I/O: every function takes plain data and
returns a string (or plain data), so all of it is tested without a frontend. Everything that came from a
user (run names, tags, metric names, config keys and values, error messages) goes through ``escape``
before it reaches markup, and values whose key looks like a credential are shown as ``SECRET_MASK``.
"""

from __future__ import annotations

import html
import math
import re
import reprlib
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tracker_jupyter.core.values import is_secret_key

__all__ = [
    "SECRET_MASK",
    "MinMaxSeries",
    "column_decimate",
    "escape",
    "flatten",
    "format_duration",
    "format_number",
    "format_value",
    "is_secret_key",
    "kv_table",
    "scrub",
]

SECRET_MASK = "••••••"
# the live charts' palette too (static/charts.js): a run keeps its colour in table, legend and lines
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
DEFAULT_CAPACITY = 256  # buckets per series: a chart is ~250 px wide, so more would not show

_NUMBER_TYPES = (int, float, bool)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(api[_-]?key|apikey|access[_-]?token|token|password|passwd|secret)(\s*[=:]\s*[\"']?)([^\s&\"',;]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{6,}")

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6
_short.maxlevel = 2


# ------------------------------------------------------------------------------------------ escaping


def escape(text: Any) -> str:
    """``text`` as HTML text or attribute value: ``<``, ``>``, ``&`` and both quotes are entities."""
    return html.escape(str(text), quote=True)


def scrub(text: str) -> str:
    """``text`` with credentials removed: ``user:pass@`` in URLs, ``token=...``, ``Bearer ...``."""
    text = _URL_USERINFO.sub(r"\1***@", text)
    text = _SECRET_ASSIGNMENT.sub(r"\1\2***", text)
    return _BEARER.sub(r"\1 ***", text)


# ------------------------------------------------------------------------------------------- numbers


def format_number(value: float | int | None) -> str:
    """A short, readable number: ``12``, ``1,234``, ``0.0123``, ``1.23e+07``, ``nan``, ``—`` for None."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) < 10**12 else f"{value:.3e}"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    return f"{value:.4g}"


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``2h 03m``, ``1d 4h``; ``—`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_value(value: Any, key: str = "") -> str:
    """A config or summary value as short text (numbers formatted, the rest a bounded repr).

    The work is bounded too: a 10 MB list costs no more than a short one.
    """
    if key and is_secret_key(key):
        return SECRET_MASK
    if isinstance(value, (int, float)) or value is None:
        return format_number(value)
    if isinstance(value, str):
        return scrub(value if len(value) <= 80 else value[:79] + "…")
    return _short.repr(value)


# -------------------------------------------------------------------------------------- downsampling


class MinMaxSeries:
    """A metric's history in at most ``capacity`` buckets of steps, each keeping first, last, min and max.

    Memory is fixed whatever the number of steps: when a step falls past the last bucket, every two
    neighbouring buckets are merged and a bucket covers twice as many steps. Because each bucket keeps its
    extremes, a spike of one step survives any amount of merging, so the drawn line keeps its shape.
    Non-numeric values, NaN and infinities are never drawn; ``skipped`` counts them (a NaN between two
    finite values of a batch is dropped without being counted, which keeps the common path fast).

    Parameters
    ----------
    capacity
        The most buckets kept; ``points()`` returns at most four points per bucket.
    """

    __slots__ = (
        "_buckets",
        "capacity",
        "changed_from",
        "count",
        "generation",
        "last",
        "last_step",
        "origin",
        "skipped",
        "vmax",
        "vmin",
        "width",
    )

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.capacity = capacity
        self.width = 1  # steps per bucket, a power of two
        self.origin: int | None = None  # the first step seen; bucket i covers origin + [i*width, (i+1)*width)
        # bucket index -> [first step, last step, first time, last time, first y, last y, min y, max y, n, sum]
        self._buckets: dict[int, list[Any]] = {}
        self.generation = 0  # the number of times the buckets were merged pairwise (``_halve``)
        self.changed_from: int | None = 0  # the lowest bucket changed since ``take_changes``; None: none
        self.count = 0
        self.skipped = 0
        self.last: float | None = None
        self.last_step = -1
        self.vmin: float | None = None
        self.vmax: float | None = None

    def __len__(self) -> int:
        return len(self._buckets)

    def add(self, step: int, value: Any, time_ms: float = 0.0) -> None:
        """Add one point."""
        self.extend([step], [value], [time_ms])

    def extend(self, steps: Sequence[int], values: Sequence[Any], times: Sequence[float]) -> None:
        """Add points in step order; ``steps`` may be a ``range`` (the fast path for consecutive steps).

        The work per point is two C-level comparisons (``min``/``max`` over slices), so feeding a batch of
        thousands of rows costs little time under the GIL of the loop that logs them.
        """
        n = len(values)
        if n == 0:
            return
        if self.origin is None:
            self.origin = int(steps[0])
        while (int(steps[-1]) - self.origin) // self.width >= self.capacity:
            self._halve()
        consecutive = isinstance(steps, range) and steps.step == 1
        i = 0
        while i < n:
            idx = max(0, (int(steps[i]) - self.origin) // self.width)
            while idx >= self.capacity:  # a step out of order beyond the last bucket
                self._halve()
                idx = max(0, (int(steps[i]) - self.origin) // self.width)
            next_bucket_step = self.origin + (idx + 1) * self.width
            if consecutive:
                j = min(n, i + next_bucket_step - int(steps[i]))
            else:
                j = max(i + 1, bisect_left(steps, next_bucket_step, i, n))  # type: ignore[arg-type]
            self._absorb(idx, steps, values, times, i, j)
            i = j

    def _absorb(
        self, idx: int, steps: Sequence[int], values: Sequence[Any], times: Sequence[float], i: int, j: int
    ) -> None:
        if i == 0 and j == len(values) and isinstance(values, list):
            chunk = values  # the whole batch falls in one bucket: no copy
        else:
            chunk = list(values[i:j])
        try:
            lo = min(chunk)
            hi = max(chunk)
            # min/max skip a NaN unless it comes first, and keep an infinity: both send us the slow way.
            clean = math.isfinite(lo) and math.isfinite(hi) and chunk[-1] == chunk[-1]
            total = sum(chunk) if clean else 0.0
        except (TypeError, OverflowError):  # strings, None or lists mixed in; an int too big for a float
            clean = False
        if clean:
            first, last = i, j - 1
            ys: Sequence[Any] = chunk
        else:
            kept = [k for k in range(i, j) if _finite(values[k])]
            self.skipped += (j - i) - len(kept)
            if not kept:
                return
            first, last = kept[0], kept[-1]
            ys = [float(values[k]) for k in kept]
            lo, hi = min(ys), max(ys)
            total = sum(ys)
        bucket = [int(steps[first]), int(steps[last]), times[first], times[last], ys[0], ys[-1], lo, hi]
        self._merge(idx, [*bucket, len(ys), total])

    def _merge(self, idx: int, new: list[Any]) -> None:
        self.count += new[8]
        if new[1] >= self.last_step:
            self.last_step = new[1]
            self.last = new[5]
        self.vmin = new[6] if self.vmin is None else min(self.vmin, new[6])
        self.vmax = new[7] if self.vmax is None else max(self.vmax, new[7])
        old = self._buckets.get(idx)
        self._buckets[idx] = new if old is None else _combine(old, new)
        if self.changed_from is None or idx < self.changed_from:
            self.changed_from = idx

    def _halve(self) -> None:
        merged: dict[int, list[Any]] = {}
        for idx in sorted(self._buckets):
            bucket = self._buckets[idx]
            into = merged.get(idx // 2)
            merged[idx // 2] = bucket if into is None else _combine(into, bucket)
        self._buckets = merged
        self.width *= 2
        self.generation += 1
        # A copy elsewhere (the browser's) merges its buckets the same way; what changed since it was
        # sent lands in the merged buckets from half the index on.
        if self.changed_from is not None:
            self.changed_from //= 2

    def buckets(self, start: int = 0) -> list[list[Any]]:
        """The buckets from index ``start`` on, in index order, each as ``[index, *bucket]``:
        ``[index, first step, last step, first time, last time, first, last, min, max, n, sum]``."""
        return [[idx, *self._buckets[idx]] for idx in sorted(self._buckets) if idx >= start]

    def take_changes(self) -> int | None:
        """The lowest bucket index changed since the last call (None if nothing changed), and forget it."""
        start, self.changed_from = self.changed_from, None
        return start

    def points(self, axis: str = "step") -> list[tuple[float, float]]:
        """The series to draw: up to four points a bucket (first, min, max, last), in x order.

        ``axis`` is ``"step"`` (x is the step) or ``"time"`` (x is the row's timestamp in ms).
        """
        out: list[tuple[float, float]] = []
        by_time = axis == "time"
        for idx in sorted(self._buckets):
            s0, s1, t0, t1, first, last, lo, hi, n, _ = self._buckets[idx]
            x0, x1 = (t0, t1) if by_time else (s0, s1)
            out.append((x0, first))
            if n > 2:
                middle = (x0 + x1) / 2
                # Going first -> nearer extreme -> farther extreme -> last draws the bucket's range once.
                pair = (hi, lo) if hi - first < first - lo else (lo, hi)
                out.append((middle, pair[0]))
                out.append((middle, pair[1]))
            if n > 1:
                out.append((x1, last))
        return out


def _finite(value: Any) -> bool:
    if type(value) not in _NUMBER_TYPES:
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _combine(a: list[Any], b: list[Any]) -> list[Any]:
    """Two buckets as one; ``a`` normally holds the earlier steps, but either order gives the same result."""
    if b[0] < a[0]:
        a, b = b, a
    later = b if b[1] >= a[1] else a
    return [
        a[0], later[1], a[2], later[3], a[4], later[5], min(a[6], b[6]), max(a[7], b[7]), a[8] + b[8], a[9] + b[9],
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- svg


def column_decimate(pixels: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """At most two points per pixel column (its lowest and highest), plus the very first and last."""
    if len(pixels) <= 4:
        return pixels
    out = [pixels[0]]
    column = int(pixels[0][0])
    lo = hi = pixels[0]
    entry_y = pixels[0][1]
    for point in pixels[1:]:
        col = int(point[0])
        if col != column:
            _emit_column(out, lo, hi, entry_y)
            column, lo, hi, entry_y = col, point, point, point[1]
            continue
        if point[1] < lo[1]:
            lo = point
        if point[1] > hi[1]:
            hi = point
    _emit_column(out, lo, hi, entry_y)
    if out[-1] != pixels[-1]:
        out.append(pixels[-1])
    return out


def _emit_column(
    out: list[tuple[float, float]], lo: tuple[float, float], hi: tuple[float, float], entry_y: float
) -> None:
    pair = (hi, lo) if hi[1] - entry_y < entry_y - lo[1] else (lo, hi)
    for point in pair:
        if point != out[-1]:
            out.append(point)


# ------------------------------------------------------------------------------------------- markup


def kv_table(items: Iterable[tuple[str, Any]], *, limit: int = 200, empty: str = "nothing yet") -> str:
    """A two-column table of keys and short values; secret-looking keys are masked, the rest escaped."""
    rows = []
    more = 0
    for i, (key, value) in enumerate(items):
        if i >= limit:
            more += 1
            continue
        rows.append(
            '<tr><td style="text-align:left;padding:1px 12px 1px 0;font-family:monospace">'
            f'{escape(key)}</td><td style="text-align:left;font-family:monospace">'
            f"{escape(format_value(value, key))}</td></tr>"
        )
    if not rows:
        return f'<div style="opacity:0.78;font:12px sans-serif">{escape(empty)}</div>'
    tail = f'<div style="opacity:0.78;font:11px sans-serif">… and {more:,} more</div>' if more else ""
    # line-height is set because a widget's HTML inherits the 28 px line of its inline controls.
    return f'<table style="border-collapse:collapse;font-size:12px;line-height:1.4">{"".join(rows)}</table>{tail}'


def flatten(mapping: Mapping[str, Any], prefix: str = "", *, depth: int = 3) -> list[tuple[str, Any]]:
    """Nested dicts as ``a.b.c`` keys (up to ``depth`` levels; deeper values stay dicts)."""
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth > 1 and value and not is_secret_key(str(key)):
            out.extend(flatten(value, f"{name}.", depth=depth - 1))
        else:
            out.append((name, value))
    return out
