"""What recording system metrics costs: CPU time per sample of our helper process and of MLflow's own
monitor (its CPU, disk and network probes, as its thread runs them), and what that is as a share of one
core at the default 10 s interval. Also: how long a sample takes to arrive while the run's process is a
busy Python loop (the case a sampler thread inside the process handles worst).

    .bench-venv/bin/python bench/system_metrics.py [--seconds 10] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

import tracker_jupyter as tj

DEFAULT_INTERVAL = 10.0


def ours(seconds: float, interval: float) -> tuple[float, int, float, float]:
    """CPU seconds the helper used per sample (its start-up left out), samples taken, its start-up CPU
    seconds and its peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as store:
        run = tj.init(project="bench", dir=store, mode="offline",
                      settings={"silent": True, "system_metrics": True, "system_metrics_interval": interval})  # fmt: skip
        [helper] = psutil.Process().children()
        time.sleep(1.0)  # its imports and first probes
        before = helper.cpu_times()
        startup = before.user + before.system
        taken_before = _count(run)
        time.sleep(seconds)
        after = helper.cpu_times()
        rss = helper.memory_info().rss / 1e6
        taken = _count(run) - taken_before
        run.finish()
    used = (after.user + after.system) - (before.user + before.system)
    return used / max(taken, 1), taken, startup, rss


def _count(run: object) -> int:
    path = Path(run.run_dir) / "system.jsonl"  # type: ignore[attr-defined]
    return len(path.read_text().splitlines()) if path.exists() else 0


def mlflow_monitor(samples: int) -> float | None:
    """CPU seconds per sample of MLflow's CPU, disk and network monitors, in a thread as MLflow runs them."""
    try:
        from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
        from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
        from mlflow.system_metrics.metrics.network_monitor import NetworkMonitor
    except ImportError:
        return None
    monitors = [CPUMonitor(), DiskMonitor(), NetworkMonitor()]
    used: list[float] = []

    def work() -> None:
        start = time.thread_time()
        for _ in range(samples):
            for monitor in monitors:
                monitor.collect_metrics()
        used.append(time.thread_time() - start)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return used[0] / samples


def under_load(interval: float) -> float:
    """Seconds between samples while this process spins in Python."""
    with tempfile.TemporaryDirectory() as store:
        run = tj.init(project="bench", dir=store, mode="offline",
                      settings={"silent": True, "system_metrics": True, "system_metrics_interval": interval})  # fmt: skip
        time.sleep(1.0)
        first, started = _count(run), time.monotonic()
        while time.monotonic() - started < 3.0:
            sum(range(200_000))
        taken = _count(run) - first
        run.finish()
    return 3.0 / max(taken, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    per_sample, taken, startup, rss = ours(args.seconds, args.interval)
    theirs = mlflow_monitor(max(taken, 50))
    print(f"\nsampling every {args.interval} s for {args.seconds} s: {taken} samples\n")
    print("| | CPU per sample | share of one core at a 10 s interval |")
    print("|---|---|---|")
    print(
        f"| ours (helper process) | {per_sample * 1000:.2f} ms | {per_sample / DEFAULT_INTERVAL * 100:.3f}% |"
    )
    if theirs is not None:
        print(
            f"| mlflow (its monitors, in a thread) | {theirs * 1000:.2f} ms | {theirs / DEFAULT_INTERVAL * 100:.3f}% |"
        )
    print(f"\nour helper: {startup:.2f} s of CPU to start (once per run, beside it), {rss:.0f} MB RSS")
    print(f"while the run's process spins in Python: a sample every {under_load(0.2):.2f} s (asked: 0.2 s)")


if __name__ == "__main__":
    main()
