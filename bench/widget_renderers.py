"""Which code draws the live charts: plotly's ``FigureWidget`` against our renderer on anywidget, measured.

Both reach the browser the same way (anywidget: the JavaScript travels with the widget over the kernel's
comm). For each, in a real kernel and a real Chromium driving JupyterLab and Notebook 7:

- kernel import time: a fresh interpreter importing what the widget needs (best and median of 5);
- bytes sent to the browser: every kernel websocket frame the page receives (CDP ``Network``), split into
  building the widget (its code and first state) and the updates that follow;
- browser CPU per redraw: main-thread task time (CDP ``Performance.getMetrics`` ``TaskDuration``) over
  ``--seconds`` of 20 metrics updated ``--fps`` times a second, less the same page idling, per update;
- whether it renders: 20 charts drawn, no console errors.

Both draw the same data: each metric is the same ``MinMaxSeries`` (at most 256 buckets); plotly gets its
points (``MinMaxSeries.points``) as full arrays in one ``batch_update`` per tick, as a plotly user would;
ours gets the bucket deltas the run widget sends. Ours runs as the real run widget (``tracker_jupyter.init``
and ``run.log``), so its numbers include the header and details.

    .venv/bin/python bench/widget_renderers.py [--seconds 15] [--fps 4] [--apps lab,notebook]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.lab import CHROMIUM, CHROMIUM_ARGS, start_lab  # noqa: E402 - the servers the tests use

METRICS = 20

IMPORTS = {
    "ours": "from tracker_jupyter.display.panel import panel_class; panel_class()",
    "plotly": "import plotly.graph_objects as go; go.FigureWidget",
}

SETUP = {
    "ours": """\
import math, time
import tracker_jupyter
# the same 20 charts in one view as plotly's: no system metrics charts, no second view below the loop cell
run = tracker_jupyter.init(project="bench", dir={store!r}, mode="offline", name="renderers",
                           settings={{"widget_fps": {fps}, "system_metrics": False, "widget_follow": False}})
""",
    "plotly": """\
import math, time
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from tracker_jupyter.display.charts import MinMaxSeries
fig = go.FigureWidget(make_subplots(rows=5, cols=4, subplot_titles=[f"metric_{{i:02d}}" for i in range({n})]))
for i in range({n}):
    fig.add_scatter(x=[], y=[], mode="lines", row=i // 4 + 1, col=i % 4 + 1, showlegend=False)
fig.update_layout(height=1100, margin=dict(l=40, r=10, t=30, b=30))
series = [MinMaxSeries() for _ in range({n})]
display(fig)
""",
}

# The same data for both: per tick, 250 steps of 20 metrics.
LOOP = {
    "ours": """\
step = 0
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    for _ in range(250):
        run.log({{f"metric_{{i:02d}}": math.sin(step / (50 + i)) + i for i in range({n})}})
        step += 1
    time.sleep(1 / {fps})
run.parts.dashboard.redraws
""",
    "plotly": """\
step = 0
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    for _ in range(250):
        t = time.time() * 1000
        for i, s in enumerate(series):
            s.add(step, math.sin(step / (50 + i)) + i, t)
        step += 1
    with fig.batch_update():
        for i, s in enumerate(series):
            points = s.points()
            fig.data[i].x = [p[0] for p in points]
            fig.data[i].y = [p[1] for p in points]
    time.sleep(1 / {fps})
""",
}

DRAWN = {
    "ours": "() => document.querySelectorAll('.tracker-run .tj-tile svg path.tj-raw').length",
    "plotly": "() => document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length",
}


def import_times(kind: str, repeat: int = 5) -> list[float]:
    code = f"import time; t = time.perf_counter(); {IMPORTS[kind]}; print(time.perf_counter() - t)"
    out = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
        )
        out.append(float(done.stdout.strip()))
    return out


def _open(page: Any, lab: Any, app: str, name: str) -> None:
    url = f"{lab.url}{'lab/tree' if app == 'lab' else 'notebooks'}/{name}?reset&token={lab.token}"
    page.goto(url)
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
        timeout=60_000,
    )
    time.sleep(2)  # the kernel's first idle


def _run_cell(page: Any, index: int) -> None:
    page.evaluate(
        """index => { const panel = window.jupyterapp.shell.currentWidget;
            panel.content.activeCellIndex = index;
            void window.jupyterapp.commands.execute('notebook:run-cell'); }""",
        index,
    )


def _cell_done(page: Any, index: int, timeout: float = 120) -> None:
    page.wait_for_function(
        """index => { const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
            return cell.model.executionCount !== null && !cell.node.querySelector('.jp-InputPrompt')
              ?.textContent.includes('*'); }""",
        arg=index,
        timeout=timeout * 1000,
    )


def measure(browser: Any, lab: Any, app: str, kind: str, seconds: float, fps: float) -> dict[str, Any]:
    store = str(lab.root / f"store-{kind}")
    name = f"{kind}-{app}.ipynb"
    lab.write_notebook(
        name,
        [
            SETUP[kind].format(store=store, fps=fps, n=METRICS),
            LOOP[kind].format(seconds=seconds, fps=fps, n=METRICS),
            f"time.sleep({seconds})",
        ],
    )
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Performance.enable")
    received = [0]
    cdp.on(
        "Network.webSocketFrameReceived",
        lambda e: received.__setitem__(0, received[0] + len(e["response"]["payloadData"])),
    )

    def task_time() -> float:
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        return float(metrics["TaskDuration"])

    try:
        _open(page, lab, app, name)
        before_build = received[0]
        _run_cell(page, 0)
        _cell_done(page, 0)
        if kind == "ours":
            page.wait_for_function("() => document.querySelector('.tracker-run .tj-charts')", timeout=60_000)
        else:
            page.wait_for_function("() => document.querySelector('.js-plotly-plot')", timeout=60_000)
        time.sleep(2)
        build_bytes = received[0] - before_build
        # the same page idling, for the baseline
        idle_start = task_time()
        _run_cell(page, 2)
        _cell_done(page, 2)
        idle = task_time() - idle_start
        start_bytes, start_cpu, start_wall = received[0], task_time(), time.monotonic()
        _run_cell(page, 1)
        # the rate once the first second's catching-up is over: the last third of the loop
        page.wait_for_timeout(seconds * 2 / 3 * 1000)
        late_bytes, late_at = received[0], time.monotonic()
        page.wait_for_timeout(seconds / 3 * 1000 - 500)
        late_rate = (received[0] - late_bytes) / (time.monotonic() - late_at)
        _cell_done(page, 1)
        time.sleep(1)  # the last updates arrive and draw
        busy = task_time() - start_cpu
        wall = time.monotonic() - start_wall
        update_bytes = received[0] - start_bytes
        drawn = page.evaluate(DRAWN[kind])
        page.screenshot(path=str(REPO / "test-artifacts" / f"bench-renderers-{kind}-{app}.png"))
    finally:
        context.close()
        lab.shutdown_kernels()
    redraws = seconds * fps
    extra = max(0.0, busy - idle * wall / seconds)
    return {
        "build_bytes": build_bytes,
        "update_bytes_per_s": update_bytes / wall,
        "late_bytes_per_s": late_rate,
        "cpu_ms_per_redraw": extra / redraws * 1000,
        "cpu_share": busy / wall,
        "drawn": drawn,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--apps", default="lab,notebook")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    (REPO / "test-artifacts").mkdir(exist_ok=True)
    imports = {kind: import_times(kind) for kind in IMPORTS}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        for app in args.apps.split(","):
            base = tempfile.mkdtemp(prefix=f"tracker-renderers-{app}-")
            with start_lab(Path(base), app=app) as lab:
                for kind in ("ours", "plotly"):
                    results[(app, kind)] = measure(browser, lab, app, kind, args.seconds, args.fps)
                    print(f"  {app} {kind}: {json.dumps(results[(app, kind)])}", file=sys.stderr)
        browser.close()
    print(f"{METRICS} metrics, {args.fps:g} updates a second for {args.seconds:g} s, Chromium {CHROMIUM}\n")
    print(
        "| | kernel import: best / median | frontend | bytes to build the widget | update bytes/s "
        "| update bytes/s, last third | browser CPU per redraw | charts drawn | console errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (app, kind), r in results.items():
        times = imports[kind]
        print(
            f"| {kind} | {min(times) * 1000:.0f} ms / {statistics.median(times) * 1000:.0f} ms | "
            f"{'JupyterLab 4' if app == 'lab' else 'Notebook 7'} | {r['build_bytes'] / 1e6:.2f} MB | "
            f"{r['update_bytes_per_s'] / 1e3:.1f} kB | {r['late_bytes_per_s'] / 1e3:.1f} kB | {r['cpu_ms_per_redraw']:.1f} ms | {r['drawn']} / {METRICS} | "
            f"{len(r['errors'])} |"
        )


if __name__ == "__main__":
    main()
