"""The run widget's media: images (with a step slider and galleries), histograms over steps, tables and
``plot.*`` charts, drawn in the browser by the ``media`` part of ``static/charts.js``.

``MediaFeed`` keeps, per key, the media values the writer handed over (``RunFeed`` passes it the values
that are not numbers), at most ``MAX_STEPS`` steps a key: when a key has more, every other one of the
older half is dropped, so the slider still reaches from the first step to the newest. ``media_state``
turns that into what the browser draws: image files as data URIs (within ``IMAGE_BUDGET`` bytes, the
newest first), a histogram's counts and edges, a table's or chart's first ``TABLE_ROWS`` rows read from
its file. Videos stay the widget's own (``ipywidgets.Video``).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tracker_jupyter.display import figure, scales
from tracker_jupyter.display.charts import PALETTE, MinMaxSeries, escape, format_number
from tracker_jupyter.display.figure import MUTED

__all__ = ["KINDS", "MediaFeed", "media_state"]

KINDS = frozenset({"image", "media-list", "histogram", "table-file", "incremental-table-file", "chart"})
MAX_STEPS = 64  # steps kept a key
MAX_KEYS = 48
IMAGE_BUDGET = 4 << 20  # bytes of image data a state holds (data URIs), the newest images first
IMAGE_MAX_BYTES = 2 << 20  # an image file larger than this is named, not sent
TABLE_ROWS = 500  # rows of a table or chart sent to the browser
MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp"}


class MediaFeed:
    """What the widget knows of a run's media: per key, its kind and (step, value) pairs, bounded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.version = 0

    def add(self, key: str, values: Sequence[Any], steps: Sequence[int]) -> None:
        """Values of one key (``RunFeed`` calls this, with its lock held, for values that are not numbers)."""
        found = [
            (s, v) for s, v in zip(steps, values, strict=False) if type(v) is dict and v.get("_type") in KINDS
        ]
        if not found:
            return
        with self.lock:
            kept = self.keys.get(key)
            if kept is None:
                if len(self.keys) >= MAX_KEYS:
                    return
                kept = self.keys[key] = []
            kept.extend(found)
            while len(kept) > MAX_STEPS:  # thin the older half: the first and the newest stay
                half = len(kept) // 2
                kept[:half] = kept[:half:2]
            self.version += 1


def _kind(value: dict[str, Any]) -> str:
    kind = value.get("_type")
    if kind == "media-list":
        return "gallery" if value.get("kind") == "image" else "list"
    if kind in ("table-file", "incremental-table-file"):
        return "table"
    return str(kind)


def _file(run_dir: Path | None, value: dict[str, Any]) -> Path | None:
    """The file a media reference names, under the run, when it is there."""
    path = run_dir / str(value["path"]) if run_dir is not None and value.get("path") else None
    return path if path is not None and path.is_file() else None


def _image(run_dir: Path | None, value: dict[str, Any], budget: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "caption": value.get("caption"), "w": value.get("width"), "h": value.get("height"),
        "name": Path(str(value.get("path") or "")).name,
    }  # fmt: skip
    mime = MIME.get(str(value.get("format", "")).lower())
    path = _file(run_dir, value)
    if mime is None or path is None:
        return out
    size = path.stat().st_size
    if size > IMAGE_MAX_BYTES or size > budget[0]:
        out["skipped"] = (
            "too large to show live" if size > IMAGE_MAX_BYTES else "left out: older than the shown ones"
        )
        return out
    budget[0] -= size
    out["src"] = f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return out


def _table(run_dir: Path | None, value: dict[str, Any]) -> dict[str, Any]:
    path = _file(run_dir, value)
    out: dict[str, Any] = {"rows": value.get("nrows"), "name": Path(str(value.get("path") or "")).name}
    if path is None:
        return out
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        out["error"] = "the table file could not be read"
        return out
    data = stored.get("data") or []
    out["columns"] = [str(c) for c in stored.get("columns") or []]
    out["data"] = [[_cell(c) for c in row] for row in data[:TABLE_ROWS]]
    out["rows"] = len(data)
    return out


def _cell(value: Any) -> Any:
    """A table cell as the browser shows it: numbers, strings, bools and None as they are; a media
    reference by its kind and file name; anything else as short JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, str) else value[:500]
    if isinstance(value, dict) and isinstance(value.get("_type"), str):
        return f"[{value['_type']}] {Path(str(value.get('path') or '')).name}".strip()
    return json.dumps(value, default=str)[:500]


def _payload(run_dir: Path | None, kind: str, value: dict[str, Any], budget: list[int]) -> dict[str, Any]:
    if kind == "image":
        return _image(run_dir, value, budget)
    if kind == "gallery":
        return {"items": [_image(run_dir, item, budget) for item in value.get("items") or []]}
    if kind == "histogram":
        return {"values": value.get("values"), "bins": value.get("bins")}
    if kind == "table":
        return _table(run_dir, value)
    if kind == "chart":
        table: dict[str, Any] = value["table"] if isinstance(value.get("table"), dict) else {}
        return {"chart": value.get("chart"), "title": value.get("title"), "fields": value.get("fields") or {},
                **_table(run_dir, table)}  # fmt: skip
    return {"count": value.get("count")}


def media_state(feed: MediaFeed, run_dir: Path | None) -> dict[str, Any]:
    """The browser's copy of ``feed``: ``{key: {kind, steps: [{step, ...payload}]}}``.

    Images are read newest first until ``IMAGE_BUDGET`` is spent (older ones are named, not sent);
    histograms send every kept step (for the heatmap); a table or chart shows its newest step, so only
    that one's rows are read and sent (the earlier steps are counted).
    """
    with feed.lock:
        keys = {key: list(entries) for key, entries in feed.keys.items()}
    budget = [IMAGE_BUDGET]
    out: dict[str, Any] = {}
    for key, entries in keys.items():
        kind = _kind(entries[-1][1])
        steps: list[dict[str, Any]] = []
        for i, (step, value) in enumerate(reversed(entries)):
            if _kind(value) != kind:
                continue
            full = kind in ("image", "gallery", "histogram") or i == 0
            steps.append({"step": step, **(_payload(run_dir, kind, value, budget) if full else {})})
        out[key] = {"kind": kind, "steps": steps[::-1]}
    return out


# ------------------------------------------------------------------------------------------- snapshot

SNAPSHOT_IMAGE_BYTES = 1 << 20  # image data kept in a saved notebook, the newest images first
SNAPSHOT_TABLE_ROWS = 10
SNAPSHOT_GALLERY = 8  # images of a gallery's newest step


def scale_for(width: Any) -> int:
    """How many times a small image is enlarged, by whole pixels (as the live widget does)."""
    if not isinstance(width, int) or width <= 0 or width >= 160:
        return 1
    return max(1, min(4, 320 // width))


def _figure_html(item: dict[str, Any], step: Any) -> str:

    parts = []
    if item.get("src"):
        scale = scale_for(item.get("w"))
        size = (
            f'width="{item["w"] * scale}" height="{item["h"] * scale}" '
            if item.get("w") and item.get("h")
            else ""
        )
        pixelated = "image-rendering:pixelated;" if scale > 1 else ""
        parts.append(
            f'<img src="{item["src"]}" {size}alt="{escape(item.get("caption") or item.get("name") or "image")}" '
            f'style="display:block;max-width:100%;height:auto;{pixelated}">'
        )
    if item.get("caption"):
        parts.append(f'<div style="font-style:italic">{escape(item["caption"])}</div>')
    meta = [
        f"{item['w']}×{item['h']}" if item.get("w") and item.get("h") else "",
        f"step {step}",
        item.get("name") or "",
    ]
    note = f" ({item['skipped']})" if item.get("skipped") and not item.get("src") else ""
    parts.append(
        f'<div style="{MUTED};font-size:11px">{escape(" · ".join(m for m in meta if m))}{escape(note)}</div>'
    )
    return f'<div style="display:inline-block;vertical-align:top;margin:0 10px 8px 0">{"".join(parts)}</div>'


def _heatmap_html(steps: list[dict[str, Any]]) -> str:
    """A histogram over steps as a static heatmap: a column per step, darker where more values fall."""

    cols = [s for s in steps if isinstance(s.get("values"), list) and isinstance(s.get("bins"), list)
            and len(s["bins"]) == len(s["values"]) + 1]  # fmt: skip
    if not cols:
        return ""
    lo, hi = min(c["bins"][0] for c in cols), max(c["bins"][-1] for c in cols)
    ticks = scales.nice_ticks(lo, hi if hi > lo else lo + 1, 4)
    width, height = 300, 110
    col_w = width / len(cols)

    def sy(v: float) -> float:
        return height - (v - ticks.lo) / ((ticks.hi - ticks.lo) or 1) * height

    rects = []
    for i, col in enumerate(cols):
        peak = max(col["values"]) or 1
        for j, n in enumerate(col["values"]):
            if n > 0:
                y0, y1 = sy(col["bins"][j + 1]), sy(col["bins"][j])
                rects.append(
                    f'<rect x="{i * col_w:.1f}" y="{y0:.1f}" width="{max(1.0, col_w - 0.5):.1f}" '
                    f'height="{max(0.5, y1 - y0):.1f}" fill="{PALETTE[0]}" fill-opacity="{0.12 + 0.88 * n / peak:.3f}"/>'
                )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{"".join(rects)}'
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" stroke="rgba(128,128,128,0.5)"/></svg>'
    )
    data = base64.b64encode(svg.encode()).decode("ascii")
    labels = "".join(
        f'<div style="position:absolute;left:0;top:{sy(t) - 8:.0f}px;width:44px;text-align:right;{MUTED}">'
        f"{escape(scales.format_tick(t, ticks.step))}</div>"
        for t in ticks.values
        if ticks.lo <= t <= ticks.hi
    )
    first, last = format_number(cols[0]["step"]), format_number(cols[-1]["step"])
    return (
        f'<div style="position:relative;width:{width + 50}px;height:{height + 4}px;font-size:11px">{labels}'
        f'<img src="data:image/svg+xml;base64,{data}" width="{width}" height="{height}" alt="histogram over steps" '
        f'style="position:absolute;left:50px;top:0"></div>'
        f'<div style="{MUTED};font-size:11px;margin-left:50px">steps {escape(first)} to {escape(last)} · '
        f"{len(cols)} steps · darker: more values in the bin</div>"
    )


def _table_html(entry: dict[str, Any]) -> str:

    columns, data = entry.get("columns") or [], entry.get("data") or []
    if not columns:
        return f'<div style="{MUTED}">{escape(entry.get("error") or entry.get("name") or "no rows")}</div>'

    def cell(v: Any) -> str:
        text = (
            ""
            if v is None
            else format_number(v)
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else str(v)
        )
        align = "right" if isinstance(v, (int, float)) and not isinstance(v, bool) else "left"
        return f'<td style="padding:1px 8px;text-align:{align}">{escape(text)}</td>'

    head = "".join(f'<th style="padding:1px 8px;text-align:left">{escape(c)}</th>' for c in columns)
    body = "".join(f"<tr>{''.join(cell(v) for v in row)}</tr>" for row in data[:SNAPSHOT_TABLE_ROWS])
    total = entry.get("rows") or len(data)
    return (
        f'<table style="border-collapse:collapse;font-size:12px;font-variant-numeric:tabular-nums">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f'<div style="{MUTED};font-size:11px">{min(len(data), SNAPSHOT_TABLE_ROWS)} of {total} rows</div>'
    )


LINE_CHARTS = ("line", "line_series", "pr_curve", "roc_curve")


def _x_at(xs: list[float]) -> Callable[[float], float]:
    """The x of a row number, for a chart drawn with rows as steps."""
    return lambda step: float(xs[min(len(xs) - 1, max(0, int(step)))])


def _chart_html(entry: dict[str, Any]) -> str:
    """A ``plot.*`` value in the snapshot: line-like charts drawn (a line per ``stroke`` group), a
    confusion matrix as a shaded table, the other kinds (bar, scatter, histogram) as their data."""
    kind, fields = entry.get("chart"), entry.get("fields") or {}
    columns, data = entry.get("columns") or [], entry.get("data") or []
    title = f"<div>{escape(entry.get('title') or '')}</div>" if entry.get("title") else ""

    def col(name: Any) -> int:
        return columns.index(name) if name in columns else -1

    if kind in LINE_CHARTS and col(fields.get("x")) >= 0 and col(fields.get("y")) >= 0:
        x, y, stroke = col(fields["x"]), col(fields["y"]), col(fields.get("stroke"))
        groups: dict[str, list[tuple[float, float]]] = {}
        for row in data:
            if all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for i in (x, y)):
                groups.setdefault(str(row[stroke]) if stroke >= 0 else "", []).append((row[x], row[y]))
        lines = []
        for i, (label, points) in enumerate(groups.items()):
            points.sort()
            series = MinMaxSeries()
            series.extend(range(len(points)), [p[1] for p in points], [0.0] * len(points))
            color = PALETTE[i % len(PALETTE)]
            lines.append(
                figure.Line(label or str(fields["y"]), series, color, None, _x_at([q[0] for q in points]))
            )
        if lines:
            return title + figure.chart_tile(str(fields["y"]), lines=lines, x_title=str(fields["x"]))
    if kind == "confusion_matrix":
        a, p, n = (col(fields.get(k, k)) for k in ("Actual", "Predicted", "nPredictions"))
        if min(a, p, n) >= 0:
            labels = list(dict.fromkeys(str(r[a]) for r in data))
            counts = {(str(r[a]), str(r[p])): r[n] for r in data if isinstance(r[n], (int, float))}
            peak = max(counts.values(), default=1) or 1
            head = "".join(f'<th style="padding:2px 8px">{escape(label)}</th>' for label in labels)
            rows = "".join(
                f'<tr><th style="padding:2px 8px;text-align:left">{escape(actual)}</th>'
                + "".join(
                    f'<td style="padding:2px 8px;text-align:right;background:rgba(31,119,180,'
                    f'{0.08 + 0.6 * counts.get((actual, pred), 0) / peak:.3f})">'
                    f"{escape(format_number(counts.get((actual, pred), 0)))}</td>"
                    for pred in labels
                )
                + "</tr>"
                for actual in labels
            )
            return (
                f'{title}<table style="border-collapse:collapse;font-size:12px"><tr><th style="padding:2px 8px">'
                f"actual \\ predicted</th>{head}</tr>{rows}</table>"
            )
    note = f'<div style="{MUTED};font-size:11px">{escape(kind or "chart")} chart: its data</div>'
    return title + note + _table_html(entry)


def media_snapshot(feed: MediaFeed, run_dir: Path | None) -> str:
    """The run's media in the static snapshot: per key, the newest image (or gallery) at its natural
    size with its caption, a histogram's heatmap over steps, a table's (or chart's) first rows."""

    with feed.lock:
        keys = {key: list(entries) for key, entries in feed.keys.items()}
    if not keys:
        return ""
    budget = [SNAPSHOT_IMAGE_BYTES]
    tiles = []
    for key, entries in reversed(list(keys.items())):  # the budget goes to the newest keys first
        step, value = entries[-1]
        kind = _kind(value)
        if kind == "histogram":
            body = _heatmap_html(
                [{"step": s, **_payload(run_dir, kind, v, budget)} for s, v in entries if _kind(v) == kind]
            )
        else:
            payload = _payload(run_dir, kind, value, budget)
            if kind == "image":
                body = _figure_html(payload, step)
            elif kind == "gallery":
                body = "".join(_figure_html(item, step) for item in payload["items"][:SNAPSHOT_GALLERY])
            elif kind == "chart":
                body = _chart_html(payload)
            elif kind == "table":
                body = _table_html(payload)
            else:
                body = f'<div style="{MUTED}">{escape(kind)}</div>'
        tiles.append(
            f'<div class="tj-media-snapshot" style="display:inline-block;vertical-align:top;margin:0 14px 10px 0;'
            f'max-width:100%"><div style="font-weight:600;font-size:12px">{escape(key)} '
            f'<span style="{MUTED};font-weight:400">{escape(kind)}</span></div>{body}</div>'
        )
    return (
        f'<details class="tj-section" data-section="media" open><summary style="font-weight:600;cursor:pointer">media '
        f'<span style="{MUTED};font-weight:400">({len(tiles)})</span></summary>{"".join(reversed(tiles))}</details>'
    )
