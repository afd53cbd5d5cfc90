"""tracker_jupyter.plot: charts stored as their tables plus a description, checked against the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError

np = pytest.importorskip("numpy")


def _stored(store_dir: Path, **charts: object) -> tuple[tj.Run, dict]:
    run = tj.init(project="p", dir=store_dir)
    run.log(dict(charts))
    run.finish()
    (row,) = list(tj.Api(store_dir).run(f"p/{run.id}").scan_history())
    return run, row


def _table(run: tj.Run, chart: dict) -> dict:
    return json.loads((Path(run.run_dir) / chart["table"]["path"]).read_text())


def test_confusion_matrix_counts_each_pair(store_dir: Path) -> None:
    y_true = [0, 1, 2, 2, 1, 0]
    preds = [0, 2, 2, 2, 1, 1]
    run, row = _stored(
        store_dir, cm=tj.plot.confusion_matrix(y_true=y_true, preds=preds, class_names=["a", "b", "c"])
    )
    chart = row["cm"]
    assert chart["_type"] == "chart" and chart["chart"] == "confusion_matrix"
    stored = _table(run, chart)
    assert stored["columns"] == ["Actual", "Predicted", "nPredictions"]
    counts = {(a, p): n for a, p, n in stored["data"]}
    assert counts[("a", "a")] == 1 and counts[("a", "b")] == 1 and counts[("b", "c")] == 1
    assert counts[("c", "c")] == 2 and sum(counts.values()) == 6
    probs = np.eye(3)[preds]  # the same predictions as scores
    again = tj.plot.confusion_matrix(probs=probs, y_true=y_true)
    assert sorted(r[2] for r in again.table.data) == sorted(r[2] for r in stored["data"])
    with pytest.raises(UsageError, match="probs or preds"):
        tj.plot.confusion_matrix(y_true=y_true)
    with pytest.raises(UsageError, match="6 true classes for 5"):
        tj.plot.confusion_matrix(y_true=y_true, preds=preds[:5])


def test_pr_and_roc_curves_of_a_perfect_and_a_random_classifier(store_dir: Path) -> None:
    y_true = np.array([0, 0, 1, 1, 1, 0])
    perfect = np.stack([1 - y_true, y_true], axis=1).astype(float)
    run, row = _stored(
        store_dir,
        pr=tj.plot.pr_curve(y_true, perfect, labels=["neg", "pos"]),
        roc=tj.plot.roc_curve(y_true, perfect),
    )
    pr = _table(run, row["pr"])
    assert pr["columns"] == ["class", "precision", "recall"] and len(pr["data"]) == 2 * 21
    assert all(
        precision == 1.0 for _, precision, _ in pr["data"]
    )  # perfect scores: precision 1 at any recall
    roc = _table(run, row["roc"])
    points = [(fpr, tpr) for name, fpr, tpr in roc["data"] if name == "1"]
    assert points[0] == (0.0, 0.0) and points[-1] == (1.0, 1.0) and (0.0, 1.0) in points  # the corner
    assert row["roc"]["fields"] == {"x": "fpr", "y": "tpr", "stroke": "class"}


def test_table_charts_and_line_series(store_dir: Path) -> None:
    table = tj.Table(columns=["epoch", "acc"], data=[[0, 0.5], [1, 0.7]])
    run, row = _stored(
        store_dir,
        line=tj.plot.line(table, "epoch", "acc", title="Accuracy"),
        scatter=tj.plot.scatter(table, "epoch", "acc"),
        bar=tj.plot.bar(table, "epoch", "acc"),
        hist=tj.plot.histogram(table, "acc"),
        series=tj.plot.line_series([0, 1, 2], [[1, 2, 3], [3, 2, 1]], keys=["up", "down"], xname="epoch"),
    )
    assert row["line"]["title"] == "Accuracy" and row["line"]["fields"] == {"x": "epoch", "y": "acc"}
    series = _table(run, row["series"])
    assert series["columns"] == ["lineKey", "lineVal", "step"] and ["down", 1, 2] in series["data"]
    assert row["series"]["labels"] == {"x": "epoch"}
    with pytest.raises(UsageError, match="'loss' is not a column"):
        tj.plot.line(table, "epoch", "loss")
    with pytest.raises(UsageError, match=r"takes a tracker_jupyter\.Table"):
        tj.plot.line({"epoch": [1]}, "epoch", "acc")
