"""System metrics, sampled from start to finish, under MLflow's own names.

A helper process samples the run's process from outside (``helper``): a thread inside it would contend
for the GIL with a busy training loop, where every ``/proc`` read it makes waits for the loop to let go
(seconds per sample, measured), and importing psutil alone would cost ``init()`` 30 ms. Where no helper
can be started, the same ``SystemSampler`` runs as a thread instead.

Every ``interval`` seconds one sample goes to the run's ``system.jsonl`` (a stream of its own: the user's
``_step`` never moves). A sample holds ``_timestamp`` (ms), ``_runtime`` (s since the run started),
``_step`` (the sample's number, as MLflow's monitor counts them) and ``system/<name>`` values:

- MLflow's names, so its System Metrics tab shows them: ``cpu_utilization_percentage``,
  ``system_memory_usage_megabytes``, ``system_memory_usage_percentage``, ``disk_usage_percentage``,
  ``disk_usage_megabytes``, ``disk_available_megabytes``, ``network_receive_megabytes``,
  ``network_transmit_megabytes`` (since the run started), and per GPU ``gpu_<i>_utilization_percentage``,
  ``gpu_<i>_memory_usage_megabytes``, ``gpu_<i>_memory_usage_percentage``, ``gpu_<i>_power_usage_watts``,
  ``gpu_<i>_power_usage_percentage``;
- and what MLflow leaves out: ``process_cpu_utilization_percentage`` and ``process_memory_rss_megabytes``
  (this process and its children), ``disk_read_megabytes`` / ``disk_write_megabytes`` (since the start),
  ``gpu_<i>_memory_total_megabytes`` and ``gpu_<i>_temperature_celsius``.

Megabytes are 10^6 bytes, as MLflow's. A probe that fails (no permission, a container without
``/proc/diskstats``) is left out of later samples after one line in the log; the run goes on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from tracker_jupyter.core.report import log

MB = 1e6
CHILDREN_EVERY = 30.0
Sample = dict[str, float]


class Probes:
    """What one sample reads: CPU and memory (system and process), disk, network, and the GPUs."""

    def __init__(self, *, pid: int | None = None, disk_path: str | None = None, gpus: Any = None) -> None:
        import psutil

        self.psutil = psutil
        self.process = psutil.Process(pid)  # the run's process (the helper samples its parent)
        self.disk_path = disk_path or os.path.abspath(os.sep)
        self.gpus = gpus
        self._known_children: list[Any] = []
        self._children_at: float | None = None
        psutil.cpu_percent(None)  # the first call starts the interval the next one measures
        self._cpu_times = self._process_cpu_seconds()
        self._clock = time.monotonic()
        self._net = self._net_counters()
        self._disk = self._disk_counters()
        self._broken: set[str] = set()

    def _process_cpu_seconds(self) -> float:
        total = 0.0
        for proc in [self.process, *self._children()]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except self.psutil.Error:
                continue
        return total

    def _children(self) -> list[Any]:
        """This process's children (data loader workers...), looked up at most every
        ``CHILDREN_EVERY`` seconds: finding them reads every process's ``/proc`` entry, and each read gives
        up the GIL, which a busy training loop holds (a sample would then take seconds)."""
        now = time.monotonic()
        if self._children_at is None or now - self._children_at >= CHILDREN_EVERY:
            try:
                self._known_children = list(self.process.children(recursive=True))
            except self.psutil.Error:
                self._known_children = []
            self._children_at = now
        alive = [child for child in self._known_children if child.is_running()]
        self._known_children = alive
        return alive

    def _net_counters(self) -> Any:
        try:
            return self.psutil.net_io_counters()
        except Exception:
            return None

    def _disk_counters(self) -> Any:
        try:
            return self.psutil.disk_io_counters()
        except Exception:
            return None

    def sample(self) -> Sample:
        values: Sample = {}
        for name, probe in (("cpu", self._cpu), ("memory", self._memory), ("disk", self._disk_usage),
                            ("network", self._network), ("gpu", self._gpu)):  # fmt: skip
            if name in self._broken:
                continue
            try:
                values.update(probe())
            except Exception as exc:  # a probe this machine does not allow: left out from now on
                self._broken.add(name)
                log("system metrics: %s cannot be read here (%s); it is left out.", name, exc)
        return values

    def _cpu(self) -> Sample:
        now = time.monotonic()
        seconds = self._process_cpu_seconds()
        elapsed = max(now - self._clock, 1e-9)
        process = 100.0 * max(seconds - self._cpu_times, 0.0) / elapsed
        self._cpu_times, self._clock = seconds, now
        return {
            "cpu_utilization_percentage": float(self.psutil.cpu_percent(None)),
            "process_cpu_utilization_percentage": round(process, 1),
        }

    def _memory(self) -> Sample:
        memory = self.psutil.virtual_memory()
        rss = 0
        for proc in [self.process, *self._children()]:
            try:
                rss += proc.memory_info().rss
            except self.psutil.Error:
                continue
        return {
            "system_memory_usage_megabytes": memory.used / MB,
            "system_memory_usage_percentage": round(memory.used / memory.total * 100, 1),
            "process_memory_rss_megabytes": rss / MB,
        }

    def _disk_usage(self) -> Sample:
        usage = self.psutil.disk_usage(self.disk_path)
        values = {
            "disk_usage_percentage": float(usage.percent),
            "disk_usage_megabytes": usage.used / MB,
            "disk_available_megabytes": usage.free / MB,
        }
        now = self._disk_counters()
        if now is not None and self._disk is not None:
            values["disk_read_megabytes"] = (now.read_bytes - self._disk.read_bytes) / MB
            values["disk_write_megabytes"] = (now.write_bytes - self._disk.write_bytes) / MB
        return values

    def _network(self) -> Sample:
        now = self._net_counters()
        if now is None or self._net is None:
            return {}
        return {
            "network_receive_megabytes": (now.bytes_recv - self._net.bytes_recv) / MB,
            "network_transmit_megabytes": (now.bytes_sent - self._net.bytes_sent) / MB,
        }

    def _gpu(self) -> Sample:
        return self.gpus.sample() if self.gpus is not None else {}

    def close(self) -> None:
        if self.gpus is not None:
            self.gpus.close()


class SystemSampler:
    """A daemon thread taking a sample every ``interval`` seconds, and one last one at ``stop()``."""

    def __init__(self, probes: Callable[[], Probes], append: Callable[[dict[str, Any]], None], *,
                 interval: float, start_time: float, first_step: int = 0,
                 alive: Callable[[], bool] = lambda: True) -> None:  # fmt: skip
        self._make_probes = probes  # made in the thread: importing psutil and NVML is not init()'s cost
        self.probes: Probes | None = None
        self._ready = threading.Event()
        self._alive = alive
        self.append = append
        self.interval = interval
        self.start_time = start_time
        self.step = first_step
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tracker-system-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        """Sample in the calling thread until ``stop()`` or until ``alive()`` says the run's process is
        gone (the helper process's main loop)."""
        self._loop()

    def _loop(self) -> None:
        try:
            self.probes = self._make_probes()
        except Exception as exc:
            log("system metrics cannot be read here (%s); none are recorded.", exc)
            return
        finally:
            self._ready.set()
        while not self._stop.wait(self.interval) and self._alive():
            self.take()

    def take(self) -> None:
        if self.probes is None:
            return
        try:
            values = self.probes.sample()
        except Exception as exc:  # never a dead thread that takes the run with it
            log("system metrics: a sample failed (%s)", exc)
            return
        now = time.time()
        sample: dict[str, Any] = {"_step": self.step, "_timestamp": int(now * 1000),
                                  "_runtime": round(now - self.start_time, 3)}  # fmt: skip
        sample.update({f"system/{key}": value for key, value in values.items()})
        self.append(sample)
        self.step += 1
        self.samples += 1

    def request_stop(self) -> None:
        self._stop.set()

    def finish(self) -> None:
        """After the loop: a run shorter than one interval still gets a sample."""
        if self.samples == 0:
            self.take()
        if self.probes is not None:
            self.probes.close()

    def stop(self) -> None:
        """Stop the thread; a run shorter than one interval still gets a sample."""
        if self._stop.is_set():
            return
        self._ready.wait(timeout=5.0)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.finish()
