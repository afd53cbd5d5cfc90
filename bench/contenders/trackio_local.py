"""trackio writing to its local SQLite store: log() queues, a background thread batches into SQLite."""

from __future__ import annotations

from pathlib import Path

from contenders import Session

NAME = "trackio"
MODULE = "trackio"
DIST = "trackio"


def environ(workdir: Path) -> dict[str, str]:
    # trackio resolves its store from TRACKIO_DIR (else HF_HOME) once at import time.
    return {"TRACKIO_DIR": str(workdir / "trackio"), "HF_HOME": str(workdir / "hf")}


def start(workdir: Path, config: dict[str, object]) -> Session:
    import trackio

    # embed only matters inside a notebook; off so a script run never starts the dashboard.
    run = trackio.init(project="bench", config=config, embed=False)
    return Session(log=run.log, finish=run.finish)
