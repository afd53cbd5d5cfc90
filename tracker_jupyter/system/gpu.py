"""NVIDIA GPUs through NVML (``pynvml``, from the optional extra ``tracker-jupyter[gpu]``, which installs
``nvidia-ml-py``): per GPU utilisation, memory, temperature and power, under MLflow's names."""

from __future__ import annotations

from typing import Any

from tracker_jupyter.core.report import log

MB = 1e6


class NvidiaGpus:
    """The machine's NVIDIA GPUs; ``open()`` gives None where there are none (or no NVML)."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self.nvml = nvml
        self.handles = handles
        self._failed: set[tuple[int, str]] = set()

    @classmethod
    def open(cls, nvml: Any = None) -> NvidiaGpus | None:
        if nvml is None:
            try:
                import pynvml
            except ImportError:
                return None
            nvml = pynvml
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
        except Exception:  # no driver, no GPU: nothing to sample
            return None
        if count == 0:
            nvml.nvmlShutdown()
            return None
        return cls(nvml, [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)])

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for i, handle in enumerate(self.handles):
            for what, read in (("memory", self._memory), ("utilization", self._utilization),
                               ("power", self._power), ("temperature", self._temperature)):  # fmt: skip
                if (i, what) in self._failed:
                    continue
                try:
                    values.update(read(i, handle))
                except Exception as exc:  # this GPU does not report it (power on some boards): left out
                    self._failed.add((i, what))
                    log("system metrics: GPU %d does not report its %s (%s); it is left out.", i, what, exc)
        return values

    def _memory(self, i: int, handle: Any) -> dict[str, float]:
        memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
        return {
            f"gpu_{i}_memory_usage_megabytes": memory.used / MB,
            f"gpu_{i}_memory_usage_percentage": round(memory.used / memory.total * 100, 1),
            f"gpu_{i}_memory_total_megabytes": memory.total / MB,
        }

    def _utilization(self, i: int, handle: Any) -> dict[str, float]:
        return {f"gpu_{i}_utilization_percentage": float(self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu)}

    def _power(self, i: int, handle: Any) -> dict[str, float]:
        milliwatts = self.nvml.nvmlDeviceGetPowerUsage(handle)
        limit = self.nvml.nvmlDeviceGetEnforcedPowerLimit(handle)
        return {
            f"gpu_{i}_power_usage_watts": milliwatts / 1000,
            f"gpu_{i}_power_usage_percentage": round(milliwatts / limit * 100, 1) if limit else 0.0,
        }

    def _temperature(self, i: int, handle: Any) -> dict[str, float]:
        sensor = getattr(self.nvml, "NVML_TEMPERATURE_GPU", 0)
        return {f"gpu_{i}_temperature_celsius": float(self.nvml.nvmlDeviceGetTemperature(handle, sensor))}

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass
