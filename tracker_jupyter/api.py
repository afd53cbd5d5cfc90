"""Reading runs back from the local store: ``tracker_jupyter.Api``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.media import Histogram, Table
from tracker_jupyter.settings import Settings, resolve
from tracker_jupyter.store.records import RunRecord, find_run, list_runs, projects

__all__ = ["Api", "ApiRun", "RunRecord"]


class ApiRun(RunRecord):
    """A stored run as ``Api`` gives it: a ``RunRecord`` that also turns stored values into objects."""

    def value(self, stored: Any) -> Any:
        """A value from the history or summary as its object: a table reference as a ``Table``, a histogram
        as a ``Histogram``, a media reference as the ``Path`` of its file, a media list as a list of those;
        anything else as it is."""
        if not isinstance(stored, dict):
            return stored
        kind = stored.get("_type")
        if kind in ("table-file", "incremental-table-file") and stored.get("path"):
            table = Table.from_file(self.dir / stored["path"])
            for earlier in reversed(stored.get("previous_increments_paths") or []):
                table.data[:0] = Table.from_file(self.dir / earlier).data
            return table
        if kind == "histogram":
            return Histogram(np_histogram=(stored["values"], stored["bins"]))
        if kind == "media-list":
            return [self.value(item) for item in stored.get("items", [])]
        if isinstance(kind, str) and stored.get("path"):
            return self.dir / stored["path"]
        return stored

    def table(self, key: str, step: int | None = None) -> Table:
        """The table logged under ``key`` at ``step`` (the last one logged when None)."""
        found = None
        for row in self.scan_history(keys=[key]):
            if step is None or row["_step"] == step:
                found = row[key]
        if not isinstance(found, dict) or "table" not in str(found.get("_type")):
            where = "" if step is None else f" at step {step}"
            raise UsageError(f"run {self.project}/{self.id} has no table logged as {key!r}{where}.")
        table = self.value(found)
        assert isinstance(table, Table)
        return table


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

    def runs(self, project: str | None = None) -> list[ApiRun]:
        """Runs of one project (or of all), newest first."""
        return [ApiRun(record.dir) for record in list_runs(self.root, project)]

    def run(self, path: str) -> ApiRun:
        """One run by ``id``, ``project/id``, ``entity/project/id`` or the path of its directory."""
        return ApiRun(find_run(self.root, path).dir)
