"""A run directory's names and paths, its lock, and the state a run is in, read from the store alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.files import read_json
from tracker_jupyter.store.locks import FileLock

HISTORY = "history.jsonl"
META = "run.json"
CONFIG = "config.json"
SUMMARY = "summary.json"
LOCK = "lock"

FINAL_STATES = ("finished", "failed")

_FORBIDDEN = set("/\\#?%:")


def check_name(kind: str, value: str, *, max_len: int) -> str:
    """Refuse names that cannot be a single path component (ids and projects become directory names)."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"{kind} must be a non-empty string, got {value!r}.")
    bad = sorted(set(value) & _FORBIDDEN)
    if bad:
        raise UsageError(
            f"{kind} {value!r} contains {' '.join(bad)}; the characters / \\ # ? % : are not allowed. "
            f"Pick another {kind}, without them."
        )
    if value in (".", "..") or any(ord(c) < 32 for c in value) or value != value.strip():
        raise UsageError(
            f"{kind} {value!r} is not usable as a name: no control characters, no leading or trailing "
            "spaces, and not '.' or '..'."
        )
    if len(value) > max_len:
        raise UsageError(f"{kind} {value[:20]!r}... is {len(value)} characters long; at most {max_len}.")
    return value


def run_path(root: Path, project: str, run_id: str) -> Path:
    path = root / project / run_id
    # check_name already rules out separators; this is the belt to those braces.
    if Path(os.path.abspath(path)).parent.parent != Path(os.path.abspath(root)):
        raise UsageError(f"project {project!r} / id {run_id!r} would leave the store root {root}.")
    return path


# ------------------------------------------------------------------------------------------------ lock


class RunLock(FileLock):
    """The exclusive lock on ``<run>/lock``, held while a process has the run open; never waited for."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir / LOCK)

    def acquire(self, timeout: float | None = 0) -> bool:
        return super().acquire(timeout)


def is_locked(run_dir: Path) -> bool:
    """True while some process (this one included) holds the run open."""
    return FileLock(run_dir / LOCK).holder() is not None


def run_state(run_dir: Path, meta: dict[str, Any] | None = None) -> str:
    """``running``, ``finished``, ``failed`` or ``crashed``, derived from the store alone."""
    if meta is None:
        meta = read_json(run_dir / META, {}) or {}
    if not isinstance(meta, dict):  # damaged: JSON, but not the object it should be
        meta = {}
    state = meta.get("state")
    if state in FINAL_STATES:
        return str(state)
    return "running" if is_locked(run_dir) else "crashed"
