"""A damaged store never gives a traceback: each reader says which run, which file and what to do.

The damage is real: files cut short, overwritten with other JSON, garbage lines appended, as a full disk,
a careless editor or a copy interrupted half-way leave them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

import tracker_jupyter as tj
from tests.support.mlflow_server import MlflowServer
from tracker_jupyter import store
from tracker_jupyter.cli import main as cli_main
from tracker_jupyter.online import upload


def _finished(
    store_dir: Path, run_id: str, project: str = "p", steps: int = 5, mode: str | None = None
) -> Path:
    run = tj.init(
        project=project, id=run_id, dir=store_dir, config={"lr": 0.1}, mode=mode, settings={"silent": True}
    )
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    run.finish()
    assert run.run_dir is not None
    return run.run_dir


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize(
    ("damage", "said"),
    [(_cut, "run.json is not valid JSON"), (lambda p: p.write_text("[1, 2]"), "run.json holds JSON list")],
    ids=["truncated", "not-an-object"],
)
def test_tracker_runs_lists_a_damaged_run_as_damaged_and_the_others_as_they_are(
    store_dir: Path, capsys: pytest.CaptureFixture[str], damage: Any, said: str
) -> None:
    _finished(store_dir, "good")
    bad = _finished(store_dir, "bad")
    damage(bad / store.META)
    capsys.readouterr()
    assert cli_main(["runs", "--dir", str(store_dir)]) == 0
    out, err = capsys.readouterr()
    lines = {line.split()[1]: line.split()[2:] for line in out.splitlines()[1:]}
    assert "finished" in lines["good"] and "damaged" in lines["bad"]
    assert f"run p/bad is damaged: {said}" in err and str(bad / store.META) in err
    assert "restore the file from a backup, or remove the run directory" in err
    assert cli_main(["runs", "--dir", str(store_dir), "--json"]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["bad"]["state"] == "damaged" and said in listed["bad"]["damage"]
    record = tj.Api(store_dir).run("p/bad")
    assert record.state == "damaged" and record.damage is not None


def test_a_damaged_run_is_not_resumed_and_its_files_are_left_as_they_are(store_dir: Path) -> None:
    bad = _finished(store_dir, "bad")
    _cut(bad / store.META)
    before = (bad / store.META).read_bytes()
    with pytest.raises(tj.UsageError, match=r"run p/bad cannot be continued: run\.json is not valid JSON"):
        tj.init(project="p", id="bad", dir=store_dir, resume="must")
    assert (bad / store.META).read_bytes() == before
    assert tj.run is None


def test_an_unreadable_config_is_refused_on_resume_not_replaced(store_dir: Path) -> None:
    run_dir = _finished(store_dir, "cfg")
    (run_dir / store.CONFIG).write_text('{"lr": 0.1, "lay')
    with pytest.raises(tj.UsageError, match=r"config\.json is not valid JSON .*Restore the file"):
        tj.init(project="p", id="cfg", dir=store_dir, resume="allow", config={"epochs": 3})
    assert (run_dir / store.CONFIG).read_text() == '{"lr": 0.1, "lay'  # not replaced by {"epochs": 3}
    with pytest.warns(UserWarning, match=r"run p/cfg: config\.json is not valid JSON .*reads as empty"):
        assert tj.Api(store_dir).run("p/cfg").config == {}


def test_garbage_lines_are_reported_with_their_count_and_first_line_and_the_rest_is_read(
    store_dir: Path,
) -> None:
    run_dir = _finished(store_dir, "lines", steps=5)
    history = run_dir / store.HISTORY
    lines = history.read_bytes().splitlines(keepends=True)
    assert len(lines) == 5
    damaged = [lines[0], b"not json at all\n", lines[1], b'{"_step": "three", "loss": 1}\n', *lines[2:]]
    history.write_bytes(b"".join(damaged))
    with pytest.warns(UserWarning, match=r"has 2 unreadable line\(s\) \(the first is line 2\)"):
        rows = list(tj.Api(store_dir).run("p/lines").scan_history())
    assert [row["_step"] for row in rows] == [0, 1, 2, 3, 4]
    resumed = tj.init(project="p", id="lines", dir=store_dir, resume="must", settings={"silent": True})
    assert resumed.step == 5  # after the last readable row
    resumed.finish()


# ----------------------------------------------------------------------------------------- tracker sync


@pytest.fixture
def online(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MlflowServer:
    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return mlflow_server


def test_tracker_sync_skips_a_damaged_run_with_its_reason_and_syncs_the_others(
    online: MlflowServer, mlflow_client: Any, store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = f"damaged-{uuid.uuid4().hex[:8]}"
    _finished(store_dir, "good", project=project, mode="offline")
    bad = _finished(store_dir, "bad", project=project, mode="offline")
    _cut(bad / store.META)
    capsys.readouterr()
    assert upload.sync_paths([str(store_dir / project)]) == 1
    err = capsys.readouterr().err
    assert f"run {project}/bad is damaged" in err and "It is not synced." in err
    experiment = mlflow_client.get_experiment_by_name(project)
    ids = {r.data.tags["tracker.id"] for r in mlflow_client.search_runs([experiment.experiment_id])}
    assert ids == {"good"}


def test_tracker_sync_sends_a_history_cut_below_its_cursor_again(
    online: MlflowServer, mlflow_client: Any, store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = f"cursor-{uuid.uuid4().hex[:8]}"
    run_dir = _finished(store_dir, "cut", project=project, steps=10)
    state = json.loads((run_dir / "sync.json").read_text())
    assert state["offset"] == (run_dir / store.HISTORY).stat().st_size  # all sent while the run was live
    experiment = mlflow_client.get_experiment_by_name(project)
    [found] = mlflow_client.search_runs([experiment.experiment_id])
    mlflow_client.delete_run(found.info.run_id)  # the server lost them; the store is restored shorter
    state.pop("mlflow_run_id")
    (run_dir / "sync.json").write_text(json.dumps({**state, "offset": state["offset"] * 10}))
    capsys.readouterr()
    assert upload.sync_paths([str(run_dir)]) == 1
    assert "is shorter than sync.json says was sent" in capsys.readouterr().err
    [again] = mlflow_client.search_runs([experiment.experiment_id])  # the active runs: the new one
    points = sorted(m.step for m in mlflow_client.get_metric_history(again.info.run_id, "loss"))
    assert points == list(range(10))
