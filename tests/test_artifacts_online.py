"""Artifacts on a real MLflow server: files under the producing run, models in MLflow's registry,
versions found from another store, offline artifacts uploaded once by `tracker sync`; read back with
MLflow's own client."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

import tracker_jupyter as tj
from tests.support.mlflow_server import MlflowServer
from tracker_jupyter.online import upload


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def online(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MlflowServer:
    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return mlflow_server


def make_files(folder: Path, seed: bytes) -> dict[str, bytes]:
    contents = {"train.csv": b"x,y\n1,2\n" + seed, "nested/labels.txt": b"cat\ndog\n" + seed}
    for name, data in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return contents


def mlflow_run_of(client: Any, project: str, run_id: str) -> Any:
    experiment = client.get_experiment_by_name(project)
    [found] = client.search_runs([experiment.experiment_id], f"tags.`tracker.id` = '{run_id}'")
    return found


def test_versions_land_under_the_producing_run_and_models_in_the_registry(
    online: MlflowServer, mlflow_client: Any, tmp_path: Path
) -> None:
    project, model_name = unique("art"), unique("clf")
    contents = make_files(tmp_path / "data", b"one")
    (tmp_path / "model.pt").write_bytes(b"weights-1")
    run = tj.init(project=project, dir=tmp_path / "store")
    assert run.mode == "online"
    dataset = tj.Artifact("ds", type="dataset", metadata={"rows": 1})
    dataset.add_dir(tmp_path / "data")
    run.log_artifact(dataset, aliases=["best"])
    model = run.log_model(tmp_path / "model.pt", name=model_name, aliases=["staging"])
    (tmp_path / "model.pt").write_bytes(b"weights-2")
    second = run.log_model(tmp_path / "model.pt", name=model_name, aliases=["champion"])
    assert (model.version, second.version) == ("v0", "v1")
    run.finish()

    found = mlflow_run_of(mlflow_client, project, run.id)
    run_id = found.info.run_id
    listed = {a.path for a in mlflow_client.list_artifacts(run_id, "artifacts/ds/v0")}
    assert listed == {"artifacts/ds/v0/train.csv", "artifacts/ds/v0/nested", "artifacts/ds/v0/manifest.json"}
    local = mlflow_client.download_artifacts(run_id, "artifacts/ds/v0", str(tmp_path / "back"))
    for name, data in contents.items():
        assert (Path(local) / name).read_bytes() == data
    manifest = json.loads((Path(local) / "manifest.json").read_text())
    assert manifest["type"] == "dataset" and manifest["metadata"] == {"rows": 1}
    assert set(manifest["entries"]) == set(contents)
    assert found.data.tags["tracker.artifact.ds"] == "v0"
    assert found.data.tags["tracker.alias.ds.best"] == "v0"
    assert found.data.tags[f"tracker.artifact.{model_name}"] == "v0 v1"

    registered = mlflow_client.get_registered_model(model_name)
    assert registered.name == model_name
    staging = mlflow_client.get_model_version_by_alias(model_name, "staging")
    champion = mlflow_client.get_model_version_by_alias(model_name, "champion")
    assert staging.run_id == champion.run_id == run_id
    assert (staging.tags["tracker.version"], champion.tags["tracker.version"]) == ("v0", "v1")
    assert staging.version != champion.version
    files = mlflow_client.download_artifacts(run_id, f"artifacts/{model_name}/v1", str(tmp_path / "m"))
    assert (Path(files) / "model.pt").read_bytes() == b"weights-2"


def test_use_artifact_fetches_a_version_only_the_server_has(
    online: MlflowServer, mlflow_client: Any, tmp_path: Path
) -> None:
    project = unique("fetch")
    first = make_files(tmp_path / "v0", b"zero")
    second = make_files(tmp_path / "v1", b"one")
    producer = tj.init(project=project, dir=tmp_path / "store-a")
    for folder, aliases in ((tmp_path / "v0", ["golden"]), (tmp_path / "v1", None)):
        artifact = tj.Artifact("corpus", type="dataset")
        artifact.add_dir(folder)
        producer.log_artifact(artifact, aliases=aliases)
    producer.finish()

    consumer = tj.init(project=project, dir=tmp_path / "store-b")  # another machine: an empty store
    latest = consumer.use_artifact("corpus:latest")
    golden = consumer.use_artifact("corpus:golden", type="dataset")
    assert (latest.version, golden.version) == ("v1", "v0")
    for artifact, contents in ((latest, second), (golden, first)):
        root = Path(artifact.download(root=str(tmp_path / "dl" / artifact.version)))
        assert {
            p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
        } == contents
    assert latest.logged_by() is None  # the producer's run is not in this store
    with pytest.raises(tj.UsageError, match="not found"):
        consumer.use_artifact("corpus:v7")
    consumer.finish()
    # cached: the version is in store-b now, readable with no server
    cached = tj.Api(dir=tmp_path / "store-b").artifact(f"{project}/corpus:v1")
    assert cached.digest == latest.digest
    used = mlflow_run_of(mlflow_client, project, consumer.id)
    assert json.loads(used.data.tags["tracker.used_artifacts"]) == [
        f"{project}/corpus:v1",
        f"{project}/corpus:v0",
    ]
    inputs = {d.dataset.name for d in used.inputs.dataset_inputs}
    assert inputs == {"corpus:v1", "corpus:v0"}


def test_offline_artifacts_are_uploaded_once_by_tracker_sync(
    mlflow_server: MlflowServer, mlflow_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, model_name = unique("later"), unique("net")
    (tmp_path / "w.bin").write_bytes(os.urandom(4096))
    run = tj.init(project=project, dir=tmp_path / "store", mode="offline")
    run.log_model(tmp_path / "w.bin", name=model_name, aliases=["prod"])
    run.finish()
    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    assert upload.sync_paths([str(tmp_path / "store")]) == 1
    assert upload.sync_paths([str(tmp_path / "store")]) == 1  # again: nothing new on the server
    versions = mlflow_client.search_model_versions(f"name = '{model_name}'")
    assert len(versions) == 1  # (MLflow's search leaves aliases out: read them by alias)
    assert mlflow_client.get_model_version_by_alias(model_name, "prod").version == versions[0].version
    found = mlflow_run_of(mlflow_client, project, run.id)
    back = mlflow_client.download_artifacts(
        found.info.run_id, f"artifacts/{model_name}/v0/w.bin", str(tmp_path / "b")
    )
    assert Path(back).read_bytes() == (tmp_path / "w.bin").read_bytes()
