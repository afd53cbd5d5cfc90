"""Reading a history back: ``scan_history()`` and ``history(pandas=True)`` over a million rows, beside the
standard library reading the same lines (the floor a plain json-lines reader gets).

    .venv/bin/python bench/read_path.py [--rows 1000000] [--repeat 3]

The history is written once by ``tracker_jupyter`` (3 scalars a row); every figure is the median of
``--repeat`` passes over it, in this process, per row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tracker_jupyter as tj


def _per_row(seconds: list[float], rows: int) -> float:
    return statistics.median(seconds) / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = tj.init(mode="offline", dir=tmp, project="p", settings={"silent": True})
        for i in range(args.rows):
            run.log({"loss": 0.1 * i, "acc": 0.5, "lr": 0.001})
        run.finish()
        record = tj.Api(tmp).run(f"p/{run.id}")
        path = record.dir / "history.jsonl"
        timings: dict[str, list[float]] = {"stdlib": [], "scan": [], "pandas": []}
        for _ in range(args.repeat):
            started = time.perf_counter()
            with open(path, "rb") as fh:
                count = sum(1 for line in fh if json.loads(line))
            timings["stdlib"].append(time.perf_counter() - started)
            started = time.perf_counter()
            scanned = sum(1 for _ in record.scan_history())
            timings["scan"].append(time.perf_counter() - started)
            started = time.perf_counter()
            frame = record.history(samples=args.rows, pandas=True)  # every row: the reference samples 500
            timings["pandas"].append(time.perf_counter() - started)
        assert count == scanned == len(frame) == args.rows, (count, scanned, len(frame))
    print(f"{args.rows:,} rows of 3 scalars, median of {args.repeat} passes\n")
    print("| reader | µs a row |")
    print("|---|---|")
    print(f"| `json.loads` per line (stdlib floor) | {_per_row(timings['stdlib'], args.rows):.2f} |")
    print(f"| `scan_history()` | {_per_row(timings['scan'], args.rows):.2f} |")
    print(f"| `history(pandas=True)` | {_per_row(timings['pandas'], args.rows):.2f} |")


if __name__ == "__main__":
    main()
