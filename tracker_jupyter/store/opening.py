"""Which run directory ``init()`` logs to, in two steps: ``plan_run`` decides and refuses, ``open_run`` acts.

``plan_run`` only reads: it raises every refusal opening would raise (unknown runs and steps, an id that
exists, a config change a resumed run refuses), so that ``init()`` can refuse before it finishes the
active run. ``open_run`` then creates, resumes, rewinds or forks the directory and returns an ``Opened``
whose ``undo()`` puts the store back as it was, for an ``init()`` that fails later on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tracker_jupyter._version import __version__
from tracker_jupyter.core import host
from tracker_jupyter.core.config import merged_config
from tracker_jupyter.core.names import new_run_id
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.files import (
    Damaged,
    atomic_write,
    read_bytes,
    read_json,
    read_object,
    write_json_atomic,
)
from tracker_jupyter.store.history import (
    check_step,
    history_until,
    iter_history,
    iter_lines,
    last_row,
    mend_torn_tail,
    rewind_history,
    summarize,
)
from tracker_jupyter.store.rundir import (
    CONFIG,
    FINAL_STATES,
    HISTORY,
    META,
    SUMMARY,
    RunLock,
    run_path,
    run_state,
)

AUTO_RESUME_DIR = ".resume"  # <root>/.resume/<program key>.json: the last run of each program


class StepRef(NamedTuple):
    """A parsed ``"{run_id}?_step={step}"`` (resume_from, fork_from)."""

    run_id: str
    step: int


@dataclass(frozen=True)
class RunPlan:
    """What ``open_run`` will do: ``how`` is new, resumed, rewound or forked."""

    how: str
    root: Path
    project: str
    run_id: str | None  # the run to continue or rewind, or the new run's id (None: a random one)
    path: Path | None = None  # the existing directory: resumed, rewound, or the fork's source
    step: int | None = None  # the step rewound to, or forked at
    fork_of: str | None = None  # the source run's id of a fork


class Opened(NamedTuple):
    dir: Path
    meta: dict[str, Any]
    config: dict[str, Any]
    summary: dict[str, Any]
    next_step: int
    lock: RunLock
    created: bool
    copied_rows: list[dict[str, Any]]
    how: str  # new | resumed | rewound | forked
    saved: dict[str, bytes | None]  # a resumed run's metadata files as they were, to put back on failure
    archive: str | None = None  # a rewound run's whole history before the rewind

    def undo(self) -> None:
        """Forget a run this init() created; put a resumed or rewound run back as it was."""
        if self.created:
            self.lock.release()
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)
            return
        if self.archive is not None:
            os.replace(self.dir / self.archive, self.dir / HISTORY)  # the history before the rewind
        for name, content in self.saved.items():
            if content is not None:
                atomic_write(self.dir / name, content)
        self.lock.release()  # last: no other process sees the run half put back


# ------------------------------------------------------------------------------------------------ plan


def plan_run(
    *,
    root: Path,
    project: str,
    run_id: str | None,
    resume: str | None,
    rewind: StepRef | None,
    fork: StepRef | None,
    program_key: str,
    config: Mapping[str, Any],
    allow_val_change: bool,
) -> RunPlan:
    """Decide which directory ``init()`` opens, reading only; raise every refusal opening would raise."""
    if rewind is not None:
        rewound = _step_source(root, project, "resume_from", rewind)
        check_step(rewound, rewind.step, f"resume_from={rewind.run_id}?_step={rewind.step}: ")
        _check_config(rewound, config, allow_val_change)
        return RunPlan("rewound", root, project, rewind.run_id, rewound, rewind.step)
    if fork is not None:
        source = _step_source(root, project, "fork_from", fork)
        check_step(source, fork.step, f"fork_from={fork.run_id}?_step={fork.step}: ")
        return RunPlan("forked", root, project, run_id, source, fork.step, fork_of=fork.run_id)
    if resume == "auto" and run_id is None:
        last = read_json(root / AUTO_RESUME_DIR / f"{program_key}.json")
        if last and last.get("project") == project:
            path = find_existing(root, project, str(last.get("id")))
            if path is not None and run_state(path) == "crashed" and not _damaged(path):
                _check_config(path, config, allow_val_change)
                return RunPlan("resumed", root, project, str(last["id"]), path)
    if resume == "must" and run_id is None:
        raise UsageError("resume='must' needs the id of the run to continue: pass id= or set TRACKER_RUN_ID.")
    if run_id is not None:
        path = find_existing(root, project, run_id)
        if path is not None:
            if resume in ("allow", "must", "auto"):
                _check_config(path, config, allow_val_change)
                return RunPlan("resumed", root, project, run_id, path)
            raise _exists(run_id, project, path)
        if resume == "must":
            raise UsageError(
                f"resume='must': no run {run_id!r} in project {project!r} under {root} "
                f"(looked for {run_path(root, project, run_id)})."
            )
    return RunPlan("new", root, project, run_id)


def _exists(run_id: str, project: str, path: Path) -> UsageError:
    return UsageError(
        f"a run with id {run_id!r} already exists in project {project!r} ({path}). Pass "
        "resume='allow' or resume='must' to continue it, or another id for a new run."
    )


def _step_source(root: Path, project: str, what: str, ref: StepRef) -> Path:
    """The run directory ``resume_from`` / ``fork_from`` names, or a UsageError saying where it looked."""
    path = find_existing(root, project, ref.run_id)
    if path is None:
        raise UsageError(
            f"{what}={ref.run_id}?_step={ref.step}: no run {ref.run_id!r} in project {project!r} under {root}."
        )
    return path


def _damage(path: Path) -> tuple[str, Damaged] | None:
    """Which of the run's metadata and config files cannot be read, and why; None when both can."""
    for name in (META, CONFIG):
        try:
            read_object(path / name)
        except Damaged as exc:
            return name, exc
    return None


def _damaged(path: Path) -> bool:
    """Whether the run's metadata or config cannot be read (resume='auto' starts a new run then)."""
    return _damage(path) is not None


def _check_config(path: Path, config: Mapping[str, Any], allow_val_change: bool) -> None:
    """Refuse now what merging ``config`` into the run at ``path`` would refuse once the run is open, and
    a run whose metadata or config cannot be read: continuing it would replace them with nothing."""
    damage = _damage(path)
    if damage is not None:
        name, exc = damage
        raise UsageError(
            f"run {path.parent.name}/{path.name} cannot be continued: {exc} ({path / name}). Restore the "
            "file from a backup, or start a new run (another id) instead of resuming this one."
        )
    merged_config(read_json(path / CONFIG, {}) or {}, config, allow_val_change)


def find_existing(root: Path, project: str, run_id: str) -> Path | None:
    path = run_path(root, project, run_id)
    return path if (path / META).exists() else None


# ------------------------------------------------------------------------------------------------ open


def open_run(plan: RunPlan, *, held_here: Callable[[Path], bool]) -> Opened:
    """Create, resume, rewind or fork the run directory ``plan`` names.

    ``held_here(path)`` tells whether a run of this process has ``path`` open, for the message when its
    lock is taken.
    """
    if plan.how == "rewound":
        assert plan.path is not None and plan.run_id is not None and plan.step is not None
        lock = _lock_or_fail(plan.path, plan.run_id, held_here)
        try:
            saved = {name: read_bytes(plan.path / name) for name in (META, CONFIG, SUMMARY)}
            mend_torn_tail(plan.path / HISTORY)  # the archive keeps the rows, not a killed writer's zeros
            archive = rewind_history(plan.path, plan.step)
        finally:
            lock.release()
        opened = _resume_existing(plan.path, plan.run_id, "rewound", held_here)
        opened = opened._replace(saved=saved, archive=archive)
        opened.meta.setdefault("rewinds", []).append({"time": time.time(), "step": plan.step})
        return opened
    if plan.how == "forked":
        assert plan.path is not None and plan.step is not None
        rows = history_until(plan.path, plan.step)
        forked, lock, new_id = _create(plan.root, plan.project, plan.run_id)
        source_meta = read_json(plan.path / META, {}) or {}
        meta = new_meta(new_id, plan.project)
        meta["fork"] = {"run_id": plan.fork_of, "project": plan.project, "step": plan.step}
        for key in ("entity", "group", "job_type", "notes", "tags"):
            if source_meta.get(key) is not None:
                meta[key] = source_meta[key]
        summary, _ = summarize(iter(rows))
        return Opened(
            dir=forked, meta=meta, config=read_json(plan.path / CONFIG, {}) or {}, summary=summary,
            next_step=plan.step + 1, lock=lock, created=True, copied_rows=rows, how="forked", saved={},
        )  # fmt: skip
    if plan.how == "resumed":
        assert plan.path is not None and plan.run_id is not None
        return _resume_existing(plan.path, plan.run_id, "resumed", held_here)
    path, lock, new_id = _create(plan.root, plan.project, plan.run_id)
    return Opened(
        dir=path, meta=new_meta(new_id, plan.project), config={}, summary={}, next_step=0, lock=lock,
        created=True, copied_rows=[], how="new", saved={},
    )  # fmt: skip


def new_meta(run_id: str, project: str) -> dict[str, Any]:
    return {
        "id": run_id,
        "uid": os.urandom(16).hex(),  # unique to this run of this store: its MLflow run is found by it
        "project": project,
        "state": "running",
        "start_time": time.time(),
        "tracker_version": __version__,
        **host.machine_info(),
    }


def _lock_or_fail(path: Path, run_id: str, held_here: Callable[[Path], bool]) -> RunLock:
    lock = RunLock(path)
    if not lock.acquire():
        if held_here(path):
            raise UsageError(
                f"run {run_id} is active in this process (tracker_jupyter.run or another Run object); finish "
                "it first, or pass reinit='finish_previous' to have init() finish it."
            )
        meta = read_json(path / META, {}) or {}
        raise UsageError(
            f"run {run_id} ({path}) is open in another process (pid {meta.get('pid', '?')} on "
            f"{meta.get('host', '?')}); finish it there first, or pass another id."
        )
    return lock


def _create(root: Path, project: str, run_id: str | None) -> tuple[Path, RunLock, str]:
    """A fresh run directory. ``mkdir`` is the atomic claim, so two processes never get the same id."""
    (root / project).mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        chosen = run_id or new_run_id()
        path = run_path(root, project, chosen)
        try:
            path.mkdir()
        except FileExistsError:
            if run_id is not None:
                raise _exists(run_id, project, path) from None
            continue
        lock = RunLock(path)
        try:
            (path / "files").mkdir()
            lock.acquire()
        except OSError:  # a full or failing disk: no half-made run is left behind
            lock.release()
            import shutil

            shutil.rmtree(path, ignore_errors=True)
            raise
        return path, lock, chosen
    raise UsageError("could not find a free run id after 5 tries; is the store directory writable?")


def _resume_existing(path: Path, run_id: str, how: str, held_here: Callable[[Path], bool]) -> Opened:
    lock = _lock_or_fail(path, run_id, held_here)
    saved = {name: read_bytes(path / name) for name in (META, CONFIG, SUMMARY)}
    meta = read_json(path / META, {}) or {}
    summary = read_json(path / SUMMARY)
    # the only way into an existing history: a crashed writer's half line must not swallow the rows to
    # come, and a complete last row without its newline counts as a step
    mend_torn_tail(path / HISTORY)
    last = last_row(path / HISTORY)
    next_step = int(last["_step"]) + 1 if last and "_step" in last else 0
    previous_state = run_state(path, meta) if meta.get("state") in FINAL_STATES else "crashed"
    if summary is None:
        summary, next_step = summarize(iter_history(path / HISTORY))
    elif previous_state == "crashed" and how != "rewound":
        # rows reach the file at once, summary.json at the writer's pace: add what it did not cover yet
        through = meta.get("summary_through")
        if isinstance(through, int) and through >= 0:
            tail = (row for rows, _ in iter_lines(path / HISTORY, through) for row in rows)
            summary.update(summarize(tail)[0])
    meta.update(state="running", exit_code=None, end_time=None, **host.machine_info())
    meta.setdefault("resumes", []).append(
        {"time": time.time(), "step": next_step, "previous_state": previous_state}
    )
    meta["resumed"] = True
    return Opened(
        dir=path, meta=meta, config=read_json(path / CONFIG, {}) or {}, summary=summary,
        next_step=next_step, lock=lock, created=False, copied_rows=[], how=how, saved=saved,
    )  # fmt: skip


def remember_for_auto_resume(root: Path, key: str, project: str, run_id: str) -> None:
    """Note the run as the last one of its program, for a later ``resume='auto'``."""
    folder = root / AUTO_RESUME_DIR
    folder.mkdir(exist_ok=True)
    write_json_atomic(folder / f"{key}.json", {"project": project, "id": run_id})
