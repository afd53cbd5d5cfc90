"""Api in the reference's shapes: runs(path, filters, order), history(samples, keys, x_axis, pandas), the
run's url, files and summary."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError


@pytest.fixture
def three(store_dir: Path) -> list[str]:
    ids = []
    for lr, acc, tags, fail in (
        (0.1, 0.7, ["base"], False),
        (0.01, 0.9, ["best", "base"], False),
        (0.001, 0.5, [], True),
    ):
        run = tj.init(
            project="p", entity="team", dir=store_dir, config={"lr": lr, "opt": {"name": "adam"}}, tags=tags
        )
        for step in range(30):
            run.log({"val/acc": acc * step / 29, "loss": 1.0 / (step + 1), "epoch": step // 10})
        run.finish(exit_code=1 if fail else 0)
        ids.append(run.id)
        time.sleep(0.01)  # distinct start times
    return ids


def test_runs_by_entity_project_filters_and_order(store_dir: Path, three: list[str]) -> None:
    api = tj.Api(dir=store_dir)
    assert [r.id for r in api.runs("team/p")] == three  # oldest first, the reference's default
    assert [r.id for r in api.runs("p", order="-created_at")] == three[::-1]
    assert [r.id for r in api.runs("p", filters={"config.lr": 0.01})] == [three[1]]
    assert [r.id for r in api.runs("p", filters={"state": "failed"})] == [three[2]]
    assert [r.id for r in api.runs("p", filters={"tags": {"$in": ["best"]}})] == [three[1]]
    assert [r.id for r in api.runs("p", filters={"tags": "base"})] == three[:2]
    assert [r.id for r in api.runs("p", filters={"config.lr": {"$gt": 0.005, "$lt": 0.5}})] == three[:2]
    either = {"$or": [{"config.lr": 0.1}, {"summary_metrics.val/acc": {"$lte": 0.5}}]}
    assert [r.id for r in api.runs("p", filters=either)] == [three[0], three[2]]
    assert [
        r.id
        for r in api.runs("p", filters={"config.opt.name": {"$regex": "^ad"}, "state": {"$ne": "failed"}})
    ] == three[:2]
    assert [r.id for r in api.runs("p", order="-summary_metrics.val/acc")] == [three[1], three[0], three[2]]
    assert api.runs("p", filters={"config.missing": {"$exists": True}}) == []
    assert api.runs("other/p") == []  # another entity's project
    with pytest.raises(UsageError, match="unknown operator"):
        api.runs("p", filters={"$where": "1"})
    with pytest.raises(UsageError, match=r"'\$near' on 'config.lr' is not one of"):
        api.runs("p", filters={"config.lr": {"$near": 1}})


def test_history_is_a_sampled_dataframe(store_dir: Path, three: list[str]) -> None:
    pytest.importorskip("pandas")
    run = tj.Api(dir=store_dir).run(f"team/p/runs/{three[0]}")
    frame = run.history()
    assert len(frame) == 30 and {"val/acc", "loss", "_step"} <= set(frame.columns)
    sampled = run.history(samples=5, keys=["loss"], x_axis="epoch")
    assert list(sampled.columns) == ["_step", "loss", "epoch"] and len(sampled) == 5
    assert sampled["_step"].iloc[0] == 0 and sampled["_step"].iloc[-1] == 29
    rows = run.history(pandas=False, samples=3)
    assert isinstance(rows, list) and [r["_step"] for r in rows] == [0, 14, 29]
    with pytest.raises(UsageError, match="keys"):
        run.history(keys="loss")
    sampled = tj.init(project="p", dir=store_dir, settings={"system_metrics": True})
    sampled.finish()
    run = tj.Api(dir=store_dir).run(sampled.path)
    system = run.history(stream="system", pandas=False)  # a run shorter than one interval: one sample
    assert (
        len(system) == 1 and system[0]["_step"] == 0 and system[0]["system/cpu_utilization_percentage"] >= 0
    )
    assert run.history(stream="events", pandas=False) == system  # the reference's name for it
    with pytest.raises(UsageError, match="'default' or 'system'"):
        run.history(stream="gpu")


def test_run_fields_of_the_reference(store_dir: Path, three: list[str]) -> None:
    run = tj.Api(dir=store_dir, overrides={"project": "p"}).run(three[1])  # the overrides' project
    assert run.summary._json_dict["val/acc"] == pytest.approx(0.9)
    assert run.url.startswith("file://") and run.display_name == run.name
    live = tj.init(project="p", dir=store_dir)
    Path(live.dir, "model.pt").write_bytes(b"w")
    live.save(str(Path(live.dir, "model.pt")))
    live.finish()
    stored = tj.Api(store_dir).run(live.id)
    assert [p.name for p in stored.files()] == ["model.pt", "output.log"]  # what it printed, as the reference
    assert stored.file("model.pt").read_bytes() == b"w"
    assert stored.console_tail(1) == [f"tracker: run {live.name} ({live.id}) → {live.run_dir} · offline "
                                      f"(upload later: tracker sync {live.run_dir})"]  # fmt: skip
    (store_dir / "outside.txt").write_text("not the run's")
    with pytest.raises(UsageError, match="no file"):
        stored.file("../../../outside.txt")  # outside the run directory: refused


def test_api_arguments_are_checked() -> None:
    with pytest.raises(UsageError, match="takes entity, project, base_url"):
        tj.Api(overrides={"color": "red"})
    with pytest.raises(UsageError, match="timeout"):
        tj.Api(timeout=0)
    assert tj.Api(timeout=20).timeout == 20
    with pytest.raises(UsageError, match="'project' or 'entity/project'"):
        tj.Api().runs("a/b/c")
