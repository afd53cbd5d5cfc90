"""Runs read back from a store root: ``RunRecord`` and the lookups ``tracker_jupyter.Api`` offers.

Every kind of run record (this one, and the tracking server's in ``online.remote``) has the fields of
``RecordFields``, which is all the runs dashboard and ``tracker runs`` read.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from tracker_jupyter.core.report import Once
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.console import OUTPUT_LOG, SYSTEM, tail_lines
from tracker_jupyter.store.files import Damaged, read_object
from tracker_jupyter.store.history import iter_history, summarize
from tracker_jupyter.store.rundir import CONFIG, HISTORY, META, SUMMARY, check_name, run_state


def warn_damaged(message: str, stacklevel: int = 4) -> None:
    """A damaged file met while reading (a ``UserWarning``, once per message): the caller goes on."""
    if _warned(message):
        warnings.warn(message, UserWarning, stacklevel=stacklevel)


_warned = Once()


class RecordFields(Protocol):
    """What a run record has, wherever it was read."""

    source: str  # "local" or "server"
    id: str
    name: str | None
    project: str
    entity: str | None
    notes: str | None
    group: str | None
    job_type: str | None
    tags: tuple[str, ...]
    state: str
    start_time: float | None
    end_time: float | None
    config: Mapping[str, Any]
    summary: Mapping[str, Any]

    def scan_history(self, keys: list[str] | None = None) -> Iterator[dict[str, Any]]: ...


class RunRecord:
    """One stored run, read from disk: metadata, config, summary and history.

    ``state`` is derived from the store (``crashed`` for a run whose process died), so it is right even
    for runs that never got to finish.
    """

    source = "local"  # where the record was read (the runs dashboard adds the server's)

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        #: what is wrong with the run's files, said as what to do; None for a sound run
        self.damage: str | None = None
        try:
            meta = read_object(run_dir / META)
        except Damaged as exc:
            meta = {}
            self.damage = (
                f"run {run_dir.parent.name}/{run_dir.name} is damaged: {exc} ({run_dir / META}). Its history "
                "may still be readable; restore the file from a backup, or remove the run directory."
            )
        if meta is None:
            raise UsageError(f"{run_dir} is not a run directory (no {META}).")
        self.meta: dict[str, Any] = meta

    id = property(lambda self: str(self.meta.get("id", self.dir.name)))
    name = property(lambda self: self.meta.get("name"))
    project = property(lambda self: self.meta.get("project", self.dir.parent.name))
    entity = property(lambda self: self.meta.get("entity"))
    notes = property(lambda self: self.meta.get("notes"))
    group = property(lambda self: self.meta.get("group"))
    job_type = property(lambda self: self.meta.get("job_type"))
    start_time = property(lambda self: self.meta.get("start_time"))
    end_time = property(lambda self: self.meta.get("end_time"))
    exit_code = property(lambda self: self.meta.get("exit_code"))
    mode = property(lambda self: self.meta.get("mode"))

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.meta.get("tags") or ())

    @property
    def path(self) -> str:
        return "/".join([*([self.entity] if self.entity else []), self.project, self.id])

    @property
    def state(self) -> str:
        """running, finished, failed, crashed, or damaged (``damage`` says what is wrong)."""
        return "damaged" if self.damage is not None else run_state(self.dir, self.meta)

    @property
    def config(self) -> dict[str, Any]:
        """The run's config; ``{}`` with a warning naming the file when config.json is damaged."""
        return self._object(CONFIG) or {}

    @property
    def summary(self) -> dict[str, Any]:
        summary = self._object(SUMMARY)
        if summary is None:  # crashed before the first summary write (or damaged): derive it
            summary, _ = summarize(self.scan_history())
        return summary

    def _object(self, name: str) -> dict[str, Any] | None:
        try:
            return read_object(self.dir / name)
        except Damaged as exc:
            warn_damaged(f"run {self.project}/{self.id}: {exc} ({self.dir / name}); it reads as empty here.")
            return None

    @property
    def lineage(self) -> dict[str, Any]:
        """Where the run came from: ``fork`` (parent run and step), ``rewinds`` and ``resumes``."""
        return {k: self.meta[k] for k in ("fork", "rewinds", "resumes") if k in self.meta}

    def system_samples(self) -> Iterator[dict[str, Any]]:
        """The run's system metrics samples, oldest first (``_step``, ``_timestamp``, ``_runtime`` and
        ``system/<name>`` values)."""
        yield from iter_history(self.dir / SYSTEM)

    def console_tail(self, lines: int = 20) -> list[str]:
        """The last ``lines`` lines the run printed (``files/output.log``)."""
        return tail_lines(self.dir / OUTPUT_LOG, lines)

    def scan_history(
        self, keys: list[str] | None = None, min_step: int | None = None, max_step: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every row in step order, each with ``_step`` and ``_timestamp`` (ms since the epoch).

        With ``keys``, only rows that have all of them, reduced to those keys plus ``_step`` and
        ``_timestamp``; ``min_step`` is inclusive, ``max_step`` exclusive.
        """
        bad: list[int] = []
        rows = iter_history(self.dir / HISTORY, bad=bad)
        if min_step is not None or max_step is not None or keys is not None:
            rows = _selected(rows, keys, min_step, max_step)
        yield from rows
        if bad:
            warn_damaged(
                f"{self.dir / HISTORY} of run {self.project}/{self.id} has {len(bad)} unreadable line(s) (the "
                f"first is line {bad[0]}); their rows are left out. The other rows are complete.",
                stacklevel=3,  # the code iterating over the rows
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "project": self.project, "entity": self.entity,
            "state": self.state, "damage": self.damage, "start_time": self.start_time, "end_time": self.end_time,
            "tags": list(self.tags), "notes": self.notes, "group": self.group, "job_type": self.job_type,
            "config": self.config, "summary": self.summary, "dir": str(self.dir), "mode": self.mode,
        }  # fmt: skip

    def __repr__(self) -> str:
        return f"<RunRecord {self.path} name={self.name!r} state={self.state}>"


def projects(root: Path) -> list[str]:
    """The projects under a store root, by name."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_runs(root: Path, project: str | None = None) -> list[RunRecord]:
    """Runs of one project (or of all) under ``root``, newest first; unreadable ones are left out."""
    records = []
    for name in [project] if project is not None else projects(root):
        folder = root / name
        if not folder.is_dir():
            continue
        for run_dir in folder.iterdir():
            if (run_dir / META).is_file():
                try:
                    records.append(RunRecord(run_dir))
                except UsageError:
                    continue
    records.sort(key=lambda r: r.start_time or 0, reverse=True)
    return records


def find_run(root: Path, path: str) -> RunRecord:
    """One run by ``id``, ``project/id``, ``entity/project/id`` or the path of its directory."""
    if not isinstance(path, str) or not path:
        raise UsageError(f"Api.run() takes a run id or path, got {path!r}.")
    as_dir = Path(path)
    if (as_dir / META).is_file():
        return RunRecord(as_dir)
    parts = path.strip("/").split("/")
    if len(parts) == 1:
        matches = [root / p / parts[0] for p in projects(root) if (root / p / parts[0] / META).is_file()]
        if len(matches) > 1:
            found = ", ".join(f"{m.parent.name}/{m.name}" for m in matches)
            raise UsageError(f"run id {path!r} exists in several projects ({found}); pass 'project/id'.")
        if matches:
            return RunRecord(matches[0])
    elif len(parts) in (2, 3):
        project, run_id = parts[-2], parts[-1]
        check_name("project", project, max_len=256)
        check_name("id", run_id, max_len=256)
        candidate = root / project / run_id
        if (candidate / META).is_file():
            return RunRecord(candidate)
    raise UsageError(f"no run {path!r} under {root}.")


def _selected(
    rows: Iterator[dict[str, Any]], keys: list[str] | None, min_step: int | None, max_step: int | None
) -> Iterator[dict[str, Any]]:
    for row in rows:
        step = row["_step"]
        if min_step is not None and step < min_step:
            continue
        if max_step is not None and step >= max_step:
            break
        if keys is not None:
            if not all(k in row for k in keys):
                continue
            row = {k: row[k] for k in ("_step", "_timestamp", *keys) if k in row}
        yield row
