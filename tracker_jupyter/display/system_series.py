"""System metrics as charts: the samples in the run's ``system.jsonl`` folded into a ``RunFeed``.

The sampler (``tracker_jupyter.system``) writes one row a sample, ``{"_step": n, "_timestamp": ms,
"system/cpu_utilization_percentage": ...}``, to a file of its own, so the user's steps never move. Its
metrics join the feed's series under their ``system/`` names (the charts' last section) without going
through ``RunFeed.ingest``: the sample numbers are not the run's steps, and must not move the steps
per second. The charts draw that section against time, not steps.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Protocol

from tracker_jupyter.display.charts import MinMaxSeries

__all__ = ["SystemReader"]

MAX_READ = 4 << 20  # bytes read at one call: a long run's file is caught up with over a few calls


class Feed(Protocol):
    """What of a ``view.RunFeed`` the reader uses."""

    lock: threading.Lock
    series: dict[str, MinMaxSeries]
    capacity: int
    max_series: int
    version: int


class SystemReader:
    """Reads the new complete lines of a ``system.jsonl`` into a feed, from where it stopped."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = 0
        self.samples = 0

    def read(self, feed: Feed) -> int:
        """Fold the samples written since the last call into ``feed``; returns how many."""
        if self.path is None:
            return 0
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read(MAX_READ)
        except OSError:
            return 0
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0
        self.offset += end + 1
        rows = []
        for line in chunk[:end].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a torn or damaged line: the others still count
            if isinstance(row, dict) and isinstance(row.get("_step"), int):
                rows.append(row)
        if not rows:
            return 0
        with feed.lock:
            for key in dict.fromkeys(k for row in rows for k in row if k.startswith("system/")):
                kept = [
                    r for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool)
                ]
                if not kept:
                    continue
                series = feed.series.get(key)
                if series is None:
                    if len(feed.series) >= feed.max_series:
                        continue
                    series = feed.series[key] = MinMaxSeries(feed.capacity)
                if kept[0]["_step"] <= series.last_step:
                    kept = [r for r in kept if r["_step"] > series.last_step]
                series.extend(
                    [r["_step"] for r in kept], [r[key] for r in kept], [r.get("_timestamp", 0) for r in kept]
                )
            feed.version += 1
        self.samples += len(rows)
        return len(rows)
