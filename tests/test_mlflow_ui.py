"""What a team sees of our runs in MLflow's own UI, in Chromium: ``run.url`` opens the run page in the
model-training view (not under GenAI's "Evaluation runs"), its metric charts are drawn, and the runs table
lists the run. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import tracker_jupyter as tj
from tests.support.lab import save_screenshot
from tests.support.mlflow_server import MlflowServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


@pytest.fixture
def ui_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], errors


@pytest.fixture
def synced_run(mlflow_server: MlflowServer, store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    run = tj.init(
        project=f"ui-{uuid.uuid4().hex[:8]}", name="resnet-baseline", dir=store_dir, tags=["baseline"],
        config={"lr": 0.01, "batch": 64},
    )  # fmt: skip
    for i in range(50):
        run.log({"train/loss": 1 / (i + 1), "val/acc": i / 50})
    run.finish()
    return run


def test_run_url_opens_the_training_view_with_charts_and_the_runs_table(
    synced_run: Any, ui_page: Page
) -> None:
    page = ui_page
    assert "workflowType=machine_learning" in synced_run.url
    page.goto(synced_run.url)
    page.get_by_role("heading", name="resnet-baseline").wait_for()
    sidebar = page.locator("nav, aside").first
    # the model-training view: its sidebar has Runs and Models; GenAI's has Evaluation runs and Judges
    page.get_by_text("Model registry").first.wait_for()
    assert page.get_by_text("Evaluation runs").count() == 0, sidebar.inner_text()
    body = page.inner_text("body")
    for expected in ("Finished", "lr", "batch", "tracker.tag.baseline"):
        assert expected in body, expected
    save_screenshot(page, "mlflow_ui-run")

    page.get_by_role("tab", name="Model metrics").click()
    charts = page.locator("svg .main-svg, .js-plotly-plot, canvas, svg[class*='chart'], .recharts-wrapper")
    page.get_by_text("loss", exact=True).first.wait_for()
    page.get_by_text("acc", exact=True).first.wait_for()
    charts.first.wait_for()
    # one chart per metric, each with the run in its legend
    page.get_by_text("resnet-baseline (train/loss)").first.wait_for()
    page.get_by_text("resnet-baseline (val/acc)").first.wait_for()
    save_screenshot(page, "mlflow_ui-metrics")

    page.get_by_role("link", name="Runs").first.click()
    page.get_by_text("1 matching run").wait_for()
    assert page.get_by_role("link", name="resnet-baseline").count() >= 1
    save_screenshot(page, "mlflow_ui-runs-table")
