"""Run.log, summary, finish, the context manager and the module-level mirrors."""

from __future__ import annotations

import datetime
import enum
import json
import time
import warnings
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError

from .conftest import run_script


def rows(store_dir: Path, run: tj.Run) -> list[dict]:
    return list(tj.Api(store_dir).run(run.id).scan_history())


def test_each_log_is_a_step_with_ms_timestamp(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    before = time.time() * 1000
    for i in range(5):
        run.log({"loss": 1.0 / (i + 1), "i": i})
    after = time.time() * 1000
    assert run.step == 5
    run.finish()
    history = rows(store_dir, run)
    assert [r["_step"] for r in history] == [0, 1, 2, 3, 4]
    assert [r["i"] for r in history] == [0, 1, 2, 3, 4]
    assert all(before - 1 <= r["_timestamp"] <= after + 1 for r in history)
    assert all(isinstance(r["_timestamp"], int) for r in history)


def test_commit_false_accumulates_into_one_step(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, commit=False)
    assert run.step == 0
    run.log({"c": 3})
    run.log({"d": 4}, commit=False)
    run.finish()  # the pending row is committed at finish
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows(store_dir, run)] == [
        {"a": 1, "b": 2, "c": 3},
        {"d": 4},
    ]


def test_explicit_steps(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    run.log({"a": 1}, step=3)
    run.log({"b": 2}, step=3)  # same step: merged
    run.log({"c": 3}, step=7)  # a later step commits step 3
    run.log({"d": 4})  # no step: joins the pending step 7 and commits it
    run.log({"e": 5})
    run.log({"f": 6}, step=20, commit=True)
    assert run.step == 21
    with pytest.warns(UserWarning, match="lower than the run's current step 21; that row is dropped"):
        run.log({"late": 1}, step=2)
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        run.log({"late": 2}, step=1)
    assert again == []  # warned once only
    run.log({"g": 7}, step=21.0)
    run.finish()
    got = [(r["_step"], sorted(k for k in r if not k.startswith("_"))) for r in rows(store_dir, run)]
    assert got == [(3, ["a", "b"]), (7, ["c", "d"]), (8, ["e"]), (20, ["f"]), (21, ["g"])]
    with pytest.raises(UsageError, match="whole number"):
        tj.init(project="p", dir=store_dir).log({"x": 1}, step=1.5)


@pytest.mark.parametrize("step", [-1, "3", True])
def test_bad_steps_are_refused(store_dir: Path, step):
    run = tj.init(project="p", dir=store_dir)
    with pytest.raises(UsageError, match="step"):
        run.log({"x": 1}, step=step)


def test_keys_must_be_strings_and_data_a_mapping(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    with pytest.raises(UsageError, match=r"keys must be strings; got 3 \(int\)"):
        run.log({3: 1.0})
    with pytest.raises(UsageError, match="has the key 4"):
        run.log({"nested": {4: 1.0}})
    with pytest.raises(UsageError, match="takes a dict"):
        run.log([1, 2])  # type: ignore[arg-type]
    run.log({"ok": 1})  # the run is still usable
    assert run.step == 1


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_a_refused_row_changes_nothing(store_dir: Path, mode: str):
    """A key that is not a string is refused on the common path too (the encoder refuses it there):
    no row is stored, the summary and the step stay as they were, in a stored and a disabled run."""
    run = tj.init(project="p", dir=store_dir, mode=mode)
    run.log({"a": 1.0})
    for bad in ({"b": 2.0, 7: 1.0}, {"b": 2.0, (1, 2): 1.0}):
        with pytest.raises(UsageError, match="keys must be strings"):
            run.log(bad)
    with pytest.raises(UsageError, match="keys must be strings"):
        run.log({"b": 2.0, 7: 1.0}, step=5)
    assert run.step == 1 and "b" not in run.summary
    run.log({"a": 3.0})
    run.finish()
    if mode == "offline":
        rows = list(tj.Api(store_dir).run(f"p/{run.id}").scan_history())
        assert [(r["_step"], r["a"]) for r in rows] == [(0, 1.0), (1, 3.0)]


def test_rows_that_only_look_unusual_are_stored_exactly(store_dir: Path):
    """Strings holding ``null`` or braces, None, NaN, lists and str subclasses take the longer path and are
    stored as logged."""

    class Name(str):
        pass

    run = tj.init(project="p", dir=store_dir)
    values = {
        "s": "null {x}",
        "none": None,
        "nan": float("nan"),
        "inf": float("-inf"),
        "list": [1, 2.5, "a"],
        "tuple": (1, 2),
        "sub": Name("v"),
        "big": 2**70,
    }
    for key, value in values.items():
        run.log({key: value})
    run.finish()
    rows = list(tj.Api(store_dir).run(f"p/{run.id}").scan_history())
    got = {key: row[key] for row in rows for key in row if not key.startswith("_")}
    assert got["s"] == "null {x}" and got["none"] is None and got["nan"] != got["nan"]
    assert got["inf"] == float("-inf") and got["list"] == [1, 2.5, "a"] and got["tuple"] == [1, 2]
    assert got["sub"] == "v" and got["big"] == 2**70
    assert [row["_step"] for row in rows] == list(range(len(values)))


def test_value_kinds_nested_numpy_and_more(store_dir: Path):
    np = pytest.importorskip("numpy")
    run = tj.init(project="p", dir=store_dir)
    run.log(
        {
            "train": {"loss": np.float32(0.5), "acc": {"top1": np.int64(3)}},
            "flag": True,
            "label": "cat",
            "none": None,
            "vec": np.arange(3),
            "one": np.array([2.5]),
            "lst": (1, 2),
        }
    )

    class Weird:
        def __repr__(self):
            return "<weird>"

    with pytest.raises(UsageError, match=r"'w' is a Weird, which log\(\) does not store.*log str\(value\)"):
        run.log({"w": Weird()})
    run.log({"when": datetime.datetime(2026, 1, 2, 3, 4), "path": Path("a/b"), "mode": enum.Enum("M", "A").A})
    run.finish()
    first, second = rows(store_dir, run)
    assert first["train/loss"] == 0.5 and first["train/acc/top1"] == 3
    assert first["flag"] is True and first["label"] == "cat" and first["none"] is None
    assert first["vec"] == [0, 1, 2] and first["one"] == 2.5 and first["lst"] == [1, 2]
    assert second["when"] == "2026-01-02T03:04:00" and second["path"] == "a/b" and second["mode"] == 1
    assert run.summary["train/loss"] == 0.5


def test_caller_dict_is_copied(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    data = {"x": 1}
    run.log(data)
    data["x"] = 99
    run.finish()
    assert rows(store_dir, run)[0]["x"] == 1


def test_summary_last_value_override_and_persistence(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    for i in range(3):
        run.log({"loss": 3 - i, "acc": i})
    run.summary["best_acc"] = 0.9
    run.summary.update({"note": "ok"})
    assert run.summary["loss"] == 1 and run.summary.acc == 2 and "best_acc" in run.summary
    run.log({"loss": 0.5})
    assert run.summary["loss"] == 0.5
    with pytest.raises(UsageError):
        run.summary[1] = 2  # type: ignore[index]
    run.finish()
    saved = tj.Api(store_dir).run(run.id).summary
    assert saved == {"loss": 0.5, "acc": 2, "best_acc": 0.9, "note": "ok"}


def test_finish_is_idempotent_and_records_state(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    run.log({"x": 1})
    run.finish()
    run.finish()
    assert run.state == "finished"
    with pytest.raises(UsageError, match="is finished"):
        run.log({"x": 2})
    failed = tj.init(project="p", dir=store_dir)
    failed.finish(exit_code=3)
    api = tj.Api(store_dir)
    assert api.run(run.id).state == "finished"
    record = api.run(failed.id)
    assert record.state == "failed" and record.exit_code == 3


def test_context_manager_finishes_and_reraises(store_dir: Path):
    with tj.init(project="p", dir=store_dir) as run:
        run.log({"x": 1})
    assert tj.Api(store_dir).run(run.id).state == "finished"
    with pytest.raises(RuntimeError, match="boom"), tj.init(project="p", dir=store_dir) as failing:
        raise RuntimeError("boom")
    record = tj.Api(store_dir).run(failing.id)
    assert record.state == "failed" and record.exit_code == 1


def test_module_level_mirrors(store_dir: Path):
    with pytest.raises(UsageError, match=r"log\(\) needs an active run: call tracker_jupyter.init\(\) first"):
        tj.log({"x": 1})
    with pytest.raises(UsageError, match="init"):
        tj.config["x"]
    assert not tj.summary
    tj.finish()  # no run: nothing to do
    run = tj.init(project="p", dir=store_dir, config={"a": 1})
    assert tj.run is run and tj.config is run.config and tj.summary is run.summary
    tj.log({"x": 1})
    tj.config.b = 2
    tj.finish()
    assert tj.run is None
    assert run.config.b == 2 and run.summary["x"] == 1


def test_name_notes_tags_persist(store_dir: Path):
    run = tj.init(project="p", dir=store_dir, tags=["a"])
    run.name = run.id
    run.notes = "later"
    run.tags += ("b",)
    run.save()
    meta = json.loads((store_dir / "p" / run.id / "run.json").read_text())
    assert (meta["name"], meta["notes"], meta["tags"]) == (run.id, "later", ["a", "b"])
    with pytest.raises(UsageError):
        run.name = ""


def test_save_copies_files_into_the_run(store_dir: Path, tmp_path: Path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.pt").write_bytes(b"weights")
    (tmp_path / "out" / "log.txt").write_text("hi")
    run = tj.init(project="p", dir=store_dir)
    written = run.save("out/*.pt")
    assert [Path(p).name for p in written] == ["model.pt"]
    assert (Path(run.dir) / "model.pt").read_bytes() == b"weights"
    with pytest.warns(UserWarning, match="matched no files"):
        assert run.save("nothing/*.bin") == []


def test_unfinished_run_is_finished_at_exit_and_failed_on_uncaught_error(tmp_path: Path):
    done = run_script(
        "import tracker_jupyter as tj\nr = tj.init(project='p', dir='s')\nr.log({'x': 1})\n", tmp_path
    )
    assert done.returncode == 0, done.stderr
    done = run_script(
        "import tracker_jupyter as tj\nr = tj.init(project='p', dir='s')\nr.log({'x': 2})\nraise SystemError('x')\n",
        tmp_path,
    )
    assert done.returncode == 1
    states = sorted((r.state, r.summary["x"]) for r in tj.Api(tmp_path / "s").runs())
    assert states == [("failed", 2), ("finished", 1)]


def test_log_memory_stays_bounded_in_a_tight_loop(store_dir: Path):
    run = tj.init(project="p", dir=store_dir, settings={"max_pending_rows": 1000})
    peak = 0
    for i in range(30_000):
        run.log({"a": i, "b": 1.0, "c": 2.0})
        peak = max(peak, run.sink.pending())
    run.finish()
    assert peak <= 1001
    assert tj.Api(store_dir).run(run.id).summary["a"] == 29_999
    assert sum(1 for _ in tj.Api(store_dir).run(run.id).scan_history()) == 30_000


def test_saving_a_file_already_in_run_dir_is_accepted_and_recorded(store_dir: Path):
    """The reference's idiom: wandb.save(os.path.join(wandb.run.dir, "checkpoint.pt"))."""
    import os

    run = tj.init(project="p", dir=store_dir)
    assert os.path.isabs(run.dir)
    checkpoint = os.path.join(run.dir, "checkpoint.pt")
    Path(checkpoint).write_bytes(b"weights")
    assert tj.save(checkpoint, policy="end") == [checkpoint]
    assert Path(checkpoint).read_bytes() == b"weights"
    run.finish()
    meta = json.loads((Path(run.run_dir) / "run.json").read_text())
    assert meta["saved_files"] == {"files/checkpoint.pt": "end"}
    with pytest.raises(UsageError, match="policy"):
        tj.init(project="p", dir=store_dir).save(checkpoint, policy="later")


def test_save_records_files_of_a_run_in_a_relative_store(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tj.init(project="p", dir="relative-store")
    (tmp_path / "weights.pt").write_bytes(b"w")
    assert [Path(p).name for p in run.save("weights.pt", policy="end")] == ["weights.pt"]
    run.finish()
    meta = json.loads((Path(run.run_dir) / "run.json").read_text())
    assert meta["saved_files"] == {"files/weights.pt": "end"}
