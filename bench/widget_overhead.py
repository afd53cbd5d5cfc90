"""What the live widget costs a logging loop, in a real kernel: time, and comm messages per second.

Each kernel (started by nbclient) runs the same loop of ``--steps`` ``run.log()`` calls (three floats a
step) in alternating cells, with the widget displayed and without, ``--rounds`` times each, every loop a
new run. Loops are timed inside the kernel (``perf_counter`` around the loop, and around loop + ``finish()``).
Comm messages are counted as they arrive from the kernel, per cell and per second of arrival, and the kernel
reports the widget's redraws and trait updates.

A second kernel logs at three paces (about 10 and 1,000 steps a second, and as fast as it goes) for a few
seconds each and counts the comm messages in each second: the count follows ``widget_fps``, not the pace.

The machine this runs on is shared, so single timings swing by tens of percent. The estimate of the cost is
the fastest loop of each kind in a kernel (what the code costs when nothing else interferes), then the median
over kernels of the on/off ratio of those; the median of all loops is printed beside it. The target
(DESIGN.md) is at most 1.1x.

    .venv/bin/python bench/widget_overhead.py [--steps 100000] [--kernels 3] [--rounds 5] [--fps 4]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

TARGET_RATIO = 1.1

# A run shorter than half a second puts no widget up at all (widget.WIDGET_AFTER_S), and finish() lets a
# widget that just went up stand for a second (SETTLE_S): both off here, so each loop measures the widget
# itself, as a run that lives longer would carry it.
SETUP = """\
import json, math, time
import tracker_jupyter
from tracker_jupyter.display import widget as dashboard
dashboard.WIDGET_AFTER_S = 0.0
dashboard.SETTLE_S = 0.0
"""

LOOP = """\
run = tracker_jupyter.init(project="bench", dir={store!r}, mode="offline",
                           settings={{"show_widget": False, "widget_fps": {fps}}})
if {widget}:
    dashboard.show(run, get_ipython())
start = time.perf_counter()
for i in range({steps}):
    run.log({{"loss": 1.0 / (i + 1), "acc": i / {steps}, "lr": 0.001 * math.cos(i / 1000)}})
loop_s = time.perf_counter() - start
board = run.parts.dashboard
run.finish()
total_s = time.perf_counter() - start
print(json.dumps({{"widget": {widget}, "loop_s": loop_s, "total_s": total_s,
                   "redraws": board.redraws if board else 0, "updates": getattr(board, "messages", 0)}}))
"""


# Logging at a given rate for a while, to show comm traffic does not follow the logging rate.
PACED = """\
run = tracker_jupyter.init(project="bench", dir={store!r}, mode="offline",
                           settings={{"show_widget": False, "widget_fps": {fps}}})
dashboard.show(run, get_ipython())
start = time.perf_counter()
i = 0
while time.perf_counter() - start < {seconds}:
    for _ in range({burst}):
        run.log({{"loss": 1.0 / (i + 1), "acc": math.sin(i / 100), "lr": 0.001}})
        i += 1
    if {pause}:
        time.sleep({pause})
elapsed = time.perf_counter() - start
board = run.parts.dashboard
run.finish()
print(json.dumps({{"steps_per_s": i / elapsed, "redraws": board.redraws, "updates": board.messages}}))
"""

# (label, rows per burst, pause after each burst in seconds)
PACES = (("~10 steps/s", 1, 0.1), ("~1,000 steps/s", 10, 0.01), ("as fast as it goes", 1000, 0))


class CountingClient(NotebookClient):
    """An nbclient that also notes when each comm message of each cell arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.comm_arrivals: dict[int, list[float]] = collections.defaultdict(list)

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        if msg["msg_type"] == "comm_msg":
            self.comm_arrivals[cell_index].append(time.monotonic())
        return super().process_message(msg, cell, cell_index)


def run_kernel(steps: int, rounds: int, fps: float, workdir: Path) -> list[dict[str, Any]]:
    """One kernel: ``rounds`` loops without the widget and ``rounds`` with, alternating."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    store = str(workdir / "store")
    order = [(i % 2 == 0) == (r % 2 == 0) for r in range(rounds) for i in range(2)]  # off,on,on,off,...
    notebook.cells = [nbformat.v4.new_code_cell(SETUP)] + [
        nbformat.v4.new_code_cell(LOOP.format(store=store, fps=fps, widget=widget, steps=steps))
        for widget in order
    ]
    client = CountingClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    results = []
    for index, cell in enumerate(notebook.cells[1:], start=1):
        stdout = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
        result = json.loads(stdout.strip().splitlines()[-1])
        arrivals = client.comm_arrivals.get(index, [])
        per_second = collections.Counter(int(t - arrivals[0]) for t in arrivals)
        result["comm_msgs"] = len(arrivals)
        result["comm_msgs_max_per_s"] = max(per_second.values(), default=0)
        results.append(result)
    return results


def run_paced(fps: float, seconds: float, workdir: Path) -> list[dict[str, Any]]:
    """One kernel: the widget on, logging at each pace of ``PACES`` for ``seconds``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    store = str(workdir / "store")
    notebook.cells = [nbformat.v4.new_code_cell(SETUP)] + [
        nbformat.v4.new_code_cell(
            PACED.format(store=store, fps=fps, seconds=seconds, burst=burst, pause=pause)
        )
        for _, burst, pause in PACES
    ]
    client = CountingClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    results = []
    for index, (label, _, _) in enumerate(PACES, start=1):
        stdout = "".join(
            o.get("text", "") for o in notebook.cells[index].outputs if o.get("name") == "stdout"
        )
        result = json.loads(stdout.strip().splitlines()[-1])
        arrivals = client.comm_arrivals.get(index, [])
        # Whole seconds only: the first and last partial seconds hold the set-up and teardown messages.
        per_second = collections.Counter(int(t - arrivals[0]) for t in arrivals)
        whole = [per_second[s] for s in range(1, int(seconds))]
        result.update(label=label, comm_msgs=len(arrivals), per_second=whole)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--kernels", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--paced-seconds", type=float, default=4.0, help="length of each paced loop")
    args = parser.parse_args(argv)

    kernels: list[list[dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="tracker-widget-bench-") as tmp:
        for k in range(args.kernels):
            workdir = Path(tmp) / f"kernel-{k}"
            workdir.mkdir()
            kernels.append(run_kernel(args.steps, args.rounds, args.fps, workdir))
            print(f"  kernel {k + 1}/{args.kernels} done", file=sys.stderr)
        paced_dir = Path(tmp) / "paced"
        paced_dir.mkdir()
        paced = run_paced(args.fps, args.paced_seconds, paced_dir)

    def loops(widget: bool, results: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        pool = results if results is not None else [r for kernel in kernels for r in kernel]
        return [r for r in pool if r["widget"] == widget]

    def best_ratio(key: str) -> float:
        return statistics.median(
            min(r[key] for r in loops(True, kernel)) / min(r[key] for r in loops(False, kernel))
            for kernel in kernels
        )

    print(
        f"{args.steps:,} steps, 3 floats a step, widget_fps={args.fps}; "
        f"{args.kernels} kernels x {args.rounds} loops of each kind\n"
    )
    print("| widget | loop: fastest / median | loop + finish: fastest / median | comm msgs a loop "
          "| max comm msgs in 1 s | redraws | trait updates |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for widget in (False, True):
        rows = loops(widget)

        def fastest_and_median(key: str, rows: list[dict[str, Any]] = rows) -> str:
            values = [r[key] for r in rows]
            return f"{min(values):.3f} s / {statistics.median(values):.3f} s"

        print(
            f"| {'on' if widget else 'off'} | {fastest_and_median('loop_s')} | {fastest_and_median('total_s')} "
            f"| {statistics.median(r['comm_msgs'] for r in rows):.0f} "
            f"| {max(r['comm_msgs_max_per_s'] for r in rows)} "
            f"| {statistics.median(r['redraws'] for r in rows):.0f} "
            f"| {statistics.median(r['updates'] for r in rows):.0f} |"
        )
    loop_ratio, total_ratio = best_ratio("loop_s"), best_ratio("total_s")
    median_ratio = statistics.median(r["loop_s"] for r in loops(True)) / statistics.median(
        r["loop_s"] for r in loops(False)
    )
    verdict = "ok" if loop_ratio <= TARGET_RATIO else "OVER TARGET"
    print(
        f"\non/off (fastest loops, median over kernels): loop {loop_ratio:.3f}x, loop + finish "
        f"{total_ratio:.3f}x; median of all loops: {median_ratio:.3f}x. Target ≤ {TARGET_RATIO}x: {verdict}"
    )
    print(f"\nComm messages with the widget on, {args.paced_seconds:g} s of logging at each pace:\n")
    print("| logging | steps/s | comm msgs in each whole second | redraws | trait updates |")
    print("|---|---|---|---|---|")
    for result in paced:
        print(
            f"| {result['label']} | {result['steps_per_s']:,.0f} | {', '.join(map(str, result['per_second']))} "
            f"| {result['redraws']} | {result['updates']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
