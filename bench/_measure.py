"""The timed workload, shared by every contender so all of them are measured the same way."""

from __future__ import annotations

import importlib
import os
import resource
import sys
import time
from array import array
from importlib import metadata
from pathlib import Path

from contenders import CONTENDERS

# Same config and same metric values for every contender: three floats that change every step.
CONFIG: dict[str, object] = {"lr": 1e-3, "batch_size": 32, "optimizer": "adam", "layers": [64, 64]}


def _version(module: str, dist: str) -> str:
    if not dist:
        return "stdlib"
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        # A source checkout on PYTHONPATH without an install still reports what it says it is.
        return str(getattr(sys.modules.get(module), "__version__", "source"))


def measure(name: str, steps: int, workdir: str, per_call: bool) -> dict[str, object]:
    """Run ``steps`` log() calls of contender ``name`` and return the figures for one table row."""
    contender = importlib.import_module(CONTENDERS[name])
    # Imported here untimed: the import kind times it in a process of its own.
    __import__(contender.MODULE)
    clock = time.perf_counter_ns

    started = clock()
    session = contender.start(Path(workdir), dict(CONFIG))
    init_ns = clock() - started

    log = session.log
    # Preallocated so recording a timing allocates nothing inside the loop.
    timings = array("q", bytes(8 * steps)) if per_call else array("q")
    loop_start = clock()
    if per_call:
        for i in range(steps):
            x = i * 1e-3
            metrics = {"a": x, "b": 0.5 * x, "c": -x}
            t0 = clock()
            log(metrics)
            timings[i] = clock() - t0
    else:
        for i in range(steps):
            x = i * 1e-3
            log({"a": x, "b": 0.5 * x, "c": -x})
    loop_end = clock()
    session.finish()
    finish_end = clock()
    # Read before any statistics are computed: sorting the timings would add to the peak.
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    helpers_kib = sum(_peak_rss_kib(pid) for pid in _descendants(os.getpid()))
    session.teardown()
    teardown_ns = clock() - finish_end

    result: dict[str, object] = {
        "status": "ok",
        "version": _version(contender.MODULE, contender.DIST),
        "steps": steps,
        "init_s": init_ns / 1e9,
        "log_mean_us": (loop_end - loop_start) / steps / 1e3,
        "finish_s": (finish_end - loop_end) / 1e9,
        "log_finish_s": (finish_end - loop_start) / 1e9,
        "teardown_s": teardown_ns / 1e9,
        "rss_self_mib": self_kib / 1024,
        "rss_helpers_mib": helpers_kib / 1024,
    }
    if per_call:
        result.update(_per_call_stats(timings, "log"))
        result["log_timed_mean_us"] = sum(timings) / steps / 1e3
        # The same timing pattern around a call that does nothing: the floor every per-call figure includes.
        result.update(_per_call_stats(_floor(timings), "floor"))
    return result


def _descendants(root: int) -> list[int]:
    """Live processes below ``root`` (Linux /proc; elsewhere none), e.g. wandb's service."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name may hold spaces and parentheses; the fields after the last ")" are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _peak_rss_kib(pid: int) -> int:
    # VmHWM is the peak of the process's current program only. RUSAGE_CHILDREN is not used: it keeps the
    # RSS a child inherited from the parent at fork() even after exec(), so a `uname` forked by a 200 MiB
    # parent reads as a 200 MiB helper.
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _noop(metrics: dict[str, float]) -> None:
    return None


def _floor(timings: array[int]) -> array[int]:
    clock = time.perf_counter_ns
    log = _noop
    for i in range(len(timings)):
        x = i * 1e-3
        metrics = {"a": x, "b": 0.5 * x, "c": -x}
        t0 = clock()
        log(metrics)
        timings[i] = clock() - t0
    return timings


def _per_call_stats(timings: array[int], prefix: str) -> dict[str, float]:
    ordered = sorted(timings)
    n = len(ordered)
    return {
        f"{prefix}_median_us": ordered[n // 2] / 1e3,
        f"{prefix}_p99_us": ordered[min(n - 1, (99 * n) // 100)] / 1e3,
    }
