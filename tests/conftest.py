"""Shared fixtures: every test gets a clean environment, its own working directory and no active run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import tracker_jupyter
from tracker_jupyter.core.holder import holder

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.lab", "tests.mlflow_server"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith(("TRACKER_", "MLFLOW_TRACKING_")):
            monkeypatch.delenv(name)
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
