"""Sweeps offline: a local controller in the store, shared by agent processes without running a trial twice."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError, sweeps

GRID = {
    "method": "grid",
    "metric": {"name": "score", "goal": "maximize"},
    "parameters": {
        "lr": {"values": [0.1, 0.01, 0.001]},
        "layers": {"values": [1, 2]},
        "opt": {"value": "sgd"},
    },
}

AGENT = """
import sys, time, tracker_jupyter as tj
def train():
    run = tj.init(config={{"lr": -1.0, "epochs": 2}}, settings={{"silent": True}})
    time.sleep(0.05)
    run.log({{"score": run.config["lr"] * run.config["layers"]}})
tj.agent({sweep_id!r}, function=train, dir={store!r})
"""


def test_two_agent_processes_share_a_grid_and_run_each_trial_once(store_dir: Path) -> None:
    sweep_id = tj.sweep(GRID, project="sw", dir=store_dir)
    script = AGENT.format(sweep_id=sweep_id, store=str(store_dir))
    agents = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [agent.wait(timeout=120) for agent in agents] == [0, 0]
    trials = json.loads((store_dir / "sw" / ".sweeps" / sweep_id / "trials.json").read_text())
    configs = sorted((t["config"]["lr"], t["config"]["layers"]) for t in trials)
    assert configs == sorted((lr, layers) for lr in (0.1, 0.01, 0.001) for layers in (1, 2))  # each once
    assert {t["state"] for t in trials} == {"finished"} and len({t["pid"] for t in trials}) <= 2
    runs = tj.Api(dir=store_dir).runs("sw")
    assert len(runs) == 6 and {r.group for r in runs} == {sweep_id}
    for record in runs:
        assert record.config["epochs"] == 2 and record.config["opt"] == "sgd" and record.config["lr"] != -1.0
        assert record.meta["sweep"]["id"] == sweep_id
    best = sweeps.best(sweep_id, dir=store_dir)
    assert (
        best is not None and best["config"] == {"lr": 0.1, "layers": 2, "opt": "sgd"} and best["value"] == 0.2
    )


def test_random_search_honours_count_and_the_distributions(store_dir: Path) -> None:
    config = {
        "method": "random",
        "run_cap": 10,
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
            "batch": {"distribution": "q_uniform", "min": 16, "max": 128, "q": 16},
            "depth": {"min": 2, "max": 5},
            "optimizer": {"parameters": {"name": {"values": ["adam", "sgd"]}, "momentum": {"value": 0.9}}},
        },
    }
    sweep_id = tj.sweep(config, project="rs", dir=store_dir)
    seen = []

    def train() -> None:
        run = tj.init(settings={"silent": True})
        seen.append(dict(run.config))
        run.log({"loss": 1.0})

    assert tj.agent(sweep_id, function=train, count=3, dir=store_dir) == 3
    assert len(seen) == 3
    for params in seen:
        assert 1e-4 <= params["lr"] <= 1e-1 and params["batch"] % 16 == 0 and 2 <= params["depth"] <= 5
        assert params["optimizer"]["name"] in ("adam", "sgd") and params["optimizer"]["momentum"] == 0.9
    assert tj.agent(sweep_id, function=train, dir=store_dir) == 7  # up to run_cap
    assert tj.agent(sweep_id, function=train, dir=store_dir) == 0


def test_a_failing_trial_is_recorded_and_the_agent_goes_on(store_dir: Path, capsys) -> None:
    sweep_id = tj.sweep(
        {"method": "grid", "parameters": {"x": {"values": [1, 2]}}}, project="f", dir=store_dir
    )
    calls = []

    def train() -> None:
        run = tj.init(settings={"silent": True})
        calls.append(run.config["x"])
        if run.config["x"] == 1:
            raise RuntimeError("boom")

    assert tj.agent(sweep_id, function=train, dir=store_dir) == 2  # the failure does not stop the agent
    trials = json.loads((store_dir / "f" / ".sweeps" / sweep_id / "trials.json").read_text())
    assert [t["state"] for t in trials] == ["failed", "finished"] and calls == [1, 2]
    assert tj.Api(dir=store_dir).run(f"f/{trials[0]['run_id']}").state == "failed"
    assert "trial 0 of sweep" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"method": "bayes", "parameters": {"x": {"values": [1]}}}, "bayes needs metric"),
        ({"method": "anneal", "parameters": {"x": {"values": [1]}}}, "one of grid, random, bayes"),
        ({"method": "grid", "parameters": {"x": {"min": 0.0, "max": 1.0}}}, "grid needs a list of values"),
        ({"method": "random", "parameters": {}}, "non-empty dict"),
        (
            {"method": "random", "parameters": {"x": {"distribution": "normal", "mu": 0}}},
            "needs mu and sigma",
        ),
        (
            {"method": "random", "metric": {"name": "x", "goal": "up"}, "parameters": {"x": {"value": 1}}},
            "goal",
        ),
    ],
)
def test_bad_sweep_configs_are_clear_errors(store_dir: Path, config: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        tj.sweep(config, project="bad", dir=store_dir)


def test_agent_arguments(store_dir: Path) -> None:
    with pytest.raises(UsageError, match="no sweep 'nope'"):
        tj.agent("nope", function=lambda: None, dir=store_dir)
    sweep_id = tj.sweep({"method": "grid", "parameters": {"x": {"value": 1}}}, project="a", dir=store_dir)
    with pytest.raises(UsageError, match="function="):
        tj.agent(sweep_id, dir=store_dir)
    with pytest.raises(UsageError, match="count"):
        tj.agent(f"someone/a/{sweep_id}", function=lambda: None, count=0, dir=store_dir)


BAYES = {
    "method": "bayes",
    "metric": {"name": "loss", "goal": "minimize"},
    "run_cap": 30,
    "parameters": {
        "x": {"distribution": "uniform", "min": -10.0, "max": 10.0},
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
        "width": {"distribution": "q_uniform", "min": 8, "max": 64, "q": 8},
        "opt": {"values": ["adam", "sgd"]},
        "fixed": {"value": 3},
    },
}


def test_bayes_learns_from_the_trials_before(store_dir: Path) -> None:
    """optuna's TPE sampler, told every finished trial: after its random start it searches near the best."""
    pytest.importorskip("optuna")
    sweep_id = tj.sweep(BAYES, project="bo", dir=store_dir)

    def train() -> None:
        run = tj.init(settings={"silent": True})
        c = run.config
        loss = (c["x"] - 2) ** 2 + (0 if c["opt"] == "adam" else 5) + abs(math.log10(c["lr"]) + 3)
        run.log({"loss": loss})

    assert tj.agent(sweep_id, function=train, dir=store_dir) == 30  # run_cap
    trials = json.loads((store_dir / "bo" / ".sweeps" / sweep_id / "trials.json").read_text())
    for trial in trials:
        c = trial["config"]
        assert (
            -10 <= c["x"] <= 10
            and 1e-5 <= c["lr"] <= 1e-1
            and c["fixed"] == 3
            and c["opt"] in ("adam", "sgd")
        )
        assert c["width"] % 8 == 0 and isinstance(c["width"], int)
    values = [t["value"] for t in trials]
    assert sum(values[-10:]) / 10 < sum(values[:10]) / 10 / 2  # the last ten far better than the random start
    best = sweeps.best(sweep_id, dir=store_dir)
    assert best is not None and best["value"] == min(values) and abs(best["config"]["x"] - 2) < 1.5


def test_two_agent_processes_share_one_bayes_sweep(store_dir: Path) -> None:
    pytest.importorskip("optuna")
    sweep_id = tj.sweep({**BAYES, "run_cap": 8}, project="bo2", dir=store_dir)
    script = (
        "import tracker_jupyter as tj\n"
        "def train():\n"
        "    run = tj.init(settings={'silent': True})\n"
        "    run.log({'loss': (run.config['x'] - 2) ** 2})\n"
        f"tj.agent({sweep_id!r}, function=train, dir={str(store_dir)!r})\n"
    )
    agents = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [agent.wait(timeout=180) for agent in agents] == [0, 0]
    trials = json.loads((store_dir / "bo2" / ".sweeps" / sweep_id / "trials.json").read_text())
    assert [t["trial"] for t in trials] == list(range(8)) and {t["state"] for t in trials} == {"finished"}
    assert len({t["config"]["x"] for t in trials}) == 8  # no trial twice
    assert len(tj.Api(dir=store_dir).runs("bo2")) == 8
