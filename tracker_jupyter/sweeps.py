"""Sweeps that run offline: ``sweep(config, project=)`` and ``agent(sweep_id, function, count=)``.

A local controller in the store, in the reference's sweep configuration: ``method`` ``grid``,
``random`` or ``bayes`` (optuna's TPE sampler, from the optional extra ``tracker-jupyter[sweeps]``; each
new trial is asked for with every finished trial's parameters and metric told first, so agents in
several processes share one model through the store), ``metric: {name, goal}``, ``parameters`` with ``value``, ``values`` or a ``distribution``
(``constant``, ``categorical``, ``uniform``, ``int_uniform``, ``q_uniform``, ``log_uniform`` (bounds are
exponents of e), ``log_uniform_values``, ``q_log_uniform_values``, ``normal``, ``q_normal``,
``log_normal``), nested ``parameters``, and ``run_cap``.

The sweep lives in ``<store>/<project>/.sweeps/<id>/``: ``sweep.json`` (its configuration) and
``trials.json`` (each trial: its number, config, run and state). Agents claim trials under an exclusive
lock on that folder (``fcntl.flock``), so several agent processes on one machine share one sweep and no
trial runs twice. Each trial is one run: ``init()`` inside ``function`` takes the trial's parameters into
``config`` (they win over the ones ``init`` is given, as in the reference), ``group`` = the sweep id, and
records ``sweep`` in the run's metadata. ``best(sweep_id)`` names the best finished trial by the metric.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tracker_jupyter.core.holder import holder
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.settings import Settings, resolve
from tracker_jupyter.store.files import write_json_atomic

METHODS = ("grid", "random", "bayes")
DISTRIBUTIONS = (
    "constant", "categorical", "uniform", "int_uniform", "q_uniform", "log_uniform", "log_uniform_values",
    "q_log_uniform_values", "normal", "q_normal", "log_normal",
)  # fmt: skip


def sweep(
    sweep: Mapping[str, Any],
    entity: str | None = None,
    project: str | None = None,
    prior_runs: list[str] | None = None,
    *,
    dir: str | os.PathLike[str] | None = None,
) -> str:
    """Create a sweep from its configuration; returns its id (give it to ``agent``)."""
    if callable(sweep) and not isinstance(sweep, Mapping):
        sweep = sweep()
    if not isinstance(sweep, Mapping):
        raise UsageError(f"sweep() takes the sweep configuration as a dict, got {type(sweep).__name__}.")
    config = dict(sweep)
    _check(config)
    project = project or config.get("project") or resolve("project", None, Settings()) or "uncategorized"
    folder = _root(dir) / str(project) / ".sweeps"
    sweep_id = secrets.token_hex(4)
    (folder / sweep_id).mkdir(parents=True)
    write_json_atomic(folder / sweep_id / "sweep.json", {**config, "project": project, "entity": entity})
    write_json_atomic(folder / sweep_id / "trials.json", [])
    return sweep_id


def agent(
    sweep_id: str,
    function: Callable[[], Any] | None = None,
    entity: str | None = None,
    project: str | None = None,
    count: int | None = None,
    *,
    dir: str | os.PathLike[str] | None = None,
) -> int:
    """Run trials of sweep ``sweep_id``: at most ``count`` (all that are left when None). Returns how many
    ran. ``function`` is called once per trial; the ``init()`` inside it gets the trial's config. A trial
    whose function raises is recorded as failed (its run too), its traceback printed, and the agent goes
    on; Ctrl-C stops it."""
    if function is None:
        raise UsageError("agent() needs function=, the training function each trial calls (it calls init()).")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise UsageError(f"agent(count=...) must be a positive int, got {count!r}.")
    folder = _find(sweep_id, project, dir)
    ran = 0
    while count is None or ran < count:
        trial = _claim(folder)
        if trial is None:
            break
        _run_trial(folder, trial, function)
        ran += 1
    return ran


def best(
    sweep_id: str, project: str | None = None, *, dir: str | os.PathLike[str] | None = None
) -> dict[str, Any] | None:
    """The finished trial with the best value of the sweep's metric (None when none has one)."""
    folder = _find(sweep_id, project, dir)
    config = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    metric = config.get("metric") or {}
    done = [
        t
        for t in _read_trials(folder)
        if t.get("state") == "finished" and isinstance(t.get("value"), (int, float))
    ]
    if not done or not metric.get("name"):
        return None
    pick = max if metric.get("goal", "minimize") == "maximize" else min
    return pick(done, key=lambda trial: trial["value"])


# ------------------------------------------------------------------------------------------- the store


def _root(dir: str | os.PathLike[str] | None) -> Path:
    return Path(resolve("root_dir", os.fspath(dir) if dir is not None else None, Settings()))


def _find(sweep_id: str, project: str | None, dir: str | os.PathLike[str] | None) -> Path:
    if not isinstance(sweep_id, str) or not sweep_id:
        raise UsageError(f"a sweep id is the string sweep() returned, got {sweep_id!r}.")
    sweep_id = sweep_id.rsplit("/", 1)[-1]  # the reference's entity/project/id
    root = _root(dir)
    projects = (
        [project] if project else [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    )
    for name in projects:
        folder = root / name / ".sweeps" / sweep_id
        if (folder / "sweep.json").is_file():
            return folder
    raise UsageError(f"no sweep {sweep_id!r} under {root}; create it with sweep(config, project=...).")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    import fcntl

    with open(folder / "lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_trials(folder: Path) -> list[dict[str, Any]]:
    try:
        trials = json.loads((folder / "trials.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{folder / 'trials.json'} is unreadable ({exc}); the sweep cannot go on.") from None
    return trials if isinstance(trials, list) else []


def _claim(folder: Path) -> dict[str, Any] | None:
    """The next trial, recorded as claimed under the lock (None when the sweep is done)."""
    with _locked(folder):
        config = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
        trials = _read_trials(folder)
        number = len(trials)
        cap = config.get("run_cap")
        if cap is not None and number >= int(cap):
            return None
        raw: dict[str, Any] | None = None
        params: dict[str, Any] | None
        if config["method"] == "bayes":
            params, raw = _bayes_params(config, trials, number)
        else:
            params = _next_params(config, number)
        if params is None:
            return None
        trial = {"trial": number, "config": params, "state": "running", "pid": os.getpid()}
        if raw is not None:
            trial["sampled"] = raw  # what the sampler drew (before quantizing or exp): what it is told later
        write_json_atomic(folder / "trials.json", [*trials, trial])
        return trial


def _record(folder: Path, number: int, **fields: Any) -> None:
    with _locked(folder):
        trials = _read_trials(folder)
        trials[number].update(fields)
        write_json_atomic(folder / "trials.json", trials)


def _run_trial(folder: Path, trial: dict[str, Any], function: Callable[[], Any]) -> None:
    config = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    holder.sweep_trial = {
        "sweep": folder.name, "trial": trial["trial"], "config": trial["config"], "project": config["project"],
        "dir": str(folder.parent.parent.parent), "metric": config.get("metric"),
    }  # fmt: skip
    state, value, run_id = "failed", None, None
    try:
        function()
        state = "finished"
    except Exception:  # as the reference's agent: the trial failed, the traceback is shown, the agent goes on
        import traceback

        print(f"tracker: trial {trial['trial']} of sweep {folder.name} failed:", file=sys.stderr)
        traceback.print_exc()
    finally:
        taken = holder.sweep_trial or {}
        holder.sweep_trial = None
        run = taken.get("run")
        if run is not None:
            run_id = run.id
            if not run.finished:
                run.finish(exit_code=0 if state == "finished" else 1)
            name = (config.get("metric") or {}).get("name")
            found = run.summary.get(name) if name else None
            value = found if isinstance(found, (int, float)) and not isinstance(found, bool) else None
        _record(folder, trial["trial"], state=state, run_id=run_id, value=value)


# --------------------------------------------------------------------------------------- the parameters


def _check(config: dict[str, Any]) -> None:
    method = config.get("method")
    if method not in METHODS:
        raise UsageError(f"sweep config: method must be one of {', '.join(METHODS)}, got {method!r}.")
    if method == "bayes":
        if not isinstance(config.get("metric"), Mapping):
            raise UsageError(
                "sweep config: bayes needs metric: {'name': ..., 'goal': ...}, the value it improves."
            )
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise UsageError(
                "sweep config: method 'bayes' uses optuna's sampler; install it with "
                "pip install 'tracker-jupyter[sweeps]' (or pip install optuna), or use grid or random."
            ) from None
    metric = config.get("metric")
    if metric is not None:
        if not isinstance(metric, Mapping) or not isinstance(metric.get("name"), str):
            raise UsageError(
                "sweep config: metric must be {'name': <summary key>, 'goal': 'minimize'|'maximize'}."
            )
        if metric.get("goal", "minimize") not in ("minimize", "maximize"):
            raise UsageError(
                f"sweep config: metric.goal must be 'minimize' or 'maximize', got {metric.get('goal')!r}."
            )
    parameters = config.get("parameters")
    if not isinstance(parameters, Mapping) or not parameters:
        raise UsageError("sweep config: parameters must be a non-empty dict of name to its specification.")
    for name, spec in _flat_specs(parameters):
        kind = _kind(name, spec)
        if method == "grid" and kind not in ("constant", "categorical"):
            raise UsageError(
                f"sweep config: grid needs a list of values for {name!r} (values: [...]), not a {kind} distribution."
            )


def _flat_specs(parameters: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    specs = []
    for name, spec in parameters.items():
        if not isinstance(spec, Mapping):
            raise UsageError(
                f"sweep config: parameter {prefix + name!r} must be a dict such as {{'values': [...]}}."
            )
        if "parameters" in spec:
            specs += _flat_specs(spec["parameters"], f"{prefix}{name}.")
        else:
            specs.append((prefix + name, spec))
    return specs


def _kind(name: str, spec: Mapping[str, Any]) -> str:
    if "value" in spec:
        return "constant"
    if "values" in spec:
        if not isinstance(spec["values"], list) or not spec["values"]:
            raise UsageError(f"sweep config: {name!r} values must be a non-empty list.")
        return "categorical"
    kind = spec.get("distribution")
    if kind is None and "min" in spec and "max" in spec:
        kind = "int_uniform" if all(isinstance(spec[k], int) for k in ("min", "max")) else "uniform"
    if kind not in DISTRIBUTIONS:
        raise UsageError(
            f"sweep config: {name!r} needs value, values, or a distribution ({', '.join(DISTRIBUTIONS)})."
        )
    needs = ("mu", "sigma") if kind in ("normal", "q_normal", "log_normal") else ("min", "max")
    if kind not in ("constant", "categorical") and not all(k in spec for k in needs):
        raise UsageError(f"sweep config: {name!r} ({kind}) needs {' and '.join(needs)}.")
    if needs == ("min", "max") and kind not in ("constant", "categorical"):
        low, high = spec["min"], spec["max"]
        if (
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
            or low > high
        ):
            raise UsageError(f"sweep config: {name!r} needs numbers min <= max, got {low!r} and {high!r}.")
        if kind in ("log_uniform_values", "q_log_uniform_values") and low <= 0:
            raise UsageError(f"sweep config: {name!r} ({kind}) takes values above 0, got min={low!r}.")
    return kind


def _next_params(config: Mapping[str, Any], number: int) -> dict[str, Any] | None:
    specs = _flat_specs(config["parameters"])
    if config["method"] == "grid":
        choices = [[spec["value"]] if "value" in spec else list(spec["values"]) for _, spec in specs]
        combination = next(itertools.islice(itertools.product(*choices), number, None), None)
        if combination is None:
            return None
        return _nested(dict(zip([name for name, _ in specs], combination, strict=True)))
    rng = random.Random(f"{config.get('seed', 0)}:{number}")  # one stream per trial: agents agree on none
    return _nested({name: _sample(name, spec, rng) for name, spec in specs})


def _bayes_params(
    config: Mapping[str, Any], trials: list[dict[str, Any]], number: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The next trial's parameters from optuna's TPE sampler, told every earlier trial's result first."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    specs = dict(_flat_specs(config["parameters"]))
    spaces = {name: _space(name, spec) for name, spec in specs.items() if _kind(name, spec) != "constant"}
    goal = (config.get("metric") or {}).get("goal", "minimize")
    seed = random.Random(f"{config.get('seed', 0)}:{number}").randrange(2**31)  # the same in every agent
    study = optuna.create_study(direction=goal, sampler=optuna.samplers.TPESampler(seed=seed))
    states = optuna.trial.TrialState
    for done in trials:
        sampled = done.get("sampled")
        if not isinstance(sampled, dict) or done.get("state") not in ("finished", "failed"):
            continue  # a running trial: its result comes later
        value = done.get("value")
        if done["state"] == "finished" and isinstance(value, (int, float)) and math.isfinite(value):
            state, told = states.COMPLETE, float(value)
        else:
            state, told = states.FAIL, None
        with contextlib.suppress(ValueError):  # a space changed under the sweep: that trial is left out
            study.add_trial(
                optuna.trial.create_trial(params=sampled, distributions=spaces, value=told, state=state)
            )
    asked = study.ask(spaces)
    raw = dict(asked.params)
    values = {name: spec["value"] for name, spec in specs.items() if _kind(name, spec) == "constant"}
    values.update({name: _from_space(_kind(name, specs[name]), specs[name], raw[name]) for name in spaces})
    return _nested({name: values[name] for name in specs}), raw


def _space(name: str, spec: Mapping[str, Any]) -> Any:
    """The optuna distribution a parameter is drawn from (normal ones: their ±3σ range, as TPE needs
    bounds)."""
    from optuna import distributions as d

    kind = _kind(name, spec)
    if kind == "categorical":
        return d.CategoricalDistribution(list(spec["values"]))
    if kind == "int_uniform":
        return d.IntDistribution(int(spec["min"]), int(spec["max"]))
    if kind in ("uniform", "q_uniform"):
        return d.FloatDistribution(float(spec["min"]), float(spec["max"]))
    if kind == "log_uniform":
        return d.FloatDistribution(math.exp(spec["min"]), math.exp(spec["max"]), log=True)
    if kind in ("log_uniform_values", "q_log_uniform_values"):
        return d.FloatDistribution(float(spec["min"]), float(spec["max"]), log=True)
    low, high = spec["mu"] - 3 * spec["sigma"], spec["mu"] + 3 * spec["sigma"]
    return d.FloatDistribution(float(low), float(high))  # normal, q_normal, log_normal (of the exponent)


def _from_space(kind: str, spec: Mapping[str, Any], raw: Any) -> Any:
    if kind in ("q_uniform", "q_log_uniform_values", "q_normal"):
        return _quantized(raw, spec.get("q", 1))
    if kind == "log_normal":
        return math.exp(raw)
    return raw


def _sample(name: str, spec: Mapping[str, Any], rng: random.Random) -> Any:
    kind = _kind(name, spec)
    if kind == "constant":
        return spec["value"]
    if kind == "categorical":
        return rng.choice(spec["values"])
    low: Any = spec.get("min")
    high: Any = spec.get("max")
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "int_uniform":
        return rng.randint(int(low), int(high))
    if kind == "q_uniform":
        return _quantized(rng.uniform(low, high), spec.get("q", 1))
    if kind == "log_uniform":
        return math.exp(rng.uniform(low, high))
    if kind == "log_uniform_values":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    if kind == "q_log_uniform_values":
        return _quantized(math.exp(rng.uniform(math.log(low), math.log(high))), spec.get("q", 1))
    if kind == "normal":
        return rng.gauss(spec["mu"], spec["sigma"])
    if kind == "q_normal":
        return _quantized(rng.gauss(spec["mu"], spec["sigma"]), spec.get("q", 1))
    return math.exp(rng.gauss(spec["mu"], spec["sigma"]))  # log_normal


def _quantized(value: float, q: float) -> float:
    step = round(value / q) * q
    return int(step) if float(q).is_integer() and float(step).is_integer() else step


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in flat.items():
        parts = name.split(".")
        into = out
        for part in parts[:-1]:
            into = into.setdefault(part, {})
        into[parts[-1]] = value
    return out
