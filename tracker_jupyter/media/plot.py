"""``tracker_jupyter.plot``: charts built on Tables (the reference's ``wandb.plot``), each logged as a value.

``run.log({"pr": plot.pr_curve(y_true, y_probas)})`` stores the chart's table like any logged ``Table``
and a row value that describes the chart::

    {"_type": "chart", "chart": "pr_curve", "title": "Precision-Recall Curve",
     "fields": {"x": "recall", "y": "precision", "stroke": "class"}, "table": {"_type": "table-file", ...}}

``fields`` names the table's columns the chart draws. The curves and the confusion matrix are computed
here with numpy (no scikit-learn needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.media.table import Table

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

__all__ = [
    "Chart", "bar", "confusion_matrix", "histogram", "line", "line_series", "pr_curve", "roc_curve", "scatter",
]  # fmt: skip


class Chart:
    """A chart to log: a ``Table`` and which of its columns the chart draws."""

    def __init__(
        self,
        chart: str,
        table: Table,
        fields: dict[str, str],
        title: str = "",
        labels: dict[str, str] | None = None,
    ) -> None:
        for field, column in fields.items():
            if column not in table.columns:
                raise UsageError(
                    f"plot.{chart}(): {field}={column!r} is not a column of the table; its columns are "
                    f"{table.columns}."
                )
        self.chart, self.table, self.fields, self.title = chart, table, fields, title
        self.labels = labels or {}  # axis titles that differ from the column names

    def _to_history(self, run: Run, key: str) -> dict[str, Any]:
        stored = {"_type": "chart", "chart": self.chart, "title": self.title, "fields": dict(self.fields)}
        if self.labels:
            stored["labels"] = dict(self.labels)
        stored["table"] = self.table._to_history(run, f"{key}_table")
        return stored

    def __repr__(self) -> str:
        return f"<Chart {self.chart} {self.title!r} of {self.table!r}>"


def _table(table: Any, chart: str) -> Table:
    if not isinstance(table, Table):
        raise UsageError(f"plot.{chart}() takes a tracker_jupyter.Table first, got {type(table).__name__}.")
    return table


def line(
    table: Table, x: str, y: str, stroke: str | None = None, title: str = "", split_table: bool = False
) -> Chart:
    """A line chart of column ``y`` against column ``x`` (one line per value of ``stroke``)."""
    fields = {"x": x, "y": y, **({"stroke": stroke} if stroke else {})}
    return Chart("line", _table(table, "line"), fields, title)


def scatter(table: Table, x: str, y: str, title: str = "", split_table: bool = False) -> Chart:
    """A scatter plot of column ``y`` against column ``x``."""
    return Chart("scatter", _table(table, "scatter"), {"x": x, "y": y}, title)


def bar(table: Table, label: str, value: str, title: str = "", split_table: bool = False) -> Chart:
    """A bar per row: ``label`` names it, ``value`` is its length."""
    return Chart("bar", _table(table, "bar"), {"label": label, "value": value}, title)


def histogram(table: Table, value: str, title: str = "", split_table: bool = False) -> Chart:
    """A histogram of column ``value``."""
    return Chart("histogram", _table(table, "histogram"), {"value": value}, title)


def line_series(
    xs: Sequence[Any],
    ys: Sequence[Sequence[Any]],
    keys: Sequence[str] | None = None,
    title: str = "",
    xname: str = "x",
    split_table: bool = False,
) -> Chart:
    """Several lines in one chart: ``ys[i]`` against ``xs`` (or ``xs[i]`` when ``xs`` is a list of lists),
    named ``keys[i]`` (default ``key_0``, ``key_1``...)."""
    ys = [list(series) for series in ys]
    if keys is not None and len(keys) != len(ys):
        raise UsageError(f"plot.line_series(): {len(keys)} keys for {len(ys)} lines.")
    names = list(keys) if keys is not None else [f"key_{i}" for i in range(len(ys))]
    xs = list(xs)
    per_line = bool(xs) and hasattr(xs[0], "__len__") and not isinstance(xs[0], str)  # one xs per line
    table = Table(columns=["lineKey", "lineVal", "step"], allow_mixed_types=True)
    for index, series in enumerate(ys):
        steps = list(xs[index]) if per_line else list(xs)
        if len(steps) != len(series):
            raise UsageError(
                f"plot.line_series(): line {names[index]!r} has {len(series)} values for {len(steps)} xs."
            )
        for step, value in zip(steps, series, strict=True):
            table.add_data(names[index], value, step)
    fields = {"x": "step", "y": "lineVal", "stroke": "lineKey"}
    return Chart("line_series", table, fields, title, labels={"x": xname})


def confusion_matrix(
    probs: Any = None,
    y_true: Any = None,
    preds: Any = None,
    class_names: Sequence[str] | None = None,
    title: str = "Confusion Matrix Curve",
    split_table: bool = False,
) -> Chart:
    """Counts of each (actual, predicted) class pair, from ``preds`` or from ``probs`` (the argmax)."""
    import numpy as np

    if (probs is None) == (preds is None):
        raise UsageError("plot.confusion_matrix() takes probs or preds (one of them).")
    if y_true is None:
        raise UsageError("plot.confusion_matrix() needs y_true, the true class of each example.")
    actual = np.asarray(y_true).ravel()
    predicted = np.asarray(probs).argmax(axis=-1).ravel() if probs is not None else np.asarray(preds).ravel()
    if actual.shape != predicted.shape:
        raise UsageError(
            f"plot.confusion_matrix(): {actual.size} true classes for {predicted.size} predictions."
        )
    classes = int(max(actual.max(initial=-1), predicted.max(initial=-1))) + 1
    if class_names is not None:
        if len(class_names) < classes:
            raise UsageError(
                f"plot.confusion_matrix(): {len(class_names)} class names for class ids up to {classes - 1}."
            )
        classes = len(class_names)
    if actual.size and (actual.min() < 0 or predicted.min() < 0):
        raise UsageError(
            "plot.confusion_matrix(): classes must be ids 0, 1, 2, ... (map labels to ids first)."
        )
    names = list(class_names) if class_names is not None else [f"Class {i + 1}" for i in range(classes)]
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (actual.astype(np.int64), predicted.astype(np.int64)), 1)
    table = Table(columns=["Actual", "Predicted", "nPredictions"])
    for i in range(classes):
        for j in range(classes):
            table.add_data(names[i], names[j], int(counts[i, j]))
    return Chart(
        "confusion_matrix",
        table,
        {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
        title,
    )


def pr_curve(
    y_true: Any = None,
    y_probas: Any = None,
    labels: Sequence[str] | None = None,
    classes_to_plot: Sequence[int] | None = None,
    interp_size: int = 21,
    title: str = "Precision-Recall Curve",
    split_table: bool = False,
) -> Chart:
    """Precision against recall for each class (one-vs-rest), at ``interp_size`` recall points."""
    import numpy as np

    table = Table(columns=["class", "precision", "recall"])
    grid = np.linspace(0.0, 1.0, interp_size)
    for name, scores, positive in _per_class("pr_curve", y_true, y_probas, labels, classes_to_plot):
        order = np.argsort(-scores, kind="stable")
        hits = positive[order]
        true_pos = np.cumsum(hits)
        precision = true_pos / np.arange(1, hits.size + 1)
        recall = true_pos / max(int(hits.sum()), 1)
        # the best precision reachable at each recall or more (the usual interpolation)
        best = np.maximum.accumulate(precision[::-1])[::-1]
        for point in grid:
            reachable = best[recall >= point]
            table.add_data(
                name, round(float(reachable[0]) if reachable.size else 0.0, 3), round(float(point), 3)
            )
    return Chart("pr_curve", table, {"x": "recall", "y": "precision", "stroke": "class"}, title)


def roc_curve(
    y_true: Any = None,
    y_probas: Any = None,
    labels: Sequence[str] | None = None,
    classes_to_plot: Sequence[int] | None = None,
    title: str = "ROC Curve",
    split_table: bool = False,
) -> Chart:
    """True-positive rate against false-positive rate for each class (one-vs-rest)."""
    import numpy as np

    table = Table(columns=["class", "fpr", "tpr"])
    for name, scores, positive in _per_class("roc_curve", y_true, y_probas, labels, classes_to_plot):
        order = np.argsort(-scores, kind="stable")
        hits = positive[order]
        tpr = np.concatenate([[0.0], np.cumsum(hits) / max(int(hits.sum()), 1)])
        fpr = np.concatenate([[0.0], np.cumsum(~hits) / max(int((~hits).sum()), 1)])
        for x, y in zip(fpr, tpr, strict=True):
            table.add_data(name, round(float(x), 4), round(float(y), 4))
    return Chart("roc_curve", table, {"x": "fpr", "y": "tpr", "stroke": "class"}, title)


def _per_class(chart: str, y_true: Any, y_probas: Any, labels: Any, classes_to_plot: Any) -> Any:
    import numpy as np

    if y_true is None or y_probas is None:
        raise UsageError(f"plot.{chart}() needs y_true (class ids) and y_probas (one score per class).")
    truth = np.asarray(y_true).ravel()
    probas = np.asarray(y_probas, dtype=np.float64)
    if probas.ndim == 1:  # binary: the score of class 1
        probas = np.stack([1.0 - probas, probas], axis=1)
    if probas.ndim != 2 or probas.shape[0] != truth.size:
        raise UsageError(
            f"plot.{chart}(): y_probas must be (examples, classes) for {truth.size} examples, got {probas.shape}."
        )
    classes = range(probas.shape[1]) if classes_to_plot is None else classes_to_plot
    for index in classes:
        if not 0 <= int(index) < probas.shape[1]:
            raise UsageError(f"plot.{chart}(classes_to_plot=...): no class {index} among {probas.shape[1]}.")
        name = labels[index] if labels is not None else str(index)
        yield name, probas[:, index], truth == index
