"""tracker_jupyter in offline mode: the row every ratio is taken against."""

from __future__ import annotations

from pathlib import Path

from contenders import Session

NAME = "ours"
MODULE = "tracker_jupyter"
DIST = "tracker-jupyter"


def environ(workdir: Path) -> dict[str, str]:
    return {}


def start(workdir: Path, config: dict[str, object]) -> Session:
    import tracker_jupyter

    run = tracker_jupyter.init(project="bench", dir=str(workdir), mode="offline", config=config)
    return Session(log=run.log, finish=run.finish)
