"""What ``watch()`` costs a torch training loop: seconds per step without it, and with it at
``log_freq=1000`` (hooks that only count between logs) and ``log_freq=10``, for ``log="all"``.

    .venv/bin/python bench/watch_overhead.py [--steps 3000] [--repeat 3]

A small MLP (784-256-10, batch 64) on the CPU, one process, median of ``--repeat`` loops per setting.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

import tracker_jupyter as tj


def loop(steps: int, log_freq: int | None, store: str) -> float:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data, target = torch.randn(64, 784), torch.randint(0, 10, (64,))
    run = tj.init(mode="offline", dir=store, project="watch", settings={"silent": True})
    if log_freq is not None:
        run.watch(model, log="all", log_freq=log_freq)
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
        run.log({"loss": loss.item()})
    elapsed = time.perf_counter() - started
    run.finish()
    return elapsed / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = {"no watch": None, "watch, log_freq=1000": 1000, "watch, log_freq=10": 10}
    with tempfile.TemporaryDirectory() as store:
        figures = {name: statistics.median(loop(args.steps, freq, store) for _ in range(args.repeat))
                   for name, freq in settings.items()}  # fmt: skip
    base = figures["no watch"]
    print(f"{args.steps:,} steps of a 784-256-10 MLP, batch 64, one thread; median of {args.repeat}\n")
    print("| setting | ms a step | vs no watch |")
    print("|---|---|---|")
    for name, seconds in figures.items():
        print(f"| {name} | {seconds * 1000:.3f} | {seconds / base:.3f}× |")


if __name__ == "__main__":
    main()
