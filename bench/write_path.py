"""The write path's alternatives, measured side by side: what each costs the caller per row, and what a
kill -9 right after the last row loses.

    .venv/bin/python bench/write_path.py [--rows 200000] [--kills 3]

- ``mmap``: orjson, then a copy into a memory map of the file (``store.appender.HistoryAppender``: ours);
- ``write``: orjson, then one ``os.write`` of the line per row (a system call each);
- ``batch``: the row into a deque; a thread encodes blocks with the stdlib's encoder and writes them every
  50 ms (the write path before, which waited 0.5 s: a loop this short would never meet the thread, so it
  runs more often here, to show what the caller pays while the thread holds the GIL);
- ``stdlib``: ``json.dumps`` and one buffered file write per row (the naive json-lines writer).

Each runs in a fresh process. The kill test starts the writer in a child, waits for its "done" line and
sends SIGKILL at once, then counts the complete rows in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import collections, json, os, sys, threading, time
from pathlib import Path
kind, path, rows = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
row = {"loss": 0.1, "acc": 0.5, "lr": 0.001, "_step": 0, "_timestamp": 1733000000000}

if kind == "mmap":
    from tracker_jupyter.store.appender import HistoryAppender
    appender = HistoryAppender(path, max_pending=20000, on_problem=lambda kind, message: None)
    put = appender.append
elif kind == "write":
    import orjson
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    def put(r):
        os.write(fd, dumps(r, option=option))
elif kind == "batch":
    queue = collections.deque()
    put = queue.append
    fh = open(path, "a", encoding="utf-8")
    encode = json.JSONEncoder(separators=(",", ":")).encode
    def drain():
        while True:
            time.sleep(0.05)
            rows_now = [queue.popleft() for _ in range(len(queue))]
            if rows_now:
                fh.write("".join(encode(r) + "\n" for r in rows_now))
                fh.flush()
    threading.Thread(target=drain, daemon=True).start()
else:
    fh = open(path, "a", encoding="utf-8")
    dumps = json.dumps
    def put(r):
        fh.write(dumps(r) + "\n")

clock = time.perf_counter_ns
samples = []
started = time.perf_counter()
for step in range(rows):
    r = dict(row)
    r["_step"] = step
    before = clock()
    put(r)
    samples.append(clock() - before)
elapsed = time.perf_counter() - started
samples.sort()
print(json.dumps({"median_ns": samples[len(samples) // 2], "mean_ns": sum(samples) / len(samples),
                  "p99_ns": samples[int(len(samples) * 0.99)], "loop_s": elapsed}), flush=True)
print("done", flush=True)
time.sleep(600)
"""

KINDS = ("mmap", "write", "batch", "stdlib")


def _complete_rows(path: Path) -> int:
    if not path.exists():
        return 0
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].count(b'"_step":')


def run_one(kind: str, rows: int, workdir: Path) -> tuple[dict[str, float], int]:
    """One fresh process: its per-call figures, and the rows still readable after kill -9 at "done"."""
    path = workdir / f"{kind}.jsonl"
    path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(path), str(rows)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        figures = json.loads(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "done"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    return figures, _complete_rows(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--kills", type=int, default=3, help="fresh processes per kind (each killed)")
    args = parser.parse_args()
    print(f"{args.rows:,} rows of 3 scalars per process, {args.kills} processes per kind, kill -9 at once\n")
    print("| path | caller median (µs) | caller mean (µs) | p99 (µs) | rows lost at kill -9 (each trial) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            results = [run_one(kind, args.rows, Path(tmp)) for _ in range(args.kills)]
            median = statistics.median(r[0]["median_ns"] for r in results) / 1000
            mean = statistics.median(r[0]["mean_ns"] for r in results) / 1000
            p99 = statistics.median(r[0]["p99_ns"] for r in results) / 1000
            lost = ", ".join(f"{args.rows - kept:,}" for _, kept in results)
            print(f"| {kind} | {median:.2f} | {mean:.2f} | {p99:.2f} | {lost} |")
            time.sleep(0.2)


if __name__ == "__main__":
    main()
