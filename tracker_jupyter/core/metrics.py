"""``define_metric``: how a metric is summarized, which x axis it is charted against, whether it is shown.

The reference's semantics, with these choices where it left room (said in ``Run.define_metric``):

- names match exactly, or as a glob with one trailing ``*`` (a prefix match; ``"*"`` alone matches every
  key not starting with ``_``). An exact definition wins over a glob, and among globs the first defined.
  A name with dots (``"train.loss"``, the reference's name for a nested value) also matches the key
  ``log()`` makes of it (``"train/loss"``).
- defining a name again merges into the earlier definition (summary modes added, a new ``step_metric``
  replacing the old, ``hidden`` and ``step_sync`` only turned on) unless ``overwrite=True``.
- summary modes ``min,max,mean,first,last,best`` make the summary value a dict of those (``{"max":
  0.8}``); ``copy`` (or no mode) keeps the plain last value; ``none`` leaves the key out of the summary.
  Statistics count the values logged after the definition. NaN and infinities are left out of ``min``,
  ``max``, ``mean`` and ``best``: one diverged step does not erase the best value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tracker_jupyter.exceptions import UsageError

SUMMARY_MODES = ("min", "max", "mean", "first", "last", "best", "copy", "none")
_STATS = ("min", "max", "mean", "first", "last", "best")


@dataclass
class Metric:
    """What ``define_metric`` returns: the definition of one name or glob."""

    name: str
    step_metric: str | None = None
    step_sync: bool | None = None
    hidden: bool | None = None
    summary: tuple[str, ...] | None = None
    goal: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value is not None}


@dataclass
class _Stats:
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    first: Any = None
    last: Any = None
    seen: bool = False

    def add(self, value: Any) -> None:
        if not self.seen:
            self.first, self.seen = value, True
        self.last = value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            self.count += 1
            self.total += value
            self.low = min(self.low, value)
            self.high = max(self.high, value)

    def summary(self, metric: Metric) -> dict[str, Any]:
        ops = metric.summary or ()
        out: dict[str, Any] = {}
        for op in ops:
            if op == "first":
                out["first"] = self.first
            elif op == "last":
                out["last"] = self.last
            elif self.count:
                if op == "min":
                    out["min"] = self.low
                elif op == "max":
                    out["max"] = self.high
                elif op == "mean":
                    out["mean"] = self.total / self.count
                elif op == "best":
                    out["best"] = self.high if metric.goal == "maximize" else self.low
        return out


@dataclass
class MetricDefinitions:
    """The definitions of one run, and the statistics of the keys they summarize."""

    exact: dict[str, Metric] = field(default_factory=dict)
    globs: list[Metric] = field(default_factory=list)
    _resolved: dict[str, Metric | None] = field(default_factory=dict)
    _stats: dict[str, _Stats] = field(default_factory=dict)
    _last: dict[str, Any] = field(default_factory=dict)  # the step metrics' latest values

    def define(self, metric: Metric, overwrite: bool) -> Metric:
        earlier = self._find_definition(metric.name)
        if earlier is not None and not overwrite:
            _merge(earlier, metric)
            metric = earlier
        elif metric.name.endswith("*"):
            self.globs = [glob for glob in self.globs if glob.name != metric.name] + [metric]
        else:
            self.exact[metric.name] = metric
            if "." in metric.name and "\\." not in metric.name:
                self.exact[metric.name.replace(".", "/")] = metric
        self._resolved.clear()
        if earlier is not None and overwrite:  # a replaced definition counts from now on, as documented
            for key in [key for key in self._stats if self.of(key) is metric]:
                del self._stats[key]
        return metric

    def _find_definition(self, name: str) -> Metric | None:
        if name.endswith("*"):
            return next((glob for glob in self.globs if glob.name == name), None)
        return self.exact.get(name)

    def of(self, key: str) -> Metric | None:
        """The definition that applies to ``key``, if any (cached per key)."""
        try:
            return self._resolved[key]
        except KeyError:
            pass
        metric = self.exact.get(key)
        if metric is None:
            for glob in self.globs:
                prefix = glob.name[:-1]
                if key.startswith(prefix) and not (prefix == "" and key.startswith("_")):
                    metric = glob
                    break
        self._resolved[key] = metric
        return metric

    @property
    def syncs_steps(self) -> bool:
        return any(metric.step_metric and metric.step_sync for metric in self.all())

    def all(self) -> list[Metric]:
        unique: dict[int, Metric] = {id(metric): metric for metric in self.exact.values()}
        unique.update({id(metric): metric for metric in self.globs})
        return list(unique.values())

    def remember(self, values: dict[str, Any]) -> None:
        """Take the latest values logged so far (the summary) as the step metrics' latest values."""
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._last[key] = value

    def with_steps(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` plus the latest value of the step metric of each synced metric in it that lacks it."""
        self.remember(row)
        added: dict[str, Any] = {}
        for key in row:
            metric = self.of(key)
            if (
                metric is not None
                and metric.step_metric
                and metric.step_sync
                and metric.step_metric not in row
            ):
                added[metric.step_metric] = self._last.get(metric.step_metric, 0)
        return {**row, **added} if added else row

    def summarize(self, summary: dict[str, Any], row: dict[str, Any]) -> None:
        """Update ``summary`` with ``row``: plain last values, and the modes of defined metrics."""
        summary.update(row)
        for key, value in row.items():
            metric = self.of(key)
            if metric is None or not metric.summary or metric.summary == ("copy",):
                continue
            if "none" in metric.summary:
                summary.pop(key, None)
                continue
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = _Stats()
            stats.add(value)
            summary[key] = stats.summary(metric)


def make_metric(
    name: Any,
    step_metric: Any = None,
    step_sync: Any = None,
    hidden: Any = None,
    summary: Any = None,
    goal: Any = None,
) -> Metric:
    """A checked ``Metric``: a UsageError saying which argument is wrong and what it takes."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"define_metric() needs a non-empty name (a string), got {name!r}.")
    if "*" in name[:-1]:
        raise UsageError(f"define_metric({name!r}): a glob may only end in '*' (as 'val/*').")
    if step_metric is not None and not isinstance(step_metric, str):
        step_metric = getattr(step_metric, "name", step_metric)  # a Metric
        if not isinstance(step_metric, str):
            raise UsageError(f"define_metric(step_metric=...) must be a metric name, got {step_metric!r}.")
    for what, flag in (("step_sync", step_sync), ("hidden", hidden)):
        if flag is not None and not isinstance(flag, bool):
            raise UsageError(f"define_metric({what}=...) must be True or False, got {flag!r}.")
    modes = _summary_modes(summary)
    if goal is not None:
        goal = (
            {"min": "minimize", "max": "maximize"}.get(str(goal)[:3].lower())
            if isinstance(goal, str)
            else None
        )
        if goal is None:
            raise UsageError("define_metric(goal=...) must be 'minimize' or 'maximize'.")
    if step_sync is None and step_metric is not None:
        step_sync = True
    return Metric(name, step_metric, step_sync, hidden, modes, goal)


def _summary_modes(summary: Any) -> tuple[str, ...] | None:
    if summary is None or summary == "":
        return None
    if not isinstance(summary, str):
        raise UsageError(f"define_metric(summary=...) must be a string such as 'min,max', got {summary!r}.")
    modes = tuple(part.strip().lower() for part in summary.split(","))
    for mode in modes:
        if mode not in SUMMARY_MODES:
            raise UsageError(
                f"define_metric(summary={summary!r}): {mode!r} is not a summary mode; use a comma-separated "
                f"list of {', '.join(SUMMARY_MODES)}."
            )
    return modes


def _merge(earlier: Metric, new: Metric) -> None:
    if new.summary:
        earlier.summary = tuple(dict.fromkeys((*(earlier.summary or ()), *new.summary)))
    if new.step_metric:
        earlier.step_metric = new.step_metric
    for flag in ("step_sync", "hidden"):
        if getattr(new, flag):
            setattr(earlier, flag, True)
    if new.goal:
        earlier.goal = new.goal
