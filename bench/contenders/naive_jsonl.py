"""The floor a tracker has to beat end to end: one json.dumps and one buffered write per step."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from contenders import Session

NAME = "naive"
MODULE = "json"
DIST = ""


def environ(workdir: Path) -> dict[str, str]:
    return {}


def start(workdir: Path, config: dict[str, object]) -> Session:
    out = open(workdir / "metrics.jsonl", "w", encoding="utf-8")  # closed by Session.finish
    out.write(json.dumps({"config": config}) + "\n")
    steps = itertools.count()

    def log(metrics: dict[str, float]) -> None:
        out.write(json.dumps({"_step": next(steps), **metrics}) + "\n")

    return Session(log=log, finish=out.close)
