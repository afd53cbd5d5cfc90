"""The runs dashboard (``show_runs``, ``%tracker_runs``) in a real JupyterLab and Chromium, in the light
and dark themes: the selection and each run's colour survive filtering, sorting and deselecting other
runs; the overlay charts are the interactive ones (a readout row per run, log scale); every text reads
at 4.5:1 or better; no console errors.

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

RUNS = """\
import math, tracker_jupyter
for i, lr in enumerate([0.1, 0.03, 0.01, 0.003]):
    run = tracker_jupyter.init(project="cmp", dir={store!r}, mode="offline", name=f"lr-{{lr}}",
                               config={{"lr": lr, "seed": 0}}, tags=["sweep"] if i % 2 else [])
    for step in range(60):
        run.log({{"train/loss": (1 + i) * math.exp(-step / 15) + 0.01, "val/loss": (1.1 + i) * math.exp(-step / 16),
                  "acc": 1 - math.exp(-step / (10 + i))}})
    run.finish()
"""

SHOW = """\
from tracker_jupyter import Api
from tracker_jupyter.display import runs
runs.show_runs(Api({store!r}).runs("cmp"), metric="train/loss")
"""


def _colors(root: Locator) -> dict[str, str]:
    """Each table row's run name and swatch colour."""
    return root.evaluate(
        """el => Object.fromEntries([...el.querySelectorAll('.tj-runs-table tbody tr')].map(tr => [
            tr.querySelector('td:nth-child(2)').textContent,
            getComputedStyle(tr.querySelector('.tj-swatch')).backgroundColor]))"""
    )


def _legend(tile: Locator) -> dict[str, str]:
    return tile.evaluate(
        """el => Object.fromEntries([...el.querySelectorAll('.tj-legend-item')].map(item => [
            item.getAttribute('title'), getComputedStyle(item.querySelector('.tj-swatch')).backgroundColor]))"""
    )


def _lines(tile: Locator) -> int:
    return tile.locator("path.tj-raw").count()


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_runs_dashboard_keeps_selection_and_colours(page: Page, jupyter_lab: JupyterLab, theme: str) -> None:
    errors = page_errors(page)
    store = str(jupyter_lab.root / f"runs-{theme.split()[-1].lower()}")
    jupyter_lab.write_notebook("runs.ipynb", [RUNS.format(store=store), SHOW.format(store=store)])
    notebook = open_notebook(page, jupyter_lab, "runs.ipynb")
    set_theme(page, theme)
    notebook.run_cell(0)
    notebook.wait_for_cell_done(0, timeout=120)
    # the cell that ran four runs left a row each (titles on the first), not four full snapshots
    compact = notebook.outputs(0).locator(".tj-compact-run")
    compact.nth(3).wait_for()
    assert compact.count() == 4 and notebook.outputs(0).locator(".tracker-run-snapshot").count() == 0
    assert "summary" in compact.first.inner_text() and "lr-0.003" in compact.nth(3).inner_text()
    height = notebook.outputs(0).first.evaluate("el => el.parentElement.getBoundingClientRect().height")
    assert height < 4 * 60, height
    assert_readable(compact.nth(3), f"compact row in {theme}", least=8)
    notebook.run_cell(1)
    board = notebook.wait_for_output(1, ".tj-runs")
    output = notebook.outputs(1)
    rows = output.locator(".tj-runs-table tbody tr")
    rows.nth(3).wait_for()
    loss = output.locator('.tj-tile[data-metric="train/loss"]')
    loss.locator("path.tj-raw").nth(3).wait_for()
    assert rows.count() == 4 and _lines(loss) == 4  # four runs have the metric: all four compared
    colors = _colors(board)
    assert len(set(colors.values())) == 4
    assert _legend(loss) == colors  # one colour per run: table swatch, legend and line
    # readable column titles under their groups; empty columns (group, job type) left out
    headers = output.locator(".tj-runs-table thead tr").nth(1).locator("th").all_text_contents()
    assert [h.rstrip(" ▲▼") for h in headers[:5]] == ["✓", "name", "state", "started", "duration"]
    assert "lr" in headers and "job type" not in headers and "group" not in headers

    # deselect one run: the others keep their colours
    output.get_by_role("checkbox", name="compare lr-0.03").uncheck()
    page.wait_for_function("el => el.querySelectorAll('path.tj-raw').length === 3", arg=loss.element_handle())
    assert _legend(loss) == {k: v for k, v in colors.items() if k != "lr-0.03"}

    # filter the table: hidden runs stay selected and in the charts
    output.locator("input.tj-run-filter").fill("lr=0.1")
    page.wait_for_function(
        "el => el.querySelectorAll('.tj-runs-table tbody tr').length === 1", arg=board.element_handle()
    )
    assert "3 selected (2 hidden by the filter)" in board.locator(".tj-count").first.inner_text()
    assert _lines(loss) == 3
    # sort by a column's header: the rows reorder, nothing else changes
    output.locator("input.tj-run-filter").fill("")
    rows.nth(3).wait_for()
    output.locator('.tj-runs-table th[data-column="config.lr"]').click()
    page.wait_for_function(
        "el => el.querySelector('.tj-runs-table tbody tr td:nth-child(2)').textContent === 'lr-0.1'",
        arg=board.element_handle(),
    )
    assert _colors(board) == colors and _lines(loss) == 3
    assert not output.get_by_role("checkbox", name="compare lr-0.03").is_checked()

    # the overlay is the interactive chart: a readout row per run, log scale
    svg = loss.locator("svg.tj-svg")
    svg.scroll_into_view_if_needed()
    box = svg.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    tip = loss.locator(".tj-tip")
    tip.wait_for(state="visible", timeout=5000)
    assert not errors, "\n".join(errors)
    assert tip.locator(".tj-tip-line").count() == 3 and "lr-0.1" in tip.inner_text()
    save_screenshot(page, f"test_runs_browser-hover-{theme.split()[-1].lower()}")
    notebook.outputs(0).first.scroll_into_view_if_needed()
    save_screenshot(page, f"test_runs_browser-compact-{theme.split()[-1].lower()}")
    svg.scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    output.locator("input.tj-log").check()
    page.wait_for_function(
        "el => [...el.querySelectorAll('text.tj-axis-title')].some(t => t.textContent.includes('(log)'))",
        arg=loss.element_handle(),
    )
    # the charts' own filter leaves the selection alone
    output.locator("input.tj-filter:not(.tj-run-filter)").fill("^acc$")
    page.wait_for_function(
        "el => [...el.querySelectorAll('.tj-tile')].filter(t => t.style.display !== 'none').length === 1",
        arg=board.locator("xpath=..").element_handle(),
    )
    assert "3 selected" in board.locator(".tj-count").first.inner_text()
    output.locator("input.tj-filter:not(.tj-run-filter)").fill("")
    assert_readable(board.locator("xpath=.."), f"runs dashboard in {theme}")
    save_screenshot(page, f"test_runs_browser-{theme.split()[-1].lower()}")
    assert not errors, errors
