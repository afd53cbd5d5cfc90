"""Online mode against a real MLflow server: live sync, fallbacks, `tracker sync`, auth, faults."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import tracker_jupyter as tj
from tests.support.mlflow_server import MlflowServer, free_port
from tracker_jupyter import AuthenticationError, CommError
from tracker_jupyter.online import credentials, mapping, upload

from .test_rest import Answer, ScriptedServer


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def mlflow_run(client: Any, experiment: str, run_id: str) -> Any:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    [found] = client.search_runs([exp.experiment_id], f"tags.`tracker.id` = '{run_id}'")
    return found


def history(client: Any, mlflow_run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(mlflow_run_id, key))


@pytest.fixture
def online(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MlflowServer:
    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return mlflow_server


def test_online_run_end_to_end(online: MlflowServer, mlflow_client: Any, store_dir: Path):
    project = unique("e2e")
    run = tj.init(
        project=project, dir=store_dir, name="first-run", notes="a note", tags=["base", "v1"], group="cv",
        job_type="train", config={"lr": 0.01, "opt": {"name": "adam", "beta": 0.9}, "epochs": 7},
    )  # fmt: skip
    assert run.mode == "online" and run.url is not None and run.url.startswith(online.url)
    for i in range(2500):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 2500, "epoch": i // 500})
    run.log({"label": "text stays local", "nan": float("nan")})
    run.summary["best_acc"] = 0.99
    status = run.parts.sync_status()
    assert set(status) == {"url", "synced", "pending", "last_error"}
    run.finish()

    found = mlflow_run(mlflow_client, project, run.id)
    assert found.info.status == "FINISHED" and found.info.run_name == "first-run"
    assert run.url.endswith(f"/runs/{found.info.run_id}?workflowType=machine_learning")
    assert found.data.params == {"lr": "0.01", "opt.name": "adam", "opt.beta": "0.9", "epochs": "7"}
    tags = found.data.tags
    assert tags["mlflow.note.content"] == "a note" and tags["tracker.tags"] == "base,v1"
    assert tags["tracker.group"] == "cv" and tags["tracker.job_type"] == "train"
    assert json.loads(tags["tracker.summary"])["best_acc"] == 0.99
    loss = history(mlflow_client, found.info.run_id, "loss")
    assert len(loss) == 2500 and [s for s, _ in loss] == list(range(2500))
    assert loss[0] == (0, 1.0)
    assert len(mlflow_client.get_metric_history(found.info.run_id, "nan")) == 1
    artifacts = {a.path for a in mlflow_client.list_artifacts(found.info.run_id)}
    assert {"config.json", "summary.json"} <= artifacts
    state = json.loads((store_dir / project / run.id / "sync.json").read_text())
    assert state["mlflow_run_id"] == found.info.run_id and state["status"] == "FINISHED"


def test_changed_config_keeps_first_param_and_records_current(
    online: MlflowServer, mlflow_client: Any, store_dir
):
    project = unique("cfg")
    for mode in ("online", "offline"):  # changed before the first sync pass, or long before `tracker sync`
        run = tj.init(project=project, dir=store_dir, config={"lr": 0.1}, allow_val_change=True, mode=mode)
        run.log({"x": 1})
        run.config.lr = 0.05
        run.config.update({"lr": 0.02})
        run.finish()
        if mode == "offline":
            assert upload.sync_paths([str(store_dir / project / run.id)]) == 1
        found = mlflow_run(mlflow_client, project, run.id)
        assert found.data.params["lr"] == "0.1"
        assert json.loads(found.data.tags["tracker.config"]) == {"lr": 0.02}
        config_file = mlflow_client.download_artifacts(found.info.run_id, "config.json")
        assert json.loads(Path(config_file).read_text()) == {"lr": 0.02}
    # a resumed run keeps the first value of its first life; a key first changed by a resume is recorded too
    again = tj.init(
        project=project, dir=store_dir, id=run.id, resume="must", config={"lr": 0.5, "x": 2},
        allow_val_change=True, mode="offline",
    )  # fmt: skip
    again.config.update({"x": 3})
    again.finish()
    assert tj.Api(store_dir).run(run.id).meta["config_first"] == {"lr": 0.1, "x": 2}
    fresh = tj.init(project=project, dir=store_dir, config={"bs": 8}, mode="offline")
    fresh.finish()
    resumed = tj.init(
        project=project, dir=store_dir, id=fresh.id, resume="must", config={"bs": 16}, allow_val_change=True,
        mode="offline",
    )  # fmt: skip
    resumed.finish()
    assert tj.Api(store_dir).run(fresh.id).meta["config_first"] == {"bs": 8}


def test_failed_run_and_files_and_code(
    online: MlflowServer, mlflow_client: Any, store_dir: Path, tmp_path: Path
):
    project = unique("fail")
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01")
    with pytest.raises(ZeroDivisionError), tj.init(project=project, dir=store_dir) as run:
        run.save(str(tmp_path / "weights.bin"), base_path=str(tmp_path))
        run.log({"x": 1})
        1 / 0  # noqa: B018
    found = mlflow_run(mlflow_client, project, run.id)
    assert found.info.status == "FAILED"
    assert "files" in {a.path for a in mlflow_client.list_artifacts(found.info.run_id)}
    listed = [a.path for a in mlflow_client.list_artifacts(found.info.run_id, "files")]
    assert listed == ["files/output.log", "files/weights.bin"]  # with what the run printed


def test_code_media_and_tensorboard_files_are_uploaded(
    online: MlflowServer, mlflow_client: Any, store_dir: Path, tmp_path: Path
):
    project = unique("uploads")
    script = tmp_path / "train.py"
    script.write_text(
        "import sys, numpy as np, tracker_jupyter as tj\n"
        "from tensorboardX import SummaryWriter\n"
        f"run = tj.init(project={project!r}, dir=sys.argv[1], save_code=True, sync_tensorboard=True)\n"
        "writer = SummaryWriter(sys.argv[2])\n"
        "writer.add_scalar('tb_loss', 0.5, 1)\n"
        "writer.close()\n"
        "run.log({'sample': tj.Image(np.zeros((4, 4, 3), dtype=np.uint8))})\n"
        "run.finish()\n"
        "print(run.id)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script), str(store_dir), str(tmp_path / "tb" / "exp")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = mlflow_run(mlflow_client, project, done.stdout.split()[-1])

    def listing(path: str) -> list[str]:
        out = []
        for item in mlflow_client.list_artifacts(found.info.run_id, path):
            out += listing(item.path) if item.is_dir else [item.path]
        return out

    uploaded = listing("")
    assert "code/train.py" in uploaded
    assert any(p.startswith("files/media/images/sample_1_") and p.endswith(".png") for p in uploaded)
    assert any(p.startswith("files/tensorboard/exp/events.out.tfevents.") for p in uploaded)
    assert [m.value for m in mlflow_client.get_metric_history(found.info.run_id, "tb_loss")] == [0.5]


def test_entity_prefixes_the_experiment(online: MlflowServer, mlflow_client: Any, store_dir: Path):
    project = unique("ent")
    run = tj.init(project=project, entity="team", dir=store_dir)
    run.finish()
    assert mlflow_run(mlflow_client, f"team/{project}", run.id).data.tags["tracker.entity"] == "team"


def test_entity_is_the_workspace_on_a_server_with_workspaces(
    mlflow_workspace_server: MlflowServer, store_dir: Path, tmp_path: Path, monkeypatch, capsys
):
    import requests

    from tracker_jupyter.display import runs as runs_dashboard

    url = mlflow_workspace_server.url
    monkeypatch.setenv("TRACKER_BASE_URL", url)
    workspace = unique("team")
    created = requests.post(f"{url}/api/3.0/mlflow/workspaces", json={"name": workspace}, timeout=30)
    assert created.status_code in (200, 201), created.text

    def get(endpoint: str, space: str | None, **params: str) -> Any:
        headers = {"X-MLFLOW-WORKSPACE": space} if space else {}
        return requests.get(f"{url}/api/2.0/mlflow/{endpoint}", params=params, headers=headers, timeout=30)

    project = unique("ws")
    (tmp_path / "weights.bin").write_bytes(b"w")
    run = tj.init(project=project, entity=workspace, dir=store_dir, config={"lr": 0.1})
    run.save(str(tmp_path / "weights.bin"), base_path=str(tmp_path))
    run.log({"x": 1})
    run.finish()
    offline = tj.init(project=project, entity=workspace, dir=store_dir, mode="offline")
    offline.log({"x": 2})
    offline.finish()
    assert upload.sync_paths([str(store_dir / project / offline.id)]) == 1  # `tracker sync` too

    experiment = get("experiments/get-by-name", workspace, experiment_name=project).json()["experiment"]
    assert get("experiments/get-by-name", None, experiment_name=project).status_code == 404  # not in default
    assert get("experiments/get-by-name", None, experiment_name=f"{workspace}/{project}").status_code == 404
    found = requests.post(
        f"{url}/api/2.0/mlflow/runs/search", json={"experiment_ids": [experiment["experiment_id"]]},
        headers={"X-MLFLOW-WORKSPACE": workspace}, timeout=30,
    ).json()["runs"]  # fmt: skip
    by_id = {t["value"]: r for r in found for t in r["data"]["tags"] if t["key"] == "tracker.id"}
    assert set(by_id) == {run.id, offline.id}
    mlflow_id = by_id[run.id]["info"]["run_id"]
    files = get("artifacts/list", workspace, run_id=mlflow_id, path="files").json()["files"]
    assert [f["path"] for f in files] == ["files/output.log", "files/weights.bin"]  # in the workspace too
    listed = runs_dashboard.project_runs(project, str(tmp_path / "empty"), entity=workspace)
    assert {r.id for r in listed} == {run.id, offline.id}
    assert {r.summary.get("x") for r in listed} == {1, 2}

    other = unique("nobody")  # no workspace of that name: the prefixed experiment of the default one
    run = tj.init(project=project, entity=other, dir=store_dir)
    run.finish()
    assert f"has no workspace {other!r}" in capsys.readouterr().err
    assert get("experiments/get-by-name", None, experiment_name=f"{other}/{project}").status_code == 200


def test_resume_and_fork_online(online: MlflowServer, mlflow_client: Any, store_dir: Path):
    project = unique("lineage")
    run = tj.init(project=project, dir=store_dir, id="orig")
    for i in range(5):
        run.log({"x": i})
    run.finish()
    again = tj.init(project=project, dir=store_dir, id="orig", resume="must")
    again.log({"x": 5})
    again.finish()
    found = mlflow_run(mlflow_client, project, "orig")
    assert history(mlflow_client, found.info.run_id, "x") == [(i, float(i)) for i in range(6)]
    fork = tj.init(project=project, dir=store_dir, fork_from="orig?_step=2")
    fork.log({"x": 30})
    fork.finish()
    forked = mlflow_run(mlflow_client, project, fork.id)
    assert forked.info.run_id != found.info.run_id and forked.data.tags["tracker.fork_of"] == "orig?_step=2"
    assert history(mlflow_client, forked.info.run_id, "x") == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 30.0)]
    rewound = tj.init(project=project, dir=store_dir, resume_from="orig?_step=3")
    rewound.log({"x": 40})
    rewound.finish()
    found = mlflow_run(mlflow_client, project, "orig")
    assert found.data.tags["tracker.rewinds"] == "3"
    # MLflow cannot delete points: the rewound ones stay, the new one is added at step 4
    assert (4, 40.0) in history(mlflow_client, found.info.run_id, "x")


def test_unreachable_server_falls_back_then_tracker_sync_uploads_once(
    mlflow_server: MlflowServer, mlflow_client: Any, store_dir: Path, monkeypatch, capsys
):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TRACKER_BASE_URL", dead)
    project = unique("down")
    run = tj.init(project=project, dir=store_dir, config={"a": 1})
    assert run.mode == "offline" and run.url is None
    assert f"cannot use {dead}" in capsys.readouterr().err
    for i in range(1200):
        run.log({"m": i})
    run.finish()
    with pytest.raises(CommError) as caught:
        tj.init(project=project, dir=store_dir, force=True)
    assert dead in str(caught.value)
    assert tj.run is None

    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    run_dir = store_dir / project / run.id
    assert upload.sync_paths([str(run_dir)]) == 1
    assert upload.sync_paths([str(store_dir)]) == 1  # again: nothing is sent twice
    found = mlflow_run(mlflow_client, project, run.id)
    assert found.info.status == "FINISHED" and found.data.params == {"a": "1"}
    assert history(mlflow_client, found.info.run_id, "m") == [(i, float(i)) for i in range(1200)]


def test_tracker_sync_cli_marks_crashed_runs_killed(
    mlflow_server: MlflowServer, mlflow_client: Any, tmp_path: Path
):
    project = unique("crash")
    code = (
        "import os, tracker_jupyter as tj\n"
        f"run = tj.init(project={project!r}, dir='store', mode='offline')\n"
        "for i in range(50): run.log({'v': i})\n"
        "run.sink.flush()\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=False)
    tracker = Path(sys.executable).with_name("tracker")
    env = {**os.environ, "TRACKER_BASE_URL": mlflow_server.url}
    done = subprocess.run(
        [str(tracker), "sync", "--dir", "store"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "crashed, 50 rows sent" in done.stderr and "#" in done.stderr
    [record] = tj.Api(tmp_path / "store").runs()
    found = mlflow_run(mlflow_client, project, record.id)
    assert (
        found.info.status == "KILLED" and len(mlflow_client.get_metric_history(found.info.run_id, "v")) == 50
    )
    done = subprocess.run(
        [str(tracker), "sync", "--dir", "store"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "0 rows sent" in done.stderr
    done = subprocess.run(
        [str(tracker), "sync", "--dir", "store"], cwd=tmp_path, env={**os.environ, "TRACKER_BASE_URL": ""},
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and "needs a server" in done.stderr


def test_server_killed_mid_run_and_restarted(
    online: MlflowServer, mlflow_client: Any, store_dir: Path, capsys: pytest.CaptureFixture[str]
):
    project = unique("restart")
    run = tj.init(project=project, dir=store_dir, settings={"sync_timeout": 60})
    for i in range(300):
        run.log({"v": i})
    time.sleep(1.5)
    down = tj.init(project=project, dir=store_dir, reinit="create_new", settings={"sync_timeout": 1})
    with online.stopped(kill=True):
        for i in range(300, 600):
            run.log({"v": i})
        deadline = time.time() + 20
        while not run.parts.sync_status()["last_error"] and time.time() < deadline:
            time.sleep(0.2)
        assert "Could not reach the MLflow server" in run.parts.sync_status()["last_error"]
        # a second run finishes while the server is down: it waits sync_timeout (1 s), then says what is
        # left and the command that sends it
        for i in range(50):
            down.log({"w": i})
        down.finish()
        told = capsys.readouterr().err
    assert f"run {down.id} is not fully synced" in told and "50 rows pending" in told
    assert f"tracker sync {store_dir / project / down.id}" in told
    run.finish()  # the server is back: the syncer catches up within sync_timeout
    found = mlflow_run(mlflow_client, project, run.id)
    assert history(mlflow_client, found.info.run_id, "v") == [(i, float(i)) for i in range(600)]
    assert upload.sync_paths([str(store_dir / project / down.id)]) == 1  # the command it printed
    assert len(history(mlflow_client, mlflow_run(mlflow_client, project, down.id).info.run_id, "w")) == 50


def test_429_and_500_from_a_proxy_are_retried(
    mlflow_server: MlflowServer, mlflow_client: Any, store_dir, monkeypatch
):
    project = unique("proxy")
    with ScriptedServer(upstream=mlflow_server.url) as proxy:
        monkeypatch.setenv("TRACKER_BASE_URL", proxy.url)
        run = tj.init(project=project, dir=store_dir)
        proxy.script.extend([Answer(503), Answer(429, headers={"Retry-After": "0"}), Answer(500)])
        for i in range(100):
            run.log({"v": i})
        run.finish()
        assert not proxy.script  # every scripted failure was served, and retried
    found = mlflow_run(mlflow_client, project, run.id)
    assert found.info.status == "FINISHED"
    assert history(mlflow_client, found.info.run_id, "v") == [(i, float(i)) for i in range(100)]


def test_credentials_in_the_server_url_are_never_shown_or_stored(
    mlflow_server: MlflowServer, store_dir: Path, monkeypatch, capsys
):
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("TRACKER_BASE_URL", f"http://alice:s3cr3t-in-url@{dead}/")
    run = tj.init(project=unique("urlcreds"), dir=store_dir)
    assert run.mode == "offline"
    run.log({"x": 1})
    snapshot = json.dumps(run._repr_mimebundle_())  # what a notebook shows and saves
    run.finish()
    err = capsys.readouterr().err
    assert f"cannot use http://{dead}" in err
    assert "s3cr3t-in-url" not in err + snapshot
    for path in store_dir.rglob("*"):
        if path.is_file():
            assert "s3cr3t-in-url" not in path.read_text(errors="replace"), path
    # the same URL credentials are used (not shown) against a live server: MLflow without auth accepts them
    monkeypatch.setenv(
        "TRACKER_BASE_URL", mlflow_server.url.replace("http://", "http://alice:s3cr3t-in-url@")
    )
    run = tj.init(project=unique("urlcreds"), dir=store_dir, force=True)
    assert run.mode == "online" and "s3cr3t" not in (run.url or "")
    run.finish()
    assert "s3cr3t-in-url" not in capsys.readouterr().err


def test_refused_metric_key_is_reported_once_and_the_rest_lands(
    online, mlflow_client: Any, store_dir, capsys
):
    project = unique("badkey")
    run = tj.init(project=project, dir=store_dir)
    for i in range(20):
        run.log({"good": i, "bad key!": i})
    run.finish()
    err = capsys.readouterr().err
    assert err.count("refused metric 'bad key!'") == 1
    found = mlflow_run(mlflow_client, project, run.id)
    assert len(mlflow_client.get_metric_history(found.info.run_id, "good")) == 20


def test_refused_param_is_reported_once_over_many_passes(
    mlflow_server: MlflowServer, mlflow_client: Any, store_dir: Path, capsys
):
    project = unique("badparam")
    run = tj.init(project=project, dir=store_dir, mode="offline", config={"lr(max)": 0.1, "ok": 2})
    run.log({"x": 1})
    run.finish()
    run_dir = store_dir / project / run.id
    for _ in range(3):  # three passes, each a new syncer reading the saved cursor, as `tracker sync` does
        upload.sync_paths([str(run_dir)], base_url=mlflow_server.url)
    err = capsys.readouterr().err
    assert err.count("refused param 'lr(max)'") == 1
    found = mlflow_run(mlflow_client, project, run.id)
    assert found.data.params == {"ok": "2"}
    assert json.loads(found.data.tags["tracker.config"]) == {"lr(max)": 0.1, "ok": 2}  # nothing lost


def test_runs_dashboard_adds_the_server_runs_not_stored_here(
    online: MlflowServer, store_dir: Path, tmp_path: Path, monkeypatch, capsys
):
    from IPython.utils.capture import capture_output

    from tests.support.ipython_shell import interactive_shell
    from tracker_jupyter.display import runs as runs_dashboard

    project = unique("dash")
    elsewhere = tmp_path / "another-machine"
    theirs = tj.init(project=project, dir=elsewhere, config={"lr": 0.1}, tags=["remote"], group="g")
    for i in range(5):
        theirs.log({"loss": 1 / (i + 1)})
    theirs.finish()
    mine = tj.init(project=project, dir=store_dir, config={"lr": 0.2})
    mine.log({"loss": 0.5})
    mine.finish()

    records = runs_dashboard.project_runs(project, str(store_dir))
    by_id = {r.id: r for r in records}
    assert sorted(by_id) == sorted([theirs.id, mine.id])  # the synced local run is listed once
    assert getattr(by_id[mine.id], "source", "local") == "local"
    remote = by_id[theirs.id]
    assert (remote.source, remote.state, remote.config, remote.tags, remote.group) == (
        "server", "finished", {"lr": 0.1}, ("remote",), "g",
    )  # fmt: skip
    assert remote.summary["loss"] == 0.2 and remote.name == theirs.name
    table = runs_dashboard.runs_table(records, "loss", select=[theirs.id, mine.id])
    assert "source" in table.columns
    assert [y for _, y in table.series(theirs.id, "loss").points()] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert "server" in table.html() and theirs.name in table.html()
    assert [r.id for r in runs_dashboard.project_runs(project, str(store_dir), server=False)] == [mine.id]
    monkeypatch.setenv("TRACKER_MODE", "offline")  # offline: the server is not asked
    assert [r.id for r in runs_dashboard.project_runs(project, str(store_dir))] == [mine.id]
    monkeypatch.delenv("TRACKER_MODE")

    with interactive_shell(tmp_path / "ipython") as shell:  # %tracker_runs in a real IPython shell
        shell.run_line_magic("load_ext", "tracker_jupyter")
        with capture_output() as captured:
            shell.run_line_magic("tracker_runs", f"--project {project} --dir {store_dir}")
        [shown] = [o.data["text/html"] for o in captured.outputs]
        assert theirs.name in shown and mine.name in shown
        with capture_output() as captured:
            shell.run_line_magic("tracker_runs", f"--project {project} --dir {store_dir} --local")
        [shown] = [o.data["text/html"] for o in captured.outputs]
        assert theirs.name not in shown and mine.name in shown

    monkeypatch.setenv("TRACKER_BASE_URL", f"http://127.0.0.1:{free_port()}")  # a server that is down
    assert [r.id for r in runs_dashboard.project_runs(project, str(store_dir))] == [mine.id]
    assert "could not be read" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- auth


def test_auth_server_credentials(
    mlflow_auth_server: MlflowServer, store_dir: Path, monkeypatch, tmp_path: Path
):
    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_auth_server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    project = unique("auth")
    with pytest.raises(AuthenticationError) as caught:
        tj.init(project=project, dir=store_dir, force=True)
    assert caught.value.status == 401
    run = tj.init(project=project, dir=store_dir)  # without force: offline
    assert run.mode == "offline"
    run.finish()
    monkeypatch.setenv("TRACKER_USERNAME", mlflow_auth_server.admin[0])
    monkeypatch.setenv("TRACKER_PASSWORD", "wrong-password-123")
    with pytest.raises(AuthenticationError):
        tj.init(project=project, dir=store_dir, force=True)
    monkeypatch.delenv("TRACKER_USERNAME")
    monkeypatch.delenv("TRACKER_PASSWORD")
    for force in (True, False):  # required credentials missing: an error, not a quiet offline run
        with pytest.raises(AuthenticationError, match="anonymous='never' needs credentials"):
            tj.init(project=project, dir=store_dir, force=force, anonymous="never")
    # tracker login stores the credentials (mode 0600) and later runs use them
    assert tj.login(mlflow_auth_server.url, *mlflow_auth_server.admin)
    creds = credentials.credentials_file()
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    run = tj.init(project=project, dir=store_dir, force=True)
    assert run.mode == "online"
    run.log({"x": 1})
    run.finish()
    secret = mlflow_auth_server.admin[1]
    for path in store_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    with pytest.raises(AuthenticationError):
        tj.login(mlflow_auth_server.url, "nobody", "not-a-password-1")
    with pytest.raises(AuthenticationError, match="401"):
        tj.init(project=project, dir=store_dir, force=True, anonymous="must")


def test_login_asks_for_a_missing_password(tmp_path: Path, monkeypatch) -> None:
    # getpass reads a terminal (or a notebook's masked input), which a test cannot type into: stand in for it
    asked: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or "typed-secret-9")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert tj.login("http://127.0.0.1:9/", username="ada", verify=False)
    assert asked == ["password for ada at http://127.0.0.1:9: "]
    stored = json.loads(credentials.credentials_file().read_text())
    assert stored == {"http://127.0.0.1:9": {"username": "ada", "password": "typed-secret-9"}}
    with pytest.raises(tj.UsageError, match="needs api_key=, or username="):
        tj.login("http://127.0.0.1:9/", verify=False)


def test_mlflow_environment_variables_are_the_fallback(
    mlflow_auth_server: MlflowServer, store_dir: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no stored login
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_auth_server.url)  # what MLflow users already have
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", mlflow_auth_server.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", mlflow_auth_server.admin[1])
    run = tj.init(project=unique("mlflowenv"), dir=store_dir, force=True)
    assert run.mode == "online" and run.url and run.url.startswith(mlflow_auth_server.url)
    run.finish()
    monkeypatch.setenv("TRACKER_USERNAME", "someone-else")  # ours come first
    monkeypatch.setenv("TRACKER_PASSWORD", "not-their-password-1")
    with pytest.raises(AuthenticationError):
        tj.init(project=unique("mlflowenv"), dir=store_dir, force=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")  # not a server: offline by default
    monkeypatch.delenv("TRACKER_USERNAME")
    run = tj.init(project=unique("mlflowenv"), dir=store_dir)
    assert run.mode == "offline"
    run.finish()


def test_params_keep_one_form_across_resumes(
    online: MlflowServer, mlflow_client: Any, store_dir: Path, capsys
):
    assert mapping.canonical(7) == mapping.canonical(7.0) == "7"
    assert mapping.canonical(0.1) == "0.1" and mapping.canonical(True) == "True"
    project = unique("canon")
    run = tj.init(project=project, dir=store_dir, id=unique("c"), config={"epochs": 7, "lr": 0.1})
    run.finish()
    again = tj.init(project=project, dir=store_dir, id=run.id, resume="must", config={"epochs": 7.0})
    again.finish()
    assert "refused" not in capsys.readouterr().err  # 7.0 is not a change of the param 7
    assert mlflow_run(mlflow_client, project, run.id).data.params == {"epochs": "7", "lr": "0.1"}


def test_tracker_login_cli_stores_credentials_privately(tmp_path: Path):
    tracker = Path(sys.executable).with_name("tracker")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    done = subprocess.run(
        [str(tracker), "login", "--base-url", "http://127.0.0.1:9/", "--username", "ada", "--no-verify"],
        input="s3cret-pass\n", env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    path = tmp_path / "cfg" / "tracker_jupyter" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "http://127.0.0.1:9": {"username": "ada", "password": "s3cret-pass"}
    }
    assert "s3cret" not in done.stdout + done.stderr
    done = subprocess.run(
        [str(tracker), "login", "--base-url", "http://127.0.0.1:9", "--no-verify"],
        input="x\n", env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and "pass --username" in done.stderr


def test_login_without_a_server_is_a_notice_and_false(tmp_path: Path, monkeypatch, capsys) -> None:
    for name in ("TRACKER_BASE_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setattr(credentials, "_said", credentials.Once())
    assert tj.login() is False
    assert tj.login(key="0123456789abcdef") is False  # the reference's call shape: no TypeError
    out = capsys.readouterr().out
    assert out.count("no tracking server is configured") == 1  # said once
    assert not credentials.credentials_file().exists()
    with pytest.raises(tj.UsageError, match="force=True"):
        tj.login(force=True)


def test_login_in_the_reference_s_shape_against_a_real_server(
    mlflow_auth_server: MlflowServer, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_auth_server.url)
    user, secret = mlflow_auth_server.admin
    with pytest.raises(AuthenticationError):
        tj.login()  # nothing stored, and the server needs credentials: says so
    assert tj.login(host=mlflow_auth_server.url, username=user, password=secret)
    assert tj.login()  # the stored credentials are taken and verified
    with pytest.raises(AuthenticationError):
        tj.login(key="not-a-token", relogin=True)  # verified before anything is stored
    assert (
        json.loads(credentials.credentials_file().read_text())[mlflow_auth_server.url.rstrip("/")]["username"]
        == user
    )


def test_saved_files_go_up_while_the_run_is_live_per_policy(
    mlflow_server: MlflowServer, mlflow_client, store_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import time as _time
    import uuid

    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    run = tj.init(project=f"save-{uuid.uuid4().hex[:8]}", dir=store_dir, settings={"silent": True})
    for name, policy in (("live.txt", "live"), ("now.txt", "now"), ("end.txt", "end")):
        (Path(run.dir) / name).write_text(name)
        run.save(str(Path(run.dir) / name), policy=policy)
    mlflow_run_id = run.meta["mlflow_run_id"]

    def uploaded() -> set[str]:
        return {item.path for item in mlflow_client.list_artifacts(mlflow_run_id, "files")}

    deadline = _time.monotonic() + 30
    while {"files/live.txt", "files/now.txt"} - uploaded() and _time.monotonic() < deadline:
        _time.sleep(0.5)
    assert {"files/live.txt", "files/now.txt"} <= uploaded() and "files/end.txt" not in uploaded()
    run.finish()
    assert {"files/live.txt", "files/now.txt", "files/end.txt"} <= uploaded()


def test_system_metrics_reach_the_server_under_mlflow_s_own_names(
    online: MlflowServer, mlflow_client: Any, store_dir: Path
) -> None:
    project = unique("system")
    run = tj.init(
        project=project, dir=store_dir, settings={"system_metrics": True, "system_metrics_interval": 0.3}
    )
    for i in range(5):
        run.log({"x": i})
        time.sleep(0.3)
    print("printed while online")
    run.finish()
    found = mlflow_run(mlflow_client, project, run.id)
    names = set(found.data.metrics)
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
            "system/system_memory_usage_percentage", "system/disk_usage_percentage",
            "system/network_receive_megabytes"} <= names  # fmt: skip
    points = mlflow_client.get_metric_history(found.info.run_id, "system/cpu_utilization_percentage")
    stored = [json.loads(line) for line in (run.run_dir / "system.jsonl").read_text().splitlines()]
    assert sorted(p.step for p in points) == [s["_step"] for s in stored] and len(stored) >= 3
    assert {p.timestamp for p in points} == {s["_timestamp"] for s in stored}
    assert history(mlflow_client, found.info.run_id, "x") == [(i, float(i)) for i in range(5)]
    logs = mlflow_client.download_artifacts(found.info.run_id, "files/output.log", str(store_dir / "back"))
    assert "printed while online" in Path(logs).read_text().splitlines()


def test_api_reads_the_server_s_runs_that_this_store_lacks(
    online: MlflowServer, mlflow_client: Any, store_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    pytest.importorskip("pandas")
    project = unique("apiserver")
    run = tj.init(project=project, dir=store_dir, config={"lr": 0.01}, tags=["teammate"],
                  settings={"system_metrics": True, "system_metrics_interval": 0.2})  # fmt: skip
    for i in range(10):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 10})
    time.sleep(0.5)
    run.finish()
    local = tj.Api(dir=store_dir).runs(project)
    assert [type(r).__name__ for r in local] == ["ApiRun"]  # synced and stored here: listed once
    api = tj.Api(dir=tmp_path / "another-machine")
    [found] = api.runs(project)
    assert found.source == "server" and found.id == run.id and found.config == {"lr": 0.01}
    assert found.tags == ("teammate",) and found.state == "finished" and found.url.startswith(online.url)
    frame = found.history()
    assert list(frame["loss"]) == [1.0 / (i + 1) for i in range(10)] and list(frame["_step"]) == list(
        range(10)
    )
    assert len(found.history(samples=3, keys=["acc"], pandas=False)) == 3
    system = found.history(stream="system", pandas=False)
    assert system and "system/cpu_utilization_percentage" in system[0]
    assert api.runs(project, filters={"config.lr": 0.01}) and not api.runs(project, filters={"config.lr": 1})
    again = api.run(f"{project}/{run.id}")
    assert again.id == run.id and again.summary["loss"] == 0.1
    assert "files/output.log" in again.files() and again.file("output.log").read_text()
    with pytest.raises(tj.UsageError, match="no run"):
        api.run(f"{project}/nope")
    monkeypatch.setenv("TRACKER_MODE", "offline")
    assert tj.Api(dir=tmp_path / "another-machine").runs(project) == []  # offline: the store only


def test_the_cursor_moves_with_every_request_and_experiments_open_as_training(
    online: MlflowServer, mlflow_client: Any, store_dir: Path
) -> None:
    """A pass interrupted after some requests keeps what they sent: the cursor is saved after each."""
    from tracker_jupyter.online.rest.client import MlflowRest, RetryPolicy
    from tracker_jupyter.online.syncer import RunSyncer

    project = unique("cursor")
    run = tj.init(project=project, dir=store_dir, mode="offline")
    for i in range(1000):
        run.log({"a": i, "b": i, "c": i})  # 3000 points: three requests of 1000
    run.finish()

    class CutAfterTwoBatches(ScriptedServer):
        """Forwards to the server, and answers every log-batch after the second with a 503."""

        batches = 0

        def _forward(self, method: str, path: str, body: bytes, content_type: str | None) -> Answer:
            if "runs/log-batch" in path and b'"metrics"' in body:
                type(self).batches += 1
                if type(self).batches > 2:
                    return Answer(503, b"upstream gone")
            return super()._forward(method, path, body, content_type)

    with (
        CutAfterTwoBatches(upstream=online.url) as proxy,
        MlflowRest(proxy.url, retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(CommError),
    ):
        RunSyncer(run.run_dir, client).sync_once(final=True)
    state = json.loads((run.run_dir / "sync.json").read_text())
    assert state["rows"] == 666  # two requests of 999 points (whole rows of 3) went, and the cursor says so
    assert RunSyncer(run.run_dir, MlflowRest(online.url)).pending_rows() == 1000 - 666  # exactly what is left
    assert upload.sync_paths([str(run.run_dir)]) == 1
    found = mlflow_run(mlflow_client, project, run.id)
    assert history(mlflow_client, found.info.run_id, "c") == [(i, float(i)) for i in range(1000)]
    experiment = mlflow_client.get_experiment_by_name(project)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_each_tag_is_searchable_with_mlflow_s_own_syntax(
    online: MlflowServer, mlflow_client: Any, store_dir: Path
) -> None:
    project = unique("tags")
    run = tj.init(project=project, dir=store_dir, tags=["baseline", "v1", "needs review!"])
    run.tags = ("baseline", "needs review!")  # v1 taken off while the run is live
    run.finish()
    other = tj.init(project=project, dir=store_dir, tags=["v1"])
    other.finish()
    experiment = mlflow_client.get_experiment_by_name(project)
    by_tag = mlflow_client.search_runs([experiment.experiment_id], "tags.`tracker.tag.baseline` = 'true'")
    assert [r.data.tags["tracker.id"] for r in by_tag] == [run.id]
    by_v1 = mlflow_client.search_runs([experiment.experiment_id], "tags.`tracker.tag.v1` = 'true'")
    assert [r.data.tags["tracker.id"] for r in by_v1] == [other.id]  # and no longer the first run
    found = mlflow_run(mlflow_client, project, run.id)
    assert found.data.tags["tracker.tags"] == "baseline,needs review!"  # every tag, whatever its characters
    assert "tracker.tag.needs review!" not in found.data.tags  # not a key MLflow allows
