"""The run widget's media in a real JupyterLab and Chromium: a small image at a whole-pixel scale (never
blurred) with its caption apart from its details, the step slider through earlier images, a gallery, a
histogram as a heatmap over steps, a paged and sortable table, ``plot.*`` charts; readable in both
themes, no console errors.

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

CELL = """\
import numpy as np, tracker_jupyter as tj
run = tj.init(project="media", dir={store!r}, mode="offline", name="media-run")
rng = np.random.default_rng(0)
def pic(i):
    pixels = np.zeros((8, 12, 3), dtype=np.uint8)
    pixels[:, : i + 1] = 255
    return tj.Image(pixels, caption=f"<b>frame {{i}}</b>")
for step in range(20):
    row = {{"loss": 1 / (step + 1), "weights": tj.Histogram(rng.normal(step / 5, 1, 500))}}
    if step % 4 == 0:
        row["frame"] = pic(step // 4)
    run.log(row)
run.log({{"samples": [pic(1), pic(2), pic(3)]}})
table = tj.Table(columns=["id", "score", "label"], data=[[i, (i * 37) % 23, f"c{{i % 3}}"] for i in range(25)])
run.log({{"preds": table, "score_by_id": tj.plot.line(table, "id", "score", title="score by id"),
          "per_label": tj.plot.bar(tj.Table(columns=["label", "n"], data=[["a", 3], ["b", 5]]), "label", "n",
                                   title="counts"),
          "cm": tj.plot.confusion_matrix(y_true=[0, 1, 1, 0], preds=[0, 1, 0, 0], class_names=["no", "yes"])}})
"""


def _tile(widget: Locator, key: str) -> Locator:
    return widget.locator(f'.tj-media-tile[data-key="{key}"]')


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_media_in_the_widget(page: Page, jupyter_lab: JupyterLab, theme: str) -> None:
    errors = page_errors(page)
    store = str(jupyter_lab.root / f"media-{theme.split()[-1].lower()}")
    jupyter_lab.write_notebook("media.ipynb", [CELL.format(store=store), "run.finish()"])
    notebook = open_notebook(page, jupyter_lab, "media.ipynb")
    set_theme(page, theme)
    notebook.run_cell(0)
    notebook.wait_for_cell_done(0, timeout=120)
    widget = notebook.wait_for_output(0, ".tracker-run")
    media = widget.locator(".tj-media")
    _tile(media, "cm").wait_for(timeout=30_000)

    # a 12×8 image shown 4× by whole pixels, not blurred; the caption is text, apart from the details
    frame = _tile(media, "frame")
    image = frame.locator("img.tj-image")
    assert image.evaluate("i => [i.naturalWidth, i.width, getComputedStyle(i).imageRendering]") == [
        12,
        48,
        "pixelated",
    ]
    assert frame.locator("figcaption").inner_text() == "<b>frame 4</b>"
    assert "12×8" in frame.locator(".tj-media-meta").inner_text()
    # the step slider goes back through the earlier images
    assert "(5 of 5, newest)" in frame.locator(".tj-step-label").inner_text()
    frame.locator("input.tj-step").fill("1")
    assert frame.locator("figcaption").inner_text() == "<b>frame 1</b>"
    assert "step 4 (2 of 5)" in frame.locator(".tj-step-label").inner_text()
    # a list of images is a gallery
    assert _tile(media, "samples").locator("img.tj-image").count() == 3
    # a histogram over steps is a heatmap with a column per step
    heat = _tile(media, "weights").locator("svg rect[fill-opacity]")
    assert heat.count() > 20 * 5
    assert "20 steps" in _tile(media, "weights").inner_text()
    # a table is paged and sortable
    preds = _tile(media, "preds")
    assert preds.locator("tbody tr").count() == 10 and "1–10 of 25" in preds.inner_text()
    preds.get_by_role("button", name="next page").click()
    assert "11–20 of 25" in preds.inner_text()
    preds.locator("th", has_text="score").click()
    assert preds.locator("tbody tr").first.locator("td").nth(1).inner_text() == "0"
    # plot.* values are drawn as their charts
    assert _tile(media, "score_by_id").locator("path.tj-raw").count() == 1
    assert _tile(media, "per_label").locator("rect[fill]").count() == 2
    assert _tile(media, "cm").locator("td").count() == 4
    assert_readable(media, f"media in {theme}")
    frame.scroll_into_view_if_needed()
    save_screenshot(page, f"test_media_browser-{theme.split()[-1].lower()}")

    # the snapshot keeps the media: the newest image at the same scale, the heatmap, the table's rows
    notebook.run_cell(1)
    snapshot = notebook.wait_for_output(0, ".tracker-run-snapshot")
    media_part = snapshot.locator(".tj-media-snapshot")
    assert media_part.count() == 7
    frame_img = media_part.filter(has_text="frame").locator("img").first
    assert frame_img.evaluate("i => [i.naturalWidth, i.width, getComputedStyle(i).imageRendering]") == [
        12,
        48,
        "pixelated",
    ]
    assert "<b>frame 4</b>" in snapshot.inner_text() and "10 of 25 rows" in snapshot.inner_text()
    assert_readable(snapshot, f"snapshot with media in {theme}")
    media_part.first.scroll_into_view_if_needed()
    save_screenshot(page, f"test_media_browser-snapshot-{theme.split()[-1].lower()}")
    assert not errors, "\n".join(errors)
