"""Shared fixtures: every test gets a clean environment, its own working directory and no active run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import tracker_jupyter
from tracker_jupyter.core.holder import holder

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.support.lab", "tests.support.mlflow_server"]


# Tests that use these fixtures get the tier's marker, so `-m` selects tiers without a decorator per test.
_TIER_FIXTURES = {
    "mlflow": {
        "mlflow_server",
        "mlflow_auth_server",
        "mlflow_workspace_server",
        "mlflow_postgres_server",
        "mlflow_client",
    },
    "browser": {"jupyter_lab", "browser", "page"},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _TIER_FIXTURES.items():
            if used & fixtures and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith(("TRACKER_", "MLFLOW_TRACKING_")):
            monkeypatch.delenv(name)
    # Each run samples system metrics from a helper process; tests of other things do without it
    # (tests/test_system.py turns it on, and scripts run by run_script get the default, on).
    monkeypatch.setenv("TRACKER_SYSTEM_METRICS", "false")
    # What finish() cannot send in time goes to a background uploader process that outlives the test;
    # tests/test_uploader.py turns it on (and scripts run by run_script get the default, on).
    monkeypatch.setenv("TRACKER_SYNC_BACKGROUND", "false")
    monkeypatch.chdir(tmp_path)
    yield
    for run in list(holder.active):
        run.finish(quiet=True)
    assert tracker_jupyter.run is None


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


def run_script(code: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    """Run ``code`` in a fresh interpreter (a real process: exit handlers, kill -9 and all)."""
    import subprocess

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
