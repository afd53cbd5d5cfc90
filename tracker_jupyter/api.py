"""Reading runs back from the local store: ``tracker_jupyter.Api``."""

from __future__ import annotations

import os
from pathlib import Path

from tracker_jupyter.settings import Settings, resolve
from tracker_jupyter.store.records import RunRecord, find_run, list_runs, projects

__all__ = ["Api", "RunRecord"]


class Api:
    """Read runs from a local store.

    Parameters
    ----------
    dir
        The store root (what was passed to ``init(dir=...)``); default ``TRACKER_DIR`` or ``./tracker``.
    """

    def __init__(self, dir: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(resolve("root_dir", os.fspath(dir) if dir is not None else None, Settings()))

    def projects(self) -> list[str]:
        return projects(self.root)

    def runs(self, project: str | None = None) -> list[RunRecord]:
        """Runs of one project (or of all), newest first."""
        return list_runs(self.root, project)

    def run(self, path: str) -> RunRecord:
        """One run by ``id``, ``project/id``, ``entity/project/id`` or the path of its directory."""
        return find_run(self.root, path)
