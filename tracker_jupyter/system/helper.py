"""The system metrics helper process: samples the run's process from outside and appends to its
``system.jsonl``, until its standard input closes (the run finished) or the run's process is gone.

    python -m tracker_jupyter.system.helper '{"pid": ..., "path": ..., "interval": ..., ...}'

``HelperProcess`` starts and stops it from the run's side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

STOP_WAIT = 5.0  # seconds finish() waits for the helper's last sample


class HelperProcess:
    """The helper of one run, seen from the run's process."""

    def __init__(self, *, path: Path, interval: float, start_time: float, first_step: int) -> None:
        job = {"pid": os.getpid(), "path": str(path), "interval": interval, "start_time": start_time,
               "first_step": first_step}  # fmt: skip
        package_root = str(Path(__file__).resolve().parent.parent.parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracker_jupyter.system.helper", json.dumps(job)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, close_fds=True,
            start_new_session=True,  # a Ctrl-C in the terminal is for the user's program, not for this
        )  # fmt: skip

    def stop(self, *_: Any) -> None:
        """Close its input and wait (a bounded time) for it to write its last sample and exit."""
        process = self.process
        if process.stdin is not None and not process.stdin.closed:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str]) -> int:
    from tracker_jupyter.store.console import SystemStream
    from tracker_jupyter.system.gpu import NvidiaGpus
    from tracker_jupyter.system.sampler import Probes, SystemSampler

    job = json.loads(argv[1])
    parent = int(job["pid"])
    stream = SystemStream(Path(job["path"]))
    sampler = SystemSampler(
        lambda: Probes(pid=parent, gpus=NvidiaGpus.open()), stream.append,
        interval=float(job["interval"]), start_time=float(job["start_time"]), first_step=int(job["first_step"]),
        alive=lambda: os.getppid() == parent,  # the run's process died (kill -9): so does its helper
    )  # fmt: skip

    def wait_for_finish() -> None:
        try:
            sys.stdin.buffer.read()  # returns at EOF: the run closed its end
        except (OSError, ValueError):
            pass
        sampler.request_stop()

    threading.Thread(target=wait_for_finish, daemon=True).start()
    sampler.run()
    if os.getppid() == parent:
        sampler.finish()
    stream.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
