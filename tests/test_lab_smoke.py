"""Smoke tests for the browser tier: ipywidgets render and update live in a real JupyterLab."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.support.lab import JupyterLab, assert_no_injected_script_ran, open_notebook, save_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

SHOW_WIDGETS = """\
import ipywidgets as widgets

slider = widgets.IntSlider(value=7, description="lr")
status = widgets.HTML(value="<b>waiting</b>")
display(slider, status)
"""

# 10 updates over 3 s: slow enough that the page can see several values before the cell finishes.
UPDATE_LOOP = """\
import time

for tick in range(1, 11):
    status.value = f"<b>tick {tick}</b>"
    time.sleep(0.3)
"""

XSS_PAYLOAD = '<img src=x onerror="window.__xss = 1">'


def test_widgets_render_and_update_while_cell_runs(page: Page, jupyter_lab: JupyterLab) -> None:
    jupyter_lab.write_notebook("smoke.ipynb", [SHOW_WIDGETS, UPDATE_LOOP])
    notebook = open_notebook(page, jupyter_lab, "smoke.ipynb")

    notebook.run_all()
    slider = notebook.wait_for_output(0, ".jupyter-widgets.widget-slider")
    assert slider.locator(".widget-readout").inner_text() == "7"
    assert float(slider.get_by_role("slider").get_attribute("aria-valuenow") or "nan") == 7

    # Sample text and prompt in one evaluate so each value is paired with the state it was seen in.
    seen_while_running: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text, running = notebook.panel.evaluate(
            """panel => {
                const cells = panel.querySelectorAll('.jp-Notebook .jp-Cell');
                const html = cells[0].querySelector('.widget-html-content');
                const prompt = cells[1].querySelector('.jp-InputPrompt').textContent.trim();
                return [html ? html.textContent : null, prompt === '[*]:'];
            }"""
        )
        if not running:
            break
        if text and text.startswith("tick") and text not in seen_while_running:
            seen_while_running.append(text)
            if len(seen_while_running) == 2:
                save_screenshot(page, "test_lab_smoke-updating")
        time.sleep(0.05)

    notebook.wait_for_cell_done(1)
    assert len(seen_while_running) >= 2, f"saw {seen_while_running} while the loop ran"
    assert notebook.outputs(0).locator(".widget-html-content").inner_text() == "tick 10"
    notebook.wait_for_idle()


def test_label_value_is_text_not_markup(page: Page, jupyter_lab: JupyterLab) -> None:
    source = f"import ipywidgets as widgets\ndisplay(widgets.Label(value={XSS_PAYLOAD!r}))\n"
    jupyter_lab.write_notebook("label_xss.ipynb", [source])
    notebook = open_notebook(page, jupyter_lab, "label_xss.ipynb")

    notebook.run_all()
    label = notebook.wait_for_output(0, ".jupyter-widgets.widget-label")
    notebook.wait_for_cell_done(0)
    assert label.inner_text() == XSS_PAYLOAD
    assert notebook.outputs(0).locator("img").count() == 0

    assert_no_injected_script_ran(page)
