"""watch(): histograms of a real torch model's parameters and gradients, every log_freq passes."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow  # imports torch


def _train(run: tj.Run, model, steps: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data, target = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(data), target)
        loss.backward()
        optimizer.step()
        run.log({"loss": loss.item()})


def test_watch_logs_histograms_every_log_freq_steps_and_stops_at_unwatch(store_dir: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    run = tj.init(project="p", dir=store_dir)
    graphs = run.watch(model, log="all", log_freq=3, log_graph=True)
    _train(run, model, 9)
    run.unwatch(model)
    _train(run, model, 3)
    run.finish()
    rows = list(tj.Api(store_dir).run(f"p/{run.id}").scan_history())
    with_hist = [row["_step"] for row in rows if "gradients/0.weight" in row]
    assert with_hist == [2, 5, 8]  # every third pass, in the row of that step, and none after unwatch
    row = rows[2]
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        gradient, parameter = row[f"gradients/{name}"], row[f"parameters/{name}"]
        assert gradient["_type"] == parameter["_type"] == "histogram"
        assert len(parameter["bins"]) == len(parameter["values"]) + 1
    assert sum(row["parameters/0.weight"]["values"]) == 32 and "loss" in row
    assert graphs[0]["parameters"] == 4 * 8 + 8 + 8 + 1 and graphs[0]["modules"][1]["type"] == "Linear"
    assert run.meta["models"] == graphs


def test_a_second_model_gets_a_graph_prefix_and_bad_arguments_are_clear(store_dir: Path) -> None:
    first, second = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    run = tj.init(project="p", dir=store_dir)
    run.watch([first, second], log="parameters", log_freq=1, idx=0)
    first(torch.randn(2, 4))
    second(torch.randn(2, 4))
    run.log({"x": 1.0})
    for bad, message in (({"log": "weights"}, "must be 'gradients'"), ({"log_freq": 0}, "positive int")):
        with pytest.raises(UsageError, match=message):
            run.watch(first, **bad)
    with pytest.raises(UsageError, match=r"torch\.nn\.Module"):
        run.watch("model")
    run.finish()
    (row,) = list(tj.Api(store_dir).run(f"p/{run.id}").scan_history())
    assert "parameters/weight" in row and "parameters/graph_1weight" in row  # the reference's names
    assert tj.watch is not None and tj.unwatch() is None  # mirrored at module level; no run: nothing
