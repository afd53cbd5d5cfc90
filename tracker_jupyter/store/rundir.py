"""A run directory's names and paths, its lock, and the state a run is in, read from the store alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.files import read_json

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


class RunLock:
    """An exclusive ``flock`` on ``<run>/lock`` held while a process has the run open."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def is_locked(run_dir: Path) -> bool:
    """True while some process (this one included) holds the run open."""
    import fcntl

    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


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
