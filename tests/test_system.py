"""System metrics (real psutil readings; NVML through a stand-in, since these machines have no GPU) and
console capture (a script, terminal IPython): what is recorded beside the history, and what is not."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import tracker_jupyter as tj
from tests.conftest import run_script
from tracker_jupyter.display import view
from tracker_jupyter.system.gpu import NvidiaGpus

MLFLOW_NAMES = {
    "cpu_utilization_percentage", "system_memory_usage_megabytes", "system_memory_usage_percentage",
    "disk_usage_percentage", "disk_usage_megabytes", "disk_available_megabytes", "network_receive_megabytes",
    "network_transmit_megabytes",
}  # fmt: skip


def init(store_dir: Path, **settings: Any) -> Any:
    settings = {"silent": True, "system_metrics": True, **settings}  # (the suite's default is off)
    return tj.init(project="p", dir=store_dir, mode="offline", settings=settings)


def samples(run: Any) -> list[dict[str, Any]]:
    return list(tj.Api(dir=run.run_dir.parent.parent).run(run.path).system_samples())


def test_samples_every_interval_with_mlflow_s_names_and_never_move_the_step(store_dir: Path) -> None:
    run = init(store_dir, system_metrics_interval=0.5)
    ballast = bytearray(30_000_000)  # this process's memory, as the sampler should see it
    started = time.monotonic()
    while time.monotonic() - started < 2.2:
        sum(range(200_000))  # keep a core busy
        run.log({"x": 1})
    run.finish()
    del ballast
    found = samples(run)
    assert len(found) >= 3 and [s["_step"] for s in found] == list(range(len(found)))
    last = found[-1]
    assert {k.removeprefix("system/") for k in last} >= MLFLOW_NAMES
    assert 0 <= last["system/cpu_utilization_percentage"] <= 100
    assert 0 < last["system/system_memory_usage_percentage"] < 100
    assert last["system/process_memory_rss_megabytes"] > 30
    assert max(s["system/process_cpu_utilization_percentage"] for s in found) > 30
    assert 0 < last["system/disk_usage_percentage"] < 100
    times = [s["_timestamp"] for s in found]
    assert times == sorted(times) and times[0] / 1000 >= run.start_time
    steps = [row["_step"] for row in tj.Api(dir=store_dir).run(run.path).scan_history()]
    assert steps == list(range(len(steps)))  # the user's steps, untouched by the samples


@pytest.mark.parametrize(
    "how", [{"system_metrics": False}, {"_disable_stats": True}, {"x_disable_stats": True}, "env"]
)
def test_system_metrics_can_be_turned_off(store_dir: Path, monkeypatch, how) -> None:
    monkeypatch.setenv("TRACKER_SYSTEM_METRICS", "false" if how == "env" else "true")
    settings = {"system_metrics_interval": 0.1, **(how if isinstance(how, dict) else {})}
    run = tj.init(project="p", dir=store_dir, mode="offline", settings=settings)
    time.sleep(0.3)
    run.finish()
    assert not (run.run_dir / "system.jsonl").exists()


def test_a_resumed_run_goes_on_counting_samples(store_dir: Path) -> None:
    first = init(store_dir, system_metrics_interval=30)
    first.finish()  # shorter than one interval: one sample at finish
    again = tj.init(project="p", dir=store_dir, id=first.id, resume="must", settings={"system_metrics": True})
    again.finish()
    assert [s["_step"] for s in samples(again)] == [0, 1]


def test_the_interval_comes_from_the_environment_and_must_be_positive(store_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRACKER_SYSTEM_METRICS_INTERVAL", "0")
    with pytest.raises(tj.UsageError, match="TRACKER_SYSTEM_METRICS_INTERVAL"):
        init(store_dir)
    assert tj.run is None


class StandInNvml:
    """Stands in for pynvml: no GPU on these machines, so the NVML calls are answered here (two GPUs;
    the second reports no power, as some boards do)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self) -> None:
        self.shut = False

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(used=(h + 1) * 2_000_000_000, total=16_000_000_000)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=75 + h)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        if h == 1:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return 150_000

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return 300_000

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return 60 + h


def test_gpus_are_sampled_under_mlflow_s_names_through_nvml() -> None:
    nvml = StandInNvml()
    gpus = NvidiaGpus.open(nvml)
    assert gpus is not None
    values = gpus.sample()
    assert values["gpu_0_utilization_percentage"] == 75 and values["gpu_1_utilization_percentage"] == 76
    assert values["gpu_0_memory_usage_megabytes"] == 2000 and values["gpu_1_memory_usage_percentage"] == 25.0
    assert values["gpu_0_power_usage_watts"] == 150 and values["gpu_0_power_usage_percentage"] == 50.0
    assert "gpu_1_power_usage_watts" not in values  # not reported: left out, the rest goes on
    assert values["gpu_1_temperature_celsius"] == 61 and values["gpu_0_memory_total_megabytes"] == 16000
    assert gpus.sample() == values
    gpus.close()
    assert nvml.shut


def test_no_gpu_means_no_gpu_probe() -> None:
    class NoDriver(StandInNvml):
        def nvmlInit(self) -> None:
            raise RuntimeError("NVML Shared Library Not Found")

    assert NvidiaGpus.open(NoDriver()) is None


# ------------------------------------------------------------------------------------------- console

SCRIPT = """
import sys, time, tracker_jupyter as tj
from tqdm import tqdm
run = tj.init(project="p", dir={store!r}, mode="offline", config={{"api_key": "sk-very-secret-1234"}},
              settings={{"system_metrics": False{extra}}})
print("hello from the run")
for i in tqdm(range(50), mininterval=0):
    run.log({{"i": i}})
print("to stderr", file=sys.stderr)
print("key is", run.config["api_key"])
sys.stdout.write("no newline at the end")
run.finish()
print("after finish")
"""


def test_a_script_s_output_is_kept_as_a_terminal_shows_it(tmp_path: Path, store_dir: Path) -> None:
    done = run_script(SCRIPT.format(store=str(store_dir), extra=""), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "hello from the run" in done.stdout and "after finish" in done.stdout  # the terminal is unchanged
    assert done.stderr.count("it/s]") > 10  # tqdm drew its bar there, as always, redrawing it
    [run_dir] = [p for p in (store_dir / "p").iterdir() if (p / "run.json").is_file()]
    log = (run_dir / "files" / "output.log").read_text()
    lines = log.splitlines()
    assert "hello from the run" in lines and "to stderr" in lines
    bars = [line for line in lines if "it/s]" in line or "50/50" in line]
    assert len(bars) == 1 and bars[0].startswith("100%") and "50/50" in bars[0]  # its last state, once
    assert "\r" not in log and "\x1b" not in log
    assert "key is ***" in lines and "sk-very-secret-1234" not in log  # the run's secrets stay out
    assert lines[-1] != "after finish" and "no newline at the end" in lines  # the unfinished line is kept
    assert tj.Api(dir=store_dir).run(f"p/{run_dir.name}").console_tail(2)[-1] == "no newline at the end"


def test_console_off_keeps_no_log_and_a_cap_is_said_once(tmp_path: Path, store_dir: Path) -> None:
    done = run_script(SCRIPT.format(store=str(store_dir), extra=', "console": "off"'), tmp_path)
    assert done.returncode == 0, done.stderr
    capped = run_script(
        SCRIPT.format(store=str(tmp_path / "capped"), extra=', "console_max_bytes": 40'), tmp_path
    )
    assert capped.returncode == 0, capped.stderr
    [off_dir] = [p for p in (store_dir / "p").iterdir() if (p / "run.json").is_file()]
    assert not (off_dir / "files" / "output.log").exists()
    [capped_dir] = [p for p in (tmp_path / "capped" / "p").iterdir() if (p / "run.json").is_file()]
    log = (capped_dir / "files" / "output.log").read_text()
    assert log.count("console_max_bytes") == 1 and log.endswith("the rest of the output is not kept]\n")
    assert "after finish" in capped.stdout  # the terminal kept everything


def test_console_values(store_dir: Path, capsys) -> None:
    with pytest.raises(tj.UsageError, match="settings console='tee' is not allowed"):
        init(store_dir, console="tee")
    run = init(store_dir, console="redirect")  # the reference's other ways are taken as wrap
    print("seen")
    run.finish()
    assert "taken as 'wrap'" in capsys.readouterr().err
    assert "seen" in (run.run_dir / "files" / "output.log").read_text().splitlines()


def test_terminal_ipython_cells_go_to_the_log_once(store_dir: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_cell(
            f"import tracker_jupyter\nrun = tracker_jupyter.init(dir={str(store_dir)!r}, mode='offline')"
        )
        shell.run_cell("for i in range(3): print('cell line', i)")
        shell.run_cell("run.finish()")
        run = shell.user_ns["run"]
    finally:
        InteractiveShell.clear_instance()
    lines = (run.run_dir / "files" / "output.log").read_text().splitlines()
    assert [line for line in lines if line.startswith("cell line")] == [
        "cell line 0",
        "cell line 1",
        "cell line 2",
    ]
    assert sys.stdout.__class__.__name__ != "TeeStream"  # taken out at finish


def test_the_snapshot_shows_the_system_sample_and_the_output_tail(store_dir: Path) -> None:
    run = init(store_dir, system_metrics_interval=60)
    print("<b>printed</b>")
    run.finish()
    html = view.snapshot_bundle(run)["text/html"]
    assert "System (" in html and "cpu_utilization_percentage" in html
    assert "Output (last" in html and "&lt;b&gt;printed&lt;/b&gt;" in html  # escaped


def test_output_log_survives_a_kill(tmp_path: Path, store_dir: Path) -> None:
    code = (
        "import os, signal, tracker_jupyter as tj\n"
        f"run = tj.init(project='p', dir={str(store_dir)!r}, mode='offline', settings={{'system_metrics': False}})\n"
        "for i in range(3): print('line', i, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = run_script(code, tmp_path)
    assert done.returncode == -9
    [run_dir] = [p for p in (store_dir / "p").iterdir() if (p / "run.json").is_file()]
    lines = (run_dir / "files" / "output.log").read_text().splitlines()
    assert lines[-3:] == ["line 0", "line 1", "line 2"]
    assert json.loads((run_dir / "run.json").read_text())["id"] == run_dir.name
    assert os.path.getsize(run_dir / "files" / "output.log") > 0


def test_the_sampler_lives_and_dies_with_the_run_s_process(tmp_path: Path, store_dir: Path) -> None:
    """The samples come from a helper process (a busy loop holding the GIL does not stall them); it
    exits when the run finishes, and when the run's process is killed."""
    import signal
    import subprocess

    import psutil

    code = (
        "import sys, time, tracker_jupyter as tj\n"
        f"run = tj.init(project='p', dir={str(store_dir)!r}, mode='offline', "
        "settings={'system_metrics': True, 'system_metrics_interval': 0.2, 'silent': True})\n"
        "print('ready', flush=True)\n"
        "while True: sum(range(200_000))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        [helper] = psutil.Process(proc.pid).children()
        assert "tracker_jupyter.system.helper" in " ".join(helper.cmdline())
        deadline = time.monotonic() + 10
        system = next((store_dir / "p").glob("*/system.jsonl"), None)
        while (system is None or len(system.read_text().splitlines()) < 3) and time.monotonic() < deadline:
            time.sleep(0.1)
            system = next((store_dir / "p").glob("*/system.jsonl"), None)
        assert system is not None and len(system.read_text().splitlines()) >= 3  # under a busy loop
        busy = [
            json.loads(line)["system/process_cpu_utilization_percentage"]
            for line in system.read_text().splitlines()
        ]
        assert max(busy) > 50  # the loop's core, seen from outside
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        helper.wait(timeout=5)  # gone with it (psutil.TimeoutExpired otherwise)
    finally:
        proc.kill()
