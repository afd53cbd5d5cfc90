"""The run widget in a real JupyterLab and Chromium: live while the logging cell runs, a snapshot after.

Screenshots go to ``test-artifacts/``; runs are stored under the lab's root (a temporary directory).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from tests.support.lab import JupyterLab, assert_no_injected_script_ran, open_notebook, save_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

XSS_NAME = '<img src=x onerror="window.__xss = 1">'
XSS_KEY = '<img src=x onerror=self["__xss"]=2>'  # config keys cannot hold a "."

INIT = """\
import time
import tracker_jupyter
from tracker_jupyter.display import widget as dashboard

run = tracker_jupyter.init(
    project="browser", dir={store!r}, mode="offline", name={name!r}, tags=["<b>tag</b>"],
    config={{"lr": 0.01, {key!r}: {name!r}}}, settings={{"widget_fps": 4, "flush_interval": 0.1}},
)
dashboard.attach(run, get_ipython())  # init() attached it already: still one view in this cell
print("user print: init")
"""

# About 6 s of logging, so the page sees several redraws while the cell is busy.
LOOP = """\
import numpy as np
for i in range(60):
    run.log({{"loss": 1 / (i + 1), {name!r}: i % 7}})
    if i % 20 == 0:
        print(f"user print {{i}}")
    if i == 10:  # a recorded episode: the widget plays the newest video
        run.log({{"episode": tracker_jupyter.Video(np.zeros((4, 16, 16, 3), dtype=np.uint8), format="mp4")}})
    time.sleep(0.1)
"""

FINISH = """\
run.finish()
print("user print: finished")
"""

# One evaluate per sample, so a chart seen is paired with whether the loop was still running then.
SAMPLE = """panel => {
    const cells = panel.querySelectorAll('.jp-Notebook .jp-Cell');
    const path = cells[0].querySelector('.tracker-run .tj-tile svg path.tj-raw');
    const stats = cells[0].querySelector('.tracker-run .tj-tile .tj-stats');
    const running = cells[1].querySelector('.jp-InputPrompt').textContent.trim() === '[*]:';
    const video = cells[0].querySelector('.tracker-run video');
    return [path ? path.getAttribute('d') : null, stats ? stats.textContent : null, running,
            video ? video.src.startsWith('blob:') && video.controls : false];
}"""


def _assert_charts_drawn(snapshot: Locator, count: int) -> None:
    """The snapshot's charts are SVG images that the browser decoded and drew."""
    # the run's own charts: the system metrics' section (closed) has its own; matched by its charts'
    # names, since the sanitizer of an untrusted notebook drops data-* attributes
    images = snapshot.locator("details.tj-section").filter(has_not_text="system/").locator(".tj-chart img")
    assert images.count() == count
    for i in range(count):
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")


def test_widget_is_live_then_leaves_a_snapshot(page: Page, jupyter_lab: JupyterLab) -> None:
    store = str(jupyter_lab.root / "store-live")
    cells = [
        INIT.format(store=store, name=XSS_NAME, key=XSS_KEY),
        LOOP.format(name=XSS_NAME),
        FINISH,
    ]
    path = jupyter_lab.write_notebook("live_widget.ipynb", cells)
    notebook = open_notebook(page, jupyter_lab, "live_widget.ipynb")
    notebook.run_all()

    notebook.wait_for_output(0, ".tracker-run .tj-tile svg path.tj-raw")
    seen_while_running: list[str] = []
    stats_while_running: set[str] = set()
    deadline = time.monotonic() + 30
    video_played = False
    while time.monotonic() < deadline:
        d, stats, running, video = notebook.panel.evaluate(SAMPLE)
        video_played = video_played or (running and video)
        if not running and seen_while_running:
            break
        if running and d and d not in seen_while_running:
            seen_while_running.append(d)
            stats_while_running.add(stats)
            if len(seen_while_running) == 3:
                save_screenshot(page, "test_widget_browser-live")
        time.sleep(0.05)
    assert len(seen_while_running) >= 3, (
        f"the chart changed {len(seen_while_running)} times while the loop ran"
    )
    assert len(stats_while_running) >= 2  # the step counter moved too
    assert video_played  # the newest video, as a player with controls, while the loop ran
    assert notebook.outputs(0).locator(".tracker-run").count() == 1  # one widget, not a stream of outputs

    notebook.wait_for_cell_done(2)
    snapshot = notebook.wait_for_output(0, ".tracker-run-snapshot")
    assert notebook.outputs(0).locator(".jupyter-widgets").count() == 0  # the widget view is gone
    assert "finished" in snapshot.locator(".tj-state").inner_text()
    _assert_charts_drawn(snapshot, 2)
    summary = snapshot.locator("details", has_text="Summary").inner_text()
    assert "video · episode_11_" in summary and "'_type'" not in summary  # media by name, not its reference
    save_screenshot(page, "test_widget_browser-snapshot")

    # Everything the user supplied is text: the payloads show as typed and their handlers never ran.
    assert snapshot.locator(".tj-name").inner_text() == XSS_NAME
    assert snapshot.locator(".tj-chart .tj-chart-title").nth(1).get_attribute("title") == XSS_NAME
    assert notebook.outputs(0).locator('img:not([src^="data:image/svg+xml;base64,"])').count() == 0
    assert_no_injected_script_ran(page)

    # The user's own prints stay where they were.
    assert "user print: init" in notebook.output_text(0)
    assert all(f"user print {i}" in notebook.output_text(1) for i in (0, 20, 40))
    assert "user print: finished" in notebook.output_text(2)

    # What Lab saves is the snapshot, not a view of a widget that no longer exists.
    notebook.wait_for_idle()
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 15
    while "tracker-run-snapshot" not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    saved = json.loads(path.read_text())
    outputs = saved["cells"][0]["outputs"]
    displays = [o for o in outputs if o["output_type"] == "display_data"]
    assert len(displays) == 1 and set(displays[0]["data"]) == {"text/plain", "text/html"}
    assert "tracker-run-snapshot" in "".join(displays[0]["data"]["text/html"])
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)

    # Opened again as an untrusted file, the snapshot still renders: JupyterLab sanitizes untrusted HTML
    # (it would drop <svg> elements), and the charts, as images, and the escaped text survive it.
    copy = jupyter_lab.root / "snapshot_copy.ipynb"
    saved["metadata"]["copy"] = True  # other content than Lab signed at save: an untrusted notebook
    copy.write_text(json.dumps(saved))
    reopened = open_notebook(page, jupyter_lab, "snapshot_copy.ipynb")
    static = reopened.wait_for_output(0, ".tracker-run-snapshot")
    trusted = page.evaluate(
        """path => [...window.jupyterapp.shell.widgets('main')]
            .find(w => w.context?.path === path).content.model.cells.get(0).trusted""",
        "snapshot_copy.ipynb",
    )
    assert trusted is False
    _assert_charts_drawn(static, 2)
    assert static.locator(".tj-name").inner_text() == XSS_NAME
    save_screenshot(page, "test_widget_browser-untrusted")
    assert page.evaluate("() => window.__xss") is None
