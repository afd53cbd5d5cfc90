"""What a run records about the machine and its output beside the history: system metrics
(``sampler``, ``gpu``) and console capture (``console``). ``start`` wires both to a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracker_jupyter.settings import resolve

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

__all__ = ["start"]


def start(run: Run, settings: Any, console: str) -> None:
    """Start the system metrics sampler and the console capture the settings ask for; both stop when
    the run finishes. A disabled run (whose sink keeps nothing) gets neither."""
    if console != "off":
        log = run.sink.console_log(int(resolve("console_max_bytes", None, settings)))
        if log is not None:
            from tracker_jupyter.system.console import ConsoleCapture

            capture = ConsoleCapture(log)
            capture.start()
            run.on_finish(capture.stop)
    if resolve("system_metrics", None, settings):
        stream = run.sink.system_stream()
        if stream is None:
            return
        from tracker_jupyter.store import last_system_sample

        previous = last_system_sample(stream.path)  # a resumed run goes on counting
        options: dict[str, Any] = {
            "interval": float(resolve("system_metrics_interval", None, settings)),
            "start_time": run.start_time,
            "first_step": int(previous["_step"]) + 1 if previous and "_step" in previous else 0,
        }
        try:
            from tracker_jupyter.system.helper import HelperProcess

            helper = HelperProcess(path=stream.path, **options)
        except OSError as exc:  # no interpreter to start (an embedded Python): a thread does it
            from tracker_jupyter.core.report import log

            log("system metrics: no helper process (%s); sampling from a thread instead.", exc)
            run.on_finish(_thread_sampler(stream, options))
            return
        run.on_finish(helper.stop)


def _thread_sampler(stream: Any, options: dict[str, Any]) -> Any:
    from tracker_jupyter.system.gpu import NvidiaGpus
    from tracker_jupyter.system.sampler import Probes, SystemSampler

    sampler = SystemSampler(lambda: Probes(gpus=NvidiaGpus.open()), stream.append, **options)
    sampler.start()
    return lambda _run: sampler.stop()
