"""Run creation on the server is idempotent: a lost answer to runs/create, or two stores using one run id,
never leave two MLflow runs for one run or one MLflow run for two (a real MLflow server, read back with
MLflow's own client; the answer is lost by a real proxy on 127.0.0.1 that closes the connection)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

import tracker_jupyter as tj
from tests.support.mlflow_server import MlflowServer
from tests.support.proxy import DroppingProxy
from tracker_jupyter.online import upload

CREATE = "/api/2.0/mlflow/runs/create"


@pytest.fixture(autouse=True)
def _private_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def _runs(client: Any, project: str) -> list[Any]:
    experiment = client.get_experiment_by_name(project)
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def test_a_lost_answer_to_runs_create_leaves_one_mlflow_run(
    mlflow_server: MlflowServer, mlflow_client: Any, store_dir: Path
) -> None:
    project = f"lost-{uuid.uuid4().hex[:8]}"
    run = tj.init(project=project, dir=store_dir, mode="offline", settings={"silent": True})
    for step in range(20):
        run.log({"loss": 1.0 / (step + 1)})
    run.finish()
    with DroppingProxy(mlflow_server.url, drop={CREATE: 1}) as proxy:
        assert upload.sync_paths([str(store_dir / project / run.id)], base_url=proxy.url) == 1
        assert proxy.dropped[CREATE] == 1  # the first create reached the server; its answer was lost
    [found] = _runs(mlflow_client, project)  # one run, not the lost one plus a second
    assert found.data.tags["tracker.id"] == run.id and found.info.status == "FINISHED"
    points = mlflow_client.get_metric_history(found.info.run_id, "loss")
    assert sorted(p.step for p in points) == list(range(20))


def test_two_stores_with_the_same_run_id_stay_two_runs(
    mlflow_server: MlflowServer, mlflow_client: Any, tmp_path: Path
) -> None:
    project = f"twins-{uuid.uuid4().hex[:8]}"
    for index, store in enumerate((tmp_path / "laptop", tmp_path / "cluster")):
        run = tj.init(project=project, id="exp-1", dir=store, mode="offline", settings={"silent": True})
        for step in range(5):
            run.log({"loss": float(index * 10 + step)})
        run.finish()
        assert upload.sync_paths([str(store / project / "exp-1")], base_url=mlflow_server.url) == 1
    found = _runs(mlflow_client, project)
    assert len(found) == 2 and {r.data.tags["tracker.id"] for r in found} == {"exp-1"}
    for mlflow_run in found:
        steps = sorted(p.step for p in mlflow_client.get_metric_history(mlflow_run.info.run_id, "loss"))
        assert steps == list(range(5))  # each its own five steps, not ten merged
