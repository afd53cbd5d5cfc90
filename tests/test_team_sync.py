"""A team's deployment: MLflow's server on a PostgreSQL backend store, many writers at once, every run
ending FINISHED on the server with every point, without anybody running ``tracker sync``."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.mlflow_server import MlflowServer
from tracker_jupyter.online import upload, uploader

from .test_uploader import mlflow_run, offline_run, points, uploaded, wait_until

WRITERS, STEPS, KEYS = 8, 1000, ("loss", "acc", "lr", "grad", "tokens")


@pytest.fixture
def postgres_client(mlflow_postgres_server: MlflowServer) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_postgres_server.url)


def test_concurrent_writers_all_finish_on_the_server_by_themselves(
    mlflow_postgres_server: MlflowServer, postgres_client: Any, tmp_path: Path
) -> None:
    project = f"team-{uuid.uuid4().hex[:8]}"
    code = (
        "import sys, tracker_jupyter as tj\n"
        f"run = tj.init(project={project!r}, dir='store', settings={{'sync_timeout': 1}})\n"
        f"for i in range({STEPS}):\n"
        f"    run.log({{k: i for k in {KEYS!r}}})\n"
        "run.finish()\n"
        "print(run.id)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["TRACKER_BASE_URL"] = mlflow_postgres_server.url
    command = [sys.executable, "-c", code]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    writers = [subprocess.Popen(command, cwd=tmp_path, env=env, **pipes) for _ in range(WRITERS)]
    ids = []
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        ids.append(out.split()[-1])
    store = tmp_path / "store"
    for run_id in ids:  # finished by the writer, or by the uploader after it
        wait_until(
            lambda run_id=run_id: uploaded(postgres_client, project, run_id, "tokens", STEPS), 300, run_id
        )
    for run_id in ids:
        found = mlflow_run(postgres_client, project, run_id)
        for key in KEYS:
            assert points(postgres_client, found.info.run_id, key) == [(i, float(i)) for i in range(STEPS)]
    wait_until(lambda: not uploader.read_entries(store), 60, "the uploader's queue to empty")
    rows = upload.status_rows([str(store)])
    assert {row["pending"] for row in rows} == {0} and {row["final_state_sent"] for row in rows} == {
        "FINISHED"
    }


def test_parallel_tracker_sync_on_postgres(
    mlflow_postgres_server: MlflowServer, postgres_client: Any, store_dir: Path
) -> None:
    project = f"team-sync-{uuid.uuid4().hex[:8]}"
    run_dirs = [offline_run(store_dir, project, 1500, keys=KEYS) for _ in range(6)]
    assert upload.sync_paths([str(store_dir)], base_url=mlflow_postgres_server.url, jobs=6) == 6
    for run_dir in run_dirs:
        found = mlflow_run(postgres_client, project, run_dir.name)
        assert found.info.status == "FINISHED"
        assert points(postgres_client, found.info.run_id, "grad") == [(i, float(i)) for i in range(1500)]
