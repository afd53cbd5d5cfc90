"""The live charts in a real JupyterLab and Chromium, in the light and dark themes: hover readout, log
scale, smoothing, zoom, sections and the filter, text contrast computed in the page, and the snapshot.

Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.lab import JupyterLab, open_notebook, save_screenshot
from tests.support.page_checks import assert_readable, page_errors, set_theme

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

INIT = """\
import math, time
import tracker_jupyter
run = tracker_jupyter.init(
    project="charts", dir={store!r}, mode="offline", name="resnet-baseline",
    config={{"lr": 0.01}}, settings={{"widget_fps": 4, "flush_interval": 0.1}},
)
run.define_metric("val/*", step_metric="epoch")
"""

# Logs while the page looks: 80 steps over about 4 s.
LOOP = """\
for i in range(80):
    run.log({
        "train/loss": 2.5 * math.exp(-i / 20) + 0.05 * math.sin(i),
        "train/acc": 1 - math.exp(-i / 25),
        "val/loss": 2.6 * math.exp(-i / 22),
        "perplexity": 403 * math.exp(-i / 12) + 1,
        "lr": 0.01 * (0.97 ** i),
        "epoch": i // 10,
    })
    time.sleep(0.05)
"""

FINISH = "run.finish()\n"


def _tile(widget: Locator, metric: str) -> Locator:
    return widget.locator(f'.tj-tile[data-metric="{metric}"]')


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_live_charts_are_interactive_and_readable(page: Page, jupyter_lab: JupyterLab, theme: str) -> None:
    errors = page_errors(page)
    store = str(jupyter_lab.root / f"store-{theme.split()[-1].lower()}")
    jupyter_lab.write_notebook("charts.ipynb", [INIT.format(store=store), LOOP, FINISH])
    notebook = open_notebook(page, jupyter_lab, "charts.ipynb")
    set_theme(page, theme)
    notebook.run_cell(0)
    notebook.wait_for_cell_done(0)
    notebook.run_cell(1)
    widget = notebook.wait_for_output(0, ".tracker-run")
    _tile(widget, "perplexity").locator("path.tj-raw").wait_for()

    # sections by prefix, unprefixed first; while the loop runs the charts redraw
    sections = widget.locator(".tj-charts details.tj-section")
    sections.first.wait_for()
    redraws = int(widget.locator(".tj-charts").get_attribute("data-redraws") or 0)
    notebook.wait_for_cell_done(1)
    assert int(widget.locator(".tj-charts").get_attribute("data-redraws") or 0) > redraws
    assert [s.get_attribute("data-section") for s in sections.all()] == ["charts", "train", "val"]
    assert widget.locator(".tj-tile").count() == 6
    # the cell that logged shows a live view of the same widget below it
    follower = notebook.wait_for_output(1, ".tracker-run")
    _tile(follower, "perplexity").locator("path.tj-raw").wait_for()
    assert follower.locator(".tj-tile").count() == 6

    # val/* was defined with epoch as its step metric: drawn against it, and epoch is an x choice
    val_title = _tile(widget, "val/loss").locator("text.tj-axis-title")
    page.wait_for_function(
        "el => [...el.querySelectorAll('text.tj-axis-title')].some(t => t.textContent === 'epoch')",
        arg=_tile(widget, "val/loss").element_handle(),
    )
    assert "epoch" in val_title.all_text_contents()
    assert "x: epoch" in widget.locator("select.tj-select option").all_text_contents()

    # round ticks and an axis title
    ppl = _tile(widget, "perplexity")
    ppl.locator("path.tj-raw").wait_for()
    ticks = ppl.locator("text.tj-tick").all_text_contents()
    assert "0" in ticks and "100" in ticks and "400" in ticks, ticks
    assert "step" in ppl.locator("text.tj-axis-title").all_text_contents()

    # hover readout: run, step and value
    svg = ppl.locator("svg.tj-svg")
    box = svg.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4)
    tip = ppl.locator(".tj-tip")
    tip.wait_for(state="visible")
    readout = tip.inner_text()
    assert "resnet-baseline" in readout and "step" in readout and "value" in readout, readout
    save_screenshot(page, f"test_charts_browser-hover-{theme.split()[-1].lower()}")
    page.mouse.move(0, 0)

    assert_readable(widget, f"live widget in {theme}")

    # log scale: the perplexity axis in decades
    widget.locator("input.tj-log").check()
    page.wait_for_function(
        "el => [...el.querySelectorAll('text.tj-tick')].some(t => t.textContent === '1000')",
        arg=ppl.element_handle(),
    )
    assert "(log)" in " ".join(ppl.locator("text.tj-axis-title").all_text_contents())

    # smoothing: a smoothed line over a faint raw one
    widget.locator("input.tj-smoothing").fill("0.9")
    _tile(widget, "train/loss").locator("path.tj-smooth").wait_for()
    _tile(follower, "train/loss").locator("path.tj-smooth").wait_for()  # one model: both views follow
    assert _tile(widget, "train/loss").locator("path.tj-raw").get_attribute("stroke-opacity") == "0.3"

    # drag to zoom, double-click to reset
    loss = _tile(widget, "train/loss").locator("svg.tj-svg")
    loss.scroll_into_view_if_needed()
    lbox = loss.bounding_box()
    assert lbox is not None
    page.mouse.move(lbox["x"] + 80, lbox["y"] + 60)
    page.mouse.down()
    page.mouse.move(lbox["x"] + 180, lbox["y"] + 60, steps=5)
    page.mouse.up()
    reset = _tile(widget, "train/loss").get_by_role("button", name="reset zoom (or double-click)")
    reset.wait_for(state="visible")
    assert "zoomed" in " ".join(_tile(widget, "train/loss").locator("text.tj-axis-title").all_text_contents())
    loss.dblclick()
    reset.wait_for(state="hidden")

    # filter: a regex keeps the matching charts, and their sections
    widget.locator("input.tj-filter").fill("^val/|perp")
    page.wait_for_function(
        "el => [...el.querySelectorAll('.tj-tile')].filter(t => t.style.display !== 'none').length === 2",
        arg=widget.element_handle(),
    )
    assert widget.locator('details.tj-section[data-section="train"]').is_hidden()
    save_screenshot(page, f"test_charts_browser-filtered-{theme.split()[-1].lower()}")
    widget.locator("input.tj-filter").fill("")

    # train/val pairs on request: one chart with both lines and a legend, in a section of its own
    widget.locator("input.tj-pair").check()
    pair = widget.locator('details.tj-section[data-section="train · val"] .tj-tile')
    pair.locator("path.tj-raw").nth(1).wait_for()
    assert pair.count() == 1 and pair.locator(".tj-legend-item").count() == 2
    assert pair.locator(".tj-title").inner_text() == "loss"
    save_screenshot(page, f"test_charts_browser-pairs-{theme.split()[-1].lower()}")
    widget.locator("input.tj-pair").uncheck()
    _tile(widget, "val/loss").wait_for()

    # the snapshot at finish follows the chosen scale and smoothing, and reads well too
    notebook.run_cell(2)
    snapshot = notebook.wait_for_output(0, ".tracker-run-snapshot")
    own = 'details.tj-section:not([data-section="system"])'  # the sampler's section (closed) aside
    assert snapshot.locator(own).count() == 3
    assert "log y" in snapshot.inner_text() and "smoothing 0.90" in snapshot.inner_text()
    images = snapshot.locator(f"{own} .tj-chart img")
    assert images.count() == 6
    assert all(images.nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(6))
    assert_readable(snapshot, f"snapshot in {theme}")
    line = notebook.wait_for_output(1, ".tj-finished-line")  # the follower became one line
    assert "resnet-baseline" in line.inner_text() and "finished" in line.inner_text()
    assert notebook.outputs(1).locator(".jupyter-widgets").count() == 0
    assert_readable(line, f"finished line in {theme}", least=3)
    save_screenshot(page, f"test_charts_browser-snapshot-{theme.split()[-1].lower()}")
    assert not errors, errors
