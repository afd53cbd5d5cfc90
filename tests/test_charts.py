"""The pure markup builders: downsampling keeps the shape in bounded memory, SVG charts, escaping."""

from __future__ import annotations

import base64
import math
import re
import subprocess
import sys
import xml.dom.minidom

import pytest

from tracker_jupyter.display import charts, figure
from tracker_jupyter.display.charts import MinMaxSeries

XSS = '<img src=x onerror="window.__xss=1">'


def _feed(series: MinMaxSeries, values: list[float], start: int = 0, chunk: int = 1000) -> None:
    for i in range(0, len(values), chunk):
        part = values[i : i + chunk]
        steps = range(start + i, start + i + len(part))
        series.extend(steps, part, [float(s) * 10 for s in steps])


# ----------------------------------------------------------------------------------------- series


def test_series_is_bounded_whatever_the_number_of_steps() -> None:
    small, large = MinMaxSeries(capacity=64), MinMaxSeries(capacity=64)
    _feed(small, [math.sin(i / 50) for i in range(1_000)])
    _feed(large, [math.sin(i / 5_000) for i in range(100_000)])
    assert len(small) <= 64 and len(large) <= 64
    assert len(large.points()) <= 4 * 64
    assert large.count == 100_000 and large.width >= 100_000 / 64


def test_series_keeps_every_extreme_through_merges() -> None:
    values = [0.0] * 50_000
    values[12_345] = 9.5  # one-step spikes must survive any amount of merging
    values[40_001] = -7.25
    series = MinMaxSeries(capacity=32)
    _feed(series, values, chunk=777)
    ys = [y for _, y in series.points()]
    assert max(ys) == 9.5 and min(ys) == -7.25
    assert (series.vmin, series.vmax, series.last) == (-7.25, 9.5, 0.0)


def test_series_min_max_match_exact_values_per_bucket() -> None:
    import random

    rng = random.Random(7)
    values = [rng.gauss(0, 1) for _ in range(10_000)]
    series = MinMaxSeries(capacity=16)
    _feed(series, values, chunk=333)
    width = series.width
    for idx, bucket in series._buckets.items():
        chunk = values[idx * width : (idx + 1) * width]
        assert bucket[6] == min(chunk) and bucket[7] == max(chunk)
        assert bucket[4] == chunk[0] and bucket[5] == chunk[-1] and bucket[8] == len(chunk)


def test_series_points_are_in_x_order_on_both_axes() -> None:
    series = MinMaxSeries(capacity=20)
    _feed(series, [float(i % 17) for i in range(5_000)])
    for axis in ("step", "time"):
        xs = [x for x, _ in series.points(axis)]
        assert xs == sorted(xs)
    assert series.points("time")[-1][0] == 4_999 * 10


def test_series_skips_nan_inf_and_non_numbers() -> None:
    series = MinMaxSeries()
    series.extend(range(6), [math.nan, 1.0, "text", math.inf, None, 2.0], [0.0] * 6)
    series.extend([10, 11], [3, math.nan], [0.0, 0.0])
    series.extend([12, 13], [10**400, -(10**400)], [0.0, 0.0])  # ints no float can hold
    assert series.count == 3 and series.skipped == 7
    assert (series.vmin, series.vmax, series.last) == (1.0, 3, 3)


def test_series_sparse_and_out_of_order_steps() -> None:
    series = MinMaxSeries(capacity=8)
    series.extend([100, 5_000, 90_000], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    series.add(50, -1.0)  # before the first step seen: lands in the first bucket
    assert len(series) <= 8
    assert series.vmin == -1.0 and series.last == 3.0
    assert [x for x, _ in series.points()] == sorted(x for x, _ in series.points())


def test_series_single_point_and_empty() -> None:
    series = MinMaxSeries()
    assert series.points() == []
    series.add(3, 1.5, 1000.0)
    assert series.points() == [(3, 1.5)]


# --------------------------------------------------------------------------------------------- svg


def _path_points(svg: str) -> int:
    return sum(d.count("L") + 1 for d in re.findall(r' d="([^"]+)"', svg))


def _tile_svg(tile: str) -> str:
    return base64.b64decode(re.search(r"base64,([^\"]+)", tile)[1]).decode()


def test_snapshot_chart_is_well_formed_and_bounded_by_width() -> None:
    series = MinMaxSeries(capacity=1024)
    _feed(series, [math.sin(i / 30) for i in range(200_000)])
    svg = _tile_svg(figure.chart_tile("loss", series, width=250))
    xml.dom.minidom.parseString(svg)  # raises on malformed markup
    assert _path_points(svg) <= 2 * 200 + 4  # the plot is 200 px wide: two points a pixel column
    assert len(svg) < 8_000


def test_chart_size_does_not_grow_with_steps() -> None:
    sizes = []
    for steps in (2_000, 200_000):
        series = MinMaxSeries()
        _feed(series, [math.cos(i / (steps / 20)) for i in range(steps)], chunk=5_000)
        sizes.append(len(figure.chart_tile("loss", series)))
    assert sizes[1] < sizes[0] * 1.3


def test_snapshot_chart_draws_the_spike() -> None:
    series = MinMaxSeries(capacity=64)
    values = [0.0] * 1_000
    values[500] = 10.0
    _feed(series, values)
    svg = _tile_svg(figure.chart_tile("loss", series))
    path = re.search(r'<path d="([^"]+)"', svg)[1]
    ys = [float(y) for y in re.findall(r"[ML]?[\d.]+,([\d.]+)", path)]
    assert min(ys) <= 1  # the spike reaches the top of the plot (10 is the top tick)


def test_empty_and_flat_charts() -> None:
    assert "no data yet" in figure.chart_tile("loss", MinMaxSeries())
    flat = MinMaxSeries()
    flat.extend(range(10), [1.0] * 10, [0.0] * 10)
    svg = _tile_svg(figure.chart_tile("loss", flat))
    xml.dom.minidom.parseString(svg)
    assert "M" in re.search(r'<path d="([^"]+)"', svg)[1]


def test_time_axes_label_clock_and_elapsed_time() -> None:
    series = MinMaxSeries()
    start = 1_764_771_000_000.0
    series.extend(range(3), [1.0, 2.0, 3.0], [start, start + 60_000, start + 125_000])
    relative = figure.chart_tile("loss", series, axis="relative", origin_ms=start)
    assert ">1m00s<" in relative and ">2m00s<" in relative and "relative time" in relative
    clock = figure.chart_tile("loss", series, axis="time")
    assert re.search(r">\d\d:\d\d(:\d\d)?<", clock) and "wall time" in clock


# ------------------------------------------------------------------------------------- escaping


def test_chart_tile_escapes_the_metric_name() -> None:
    series = MinMaxSeries()
    series.add(0, 1.0)
    card = figure.chart_tile(XSS, series)
    assert "<img src=x" not in card and "&lt;img src=x onerror=&quot;" in card
    assert card.count("<img ") == 1  # the chart's own image, and only it


def test_kv_table_escapes_keys_and_values_and_masks_secrets() -> None:
    table = charts.kv_table(
        [(XSS, XSS), ("api_key", "sk-live-123"), ("db_password", "hunter2"), ("lr", 0.01), ("Token", 5)]
    )
    assert "<img" not in table
    for secret in ("sk-live-123", "hunter2", ">5<"):
        assert secret not in table
    assert table.count(charts.SECRET_MASK) == 3
    assert "0.01" in table


def test_kv_table_limits_rows() -> None:
    table = charts.kv_table([(f"k{i}", i) for i in range(500)], limit=10)
    assert table.count("<tr>") == 10 and "490 more" in table


def test_scrub_removes_credentials_from_messages() -> None:
    text = charts.scrub(
        "POST https://alice:s3cret@mlflow.example/api failed: token=abc123 Authorization: Bearer eyJhbGciOi"
    )
    assert "s3cret" not in text and "abc123" not in text and "eyJhbGciOi" not in text
    assert "mlflow.example" in text


def test_format_value_is_bounded() -> None:
    assert len(charts.format_value(list(range(1_000_000)))) < 100
    assert len(charts.format_value("x" * 10_000)) <= 80
    assert charts.format_value({"deep": {"deeper": {"deepest": 1}}})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (0, "0"),
        (1234, "1,234"),
        (0.000123456, "0.0001235"),
        (2.0, "2"),
        (math.nan, "nan"),
        (True, "True"),
    ],
)
def test_format_number(value: float, text: str) -> None:
    assert charts.format_number(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "—"), (42.9, "42s"), (185, "3m 05s"), (7380, "2h 03m"), (100_000, "1d 3h")]
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert charts.format_duration(seconds) == text


def test_charts_module_is_pure_stdlib() -> None:
    code = (
        "import sys, tracker_jupyter.display.charts, tracker_jupyter.display.widget;"
        "bad = [m for m in ('IPython', 'ipywidgets', 'numpy') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
