"""Secrets stay out of the store and the server: secret-looking config values and command-line values are
stored and uploaded masked (``mask_secrets``, on by default), while the run itself keeps the real ones."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import tracker_jupyter as tj
from tests.support.mlflow_server import MlflowServer
from tracker_jupyter import store
from tracker_jupyter.core.values import mask_argv

CONFIG = {"lr": 0.1, "api_key": "sk-live-123", "db": {"host": "h", "db_password": "hunter2"}}


def test_argv_values_after_secret_flags_are_masked() -> None:
    args = [
        "--lr",
        "0.1",
        "--password",
        "hunter2",
        "--api-key=sk-1",
        "-token",
        "t0k",
        "--author",
        "me",
        "pos",
    ]
    assert mask_argv(args) == ["--lr", "0.1", "--password", "***", "--api-key=***", "-token", "***",
                               "--author", "***", "pos"]  # fmt: skip


def test_a_script_s_secrets_are_masked_in_the_store_and_kept_in_the_run(tmp_path: Path) -> None:
    code = f"""
import json, sys, tracker_jupyter as tj
run = tj.init(project="p", id="s", dir={str(tmp_path)!r}, config={CONFIG!r}, settings={{"silent": True}})
run.config.update({{"api_key": "sk-rotated"}}, allow_val_change=True)  # the first value is recorded too
print(json.dumps(dict(run.config)))
run.finish()
"""
    done = subprocess.run(
        [sys.executable, "-c", code, "--password", "hunter2", "--token=t0k", "--epochs", "3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["api_key"] == "sk-rotated"  # the run's own config is the real one
    run_dir = tmp_path / "p" / "s"
    meta = json.loads((run_dir / store.META).read_text())
    assert meta["args"] == ["--password", "***", "--token=***", "--epochs", "3"]
    assert meta["config_first"] == {"api_key": "***"}
    assert json.loads((run_dir / store.CONFIG).read_text()) == {
        "lr": 0.1, "api_key": "***", "db": {"host": "h", "db_password": "***"}
    }  # fmt: skip
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"hunter2" not in text and b"sk-live" not in text and b"t0k" not in text, path


def test_a_resumed_run_takes_its_secret_again(store_dir: Path) -> None:
    run = tj.init(project="p", id="r", dir=store_dir, config=CONFIG, settings={"silent": True})
    run.finish()
    again = tj.init(
        project="p", id="r", dir=store_dir, resume="must", config=CONFIG, settings={"silent": True}
    )
    assert again.config["api_key"] == "sk-live-123"  # the stored *** is no change refused
    again.finish()


def test_masking_can_be_turned_off(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir, config=CONFIG, settings={"mask_secrets": False, "silent": True})
    run.finish()
    assert json.loads((store_dir / "p" / run.id / store.CONFIG).read_text())["api_key"] == "sk-live-123"


@pytest.fixture
def online(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MlflowServer:
    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return mlflow_server


def test_the_server_gets_the_masked_values(online: MlflowServer, mlflow_client: Any, store_dir: Path) -> None:
    project = f"secrets-{uuid.uuid4().hex[:8]}"
    run = tj.init(project=project, dir=store_dir, config=CONFIG, settings={"silent": True})
    run.log({"loss": 1.0})
    run.finish()
    experiment = mlflow_client.get_experiment_by_name(project)
    [found] = mlflow_client.search_runs([experiment.experiment_id])
    assert found.data.params["api_key"] == "***" and found.data.params["db.db_password"] == "***"
    assert found.data.params["lr"] == "0.1"
    assert "sk-live" not in found.data.tags["tracker.config"]
    uploaded = json.loads(
        Path(mlflow_client.download_artifacts(found.info.run_id, "config.json")).read_text()
    )
    assert uploaded["api_key"] == "***" and uploaded["db"]["db_password"] == "***"
