"""define_metric (summary modes, globs, step metrics) and the summary's nested access."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError


def test_summary_modes_give_the_reference_s_shape(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir)
    run.define_metric("val/acc", summary="max")
    run.define_metric("loss", summary="min,mean,last")
    run.define_metric("lr", summary="none")
    run.define_metric("score", summary="best", goal="maximize")
    for acc, loss in ((0.5, 3.0), (0.8, 1.0), (0.7, float("nan")), (0.6, 2.0)):
        run.log({"val/acc": acc, "loss": loss, "lr": 0.1, "score": acc, "plain": loss})
    assert run.summary["val/acc"] == {"max": 0.8}
    assert run.summary["loss"]["min"] == 1.0 and run.summary["loss"]["mean"] == 2.0  # NaN left out
    assert run.summary["loss"]["last"] == 2.0
    assert "lr" not in run.summary and run.summary["score"] == {"best": 0.8}
    assert run.summary["plain"] == 2.0  # undefined keys: the last value
    run.finish()
    stored = json.loads((Path(run.run_dir) / "summary.json").read_text())
    assert stored["val/acc"] == {"max": 0.8} and "lr" not in stored
    meta = json.loads((Path(run.run_dir) / "run.json").read_text())
    assert {"name": "val/acc", "summary": ["max"]} in meta["metrics"]


def test_globs_exact_names_win_and_definitions_merge(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir)
    run.define_metric("val/*", summary="min")
    run.define_metric("val/acc", summary="max")
    run.define_metric("val/acc", summary="last")  # merged: max and last
    everything = run.define_metric("*", summary="first")
    assert everything.summary == ("first",)
    for value in (2.0, 1.0, 3.0):
        run.log({"val/acc": value, "val/loss": value, "other": value})
    assert run.summary["val/acc"] == {"max": 3.0, "last": 3.0}
    assert run.summary["val/loss"] == {"min": 1.0}
    assert run.summary["other"] == {"first": 2.0}
    run.define_metric("val/acc", summary="min", overwrite=True)
    run.log({"val/acc": 0.5})
    assert run.summary["val/acc"] == {"min": 0.5}  # counted from the new definition on
    run.finish()


def test_a_step_metric_is_synced_into_rows_that_lack_it(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir)
    run.log({"epoch": 0})
    metric = run.define_metric("val", summary="min", step_metric="epoch")
    assert metric.step_sync is True and metric.step_metric == "epoch"
    run.log({"val": 2.0, "epoch": 1})
    run.log({"epoch": 3})
    run.log({"val": 8.0})
    run.log({"val": 9.0}, step=10)
    run.finish()
    rows = list(tj.Api(store_dir).run(f"p/{run.id}").scan_history())
    assert [row.get("epoch") for row in rows] == [0, 1, 3, 3, 3]
    assert rows[-1]["_step"] == 10 and run.summary["val"] == {"min": 2.0}


def test_dotted_names_match_the_keys_of_nested_dicts(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir)
    run.define_metric("train.loss", summary="min")
    run.log({"train": {"loss": 2.0}})
    run.log({"train": {"loss": 1.0}})
    assert run.summary["train/loss"] == {"min": 1.0}
    run.finish()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "non-empty name"),
        ({"name": "a*b"}, "may only end in"),
        ({"name": "a", "summary": "min,median"}, "'median' is not a summary mode"),
        ({"name": "a", "goal": "up"}, "minimize"),
        ({"name": "a", "hidden": "yes"}, "hidden"),
        ({"name": "a", "overwrite": 1}, "overwrite"),
    ],
)
def test_bad_definitions_are_clear_errors(store_dir: Path, kwargs: dict, message: str) -> None:
    run = tj.init(project="p", dir=store_dir)
    with pytest.raises(UsageError, match=message):
        run.define_metric(**kwargs)
    run.log({"a": 1.0})  # the run goes on
    assert run.summary["a"] == 1.0
    run.finish()


def test_module_level_define_metric(store_dir: Path) -> None:
    with pytest.raises(UsageError, match="needs an active run"):
        tj.define_metric("x")
    run = tj.init(project="p", dir=store_dir)
    tj.define_metric("x", summary="max")
    tj.log({"x": 1.0})
    tj.log({"x": 0.0})
    assert run.summary["x"] == {"max": 1.0}
    run.finish()


# ----------------------------------------------------------------------------------- nested summary


def test_the_summary_reads_and_writes_prefixes_as_nested_mappings(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir)
    run.log({"train": {"loss": 0.5, "acc": {"top1": 0.7}}, "train_time": 3})
    section = run.summary["train"]
    assert section == {"loss": 0.5, "acc": {"top1": 0.7}} and section["acc"]["top1"] == 0.7
    assert "train" in run.summary and run.summary.train["loss"] == 0.5
    assert sorted(section) == ["acc", "loss"]
    run.summary.update({"train": {"best": 0.9}})
    run.summary["eval"] = {"f1": 0.4}
    section["note"] = "ok"
    assert (
        run.summary["train/best"] == 0.9
        and run.summary["eval/f1"] == 0.4
        and run.summary["train/note"] == "ok"
    )
    del run.summary["eval"]
    assert "eval" not in run.summary and "eval/f1" not in run.summary
    with pytest.raises(KeyError):
        run.summary["nothing"]
    hist = tj.Histogram([1, 2, 3], num_bins=2)
    run.summary["h"] = hist.to_json()  # a stored value's reference stays whole
    assert run.summary["h"]["_type"] == "histogram"
    run.finish()
    stored = json.loads((Path(run.run_dir) / "summary.json").read_text())
    assert stored["train/best"] == 0.9 and not math.isnan(stored["train/loss"])


def test_an_overwritten_definition_counts_from_its_own_start(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir)
    run.define_metric("loss", summary="min")
    run.log({"loss": 1.0})
    run.define_metric("loss", summary="min", overwrite=True)
    run.log({"loss": 2.0})
    assert run.summary["loss"] == {"min": 2.0}  # the value before the new definition is not counted
    run.finish()
