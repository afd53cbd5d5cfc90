"""Axes and smoothing: the snapshot's (``display.scales``) and the live charts' (``static/charts.js``, run
in the Node.js that ships with Playwright) give the same ticks, labels and smoothed values."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tracker_jupyter.display import figure, scales
from tracker_jupyter.display.charts import MinMaxSeries

CHARTS_JS = Path(scales.__file__).with_name("static") / "charts.js"

PAIR_NAMES = [
    "train/loss",
    "val/loss",
    "loss",
    "val_loss",
    "train/acc",
    "Train_acc",
    "valid_acc",
    "eval/loss",
    "testing/x",
    "test",
    "val/only",
]

LOOKUP_STEPS = [-5, 0, 3, 50, 99, 100, 101, 150, 420, 999, 5000]


def _epoch_buckets() -> list[list[Any]]:
    """An ``epoch`` step metric logged every 100 steps (0..9), in buckets of a few points each."""
    series = MinMaxSeries(4)
    series.extend(range(0, 1000, 100), [float(e) for e in range(10)], [0.0] * 10)
    return series.buckets()


RANGES = [
    (0.013, 403.0, 5),
    (0, 1, 4),
    (0.95, 1.05, 4),
    (-3.2, 7.9, 5),
    (0, 137, 3),
    (5, 5, 4),
    (1e6, 3.2e6, 5),
]


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    for lo, hi, count in RANGES:
        ticks = scales.nice_ticks(lo, hi, count)
        assert ticks.lo <= lo and ticks.hi >= hi
        assert ticks.values[0] == ticks.lo and math.isclose(ticks.values[-1], ticks.hi)
        unit = ticks.step / 10 ** math.floor(math.log10(ticks.step))
        assert round(unit, 9) in (1, 2, 5)
        assert count // 2 <= len(ticks.values) - 1 <= count * 2 + 1, (lo, hi, ticks)
    assert scales.nice_ticks(0.013, 403, 5).values == (0, 100, 200, 300, 400, 500)
    assert scales.nice_ticks(5, 5).lo < 5 < scales.nice_ticks(5, 5).hi  # a flat series sits in a band


def test_log_ticks_are_decades() -> None:
    assert scales.log_ticks(1.0, 403.0).values == (1, 10, 100, 1000)
    assert scales.log_ticks(0.2, 2.5).values == (0.1, 0.2, 0.5, 1, 2, 5, 10)  # two decades: 2 and 5 too
    assert scales.log_ticks(0.02, 2.5).values == (0.01, 0.1, 1, 10)
    one = scales.log_ticks(3.0, 3.0)
    assert one.lo <= 3 <= one.hi and len(one.values) >= 2


def test_time_ticks_fall_on_round_clock_times() -> None:
    start = 1_764_771_000_000.0  # a whole minute
    ticks = scales.time_ticks(start + 7_000, start + 7_000 + 9 * 60_000, 5)
    assert ticks.step == 120_000 and all(v % 60_000 == 0 for v in ticks.values)
    assert scales.duration_label(185) == "3m05s" and scales.duration_label(0.25) == "250ms"


def test_tick_labels() -> None:
    assert [scales.format_tick(v, 0.2) for v in (0.0, 0.2, 0.4)] == ["0", "0.2", "0.4"]
    assert scales.format_tick(12_500, 2500) == "12.5k" and scales.format_tick(3_000_000, 1e6) == "3M"
    assert scales.format_tick(0.0005, 0.0005) == "5e-4"
    assert scales.format_tick(100, 100) == "100"


def test_smoothing_of_buckets_matches_smoothing_of_the_raw_steps() -> None:
    values = [math.sin(i / 7) + (i % 5) * 0.1 for i in range(400)]
    raw = scales.smooth([(i, v, 1) for i, v in enumerate(values)], 0.9)
    # the same series in buckets of 4 steps, each standing for its mean
    buckets = [(i * 4 + 1.5, sum(values[i * 4 : i * 4 + 4]) / 4, 4) for i in range(100)]
    bucketed = scales.smooth(buckets, 0.9)
    for (_, coarse), i in zip(bucketed[10:], range(10, 100), strict=True):
        assert abs(coarse - raw[i * 4 + 3][1]) < 0.08
    assert scales.smooth([(0, 1.0, 1), (1, 3.0, 1)], 0.0) == [(0, 1.0), (1, 3.0)]
    assert scales.smooth([(0, 2.0, 1)], 0.99) == [(0, 2.0)]  # debiased: the first value is itself


def _node(script: str) -> Any:
    from playwright._impl._driver import compute_driver_executable

    node = compute_driver_executable()[0]
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def test_the_live_charts_compute_the_same_axes_and_smoothing() -> None:
    means = [[i, math.cos(i / 5), None] for i in range(50)]
    script = f"""
import * as c from {json.dumps(CHARTS_JS.as_uri())};
const ranges = {json.dumps(RANGES)};
const out = {{
  nice: ranges.map(([lo, hi, n]) => c.niceTicks(lo, hi, n)),
  log: [c.logTicks(1, 403).ticks, c.logTicks(0.2, 2.5).ticks],
  labels: [c.formatTick(0, 0.2), c.formatTick(0.4, 0.2), c.formatTick(12500, 2500), c.formatTick(0.0005, 0.0005)],
  smooth: c.smooth({json.dumps(means)}, 0.8).map((p) => p[1]),
  sections: ["train/loss", "loss", "/x", "system/gpu.0.util"].map(c.sectionOf),
  match: ["^VAL/", "acc[", ""].map((q) => ["val/loss", "train/val/x", "acc[top5]"].map(c.matcher(q))),
  pairs: [...c.pairGroups({json.dumps(PAIR_NAMES)})].map(([id, g]) => [id, g.title, g.members]),
  lookup: {json.dumps(LOOKUP_STEPS)}.map(c.stepLookup({json.dumps(_epoch_buckets())})),
  pairSection: c.PAIR_SECTION,
}};
console.log(JSON.stringify(out));
"""
    js = _node(script)
    for (lo, hi, count), got in zip(RANGES, js["nice"], strict=True):
        want = scales.nice_ticks(lo, hi, count)
        assert got["lo"] == pytest.approx(want.lo) and got["hi"] == pytest.approx(want.hi), (lo, hi)
        assert got["ticks"] == pytest.approx(list(want.values))
    assert js["log"][0] == pytest.approx(list(scales.log_ticks(1, 403).values))
    assert js["log"][1] == pytest.approx(list(scales.log_ticks(0.2, 2.5).values))
    assert js["labels"] == [scales.format_tick(0, 0.2), "0.4", "12.5k", "5e-4"]
    want = [y for _, y in scales.smooth([(x, y, 1) for x, y, _ in means], 0.8)]
    assert js["smooth"] == pytest.approx(want)
    assert js["sections"] == [figure.section_of(n) for n in ["train/loss", "loss", "/x", "system/gpu.0.util"]]
    # a regex when it is one (case-insensitive), else a plain substring
    assert js["match"] == [[True, False, False], [False, False, True], [True, True, True]]
    # a step metric's value at a step: the same, inside buckets, between them and beyond the ends
    want_x = [scales.step_lookup(_epoch_buckets())(step) for step in LOOKUP_STEPS]
    assert js["lookup"] == pytest.approx(want_x)
    assert want_x[0] == 0 and want_x[-1] == 9 and want_x == sorted(want_x)
    # train/val pairs: the same groups, in the same order, in the same section
    want_pairs = [[k, title, members] for k, (title, members) in figure.pair_groups(PAIR_NAMES).items()]
    assert js["pairs"] == want_pairs and js["pairSection"] == figure.PAIR_SECTION
    assert want_pairs == [
        ["/loss", "loss", ["train/loss", "val/loss", "eval/loss"]],
        ["_loss", "loss", ["loss", "val_loss"]],
        ["_acc", "acc", ["Train_acc", "valid_acc"]],
    ]


def test_snapshot_chart_has_round_ticks_gridlines_and_escaped_text() -> None:
    series = MinMaxSeries(64)
    series.extend(range(200), [403 * 0.97**i + 1 for i in range(200)], [1000.0 * i for i in range(200)])
    tile = figure.chart_tile('<img src=x onerror="alert(1)">', series, log=True)
    assert "<img src=x" not in tile and "&lt;img src=x" in tile
    labels = re.findall(r"text-align:right;opacity:0.78\">([^<]+)<", tile)
    assert labels == ["1", "10", "100", "1000"]
    svg = base64.b64decode(tile.split("base64,")[1].split('"')[0]).decode()
    assert svg.count("<line") >= 4 + 2 and "<text" not in svg  # gridlines; all text is HTML around it
    assert "step · log y" in tile
