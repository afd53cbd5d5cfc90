"""Files of a run directory other than the history: written atomically, read forgivingly.

``atomic_write`` is the one way a file is replaced: the new content goes to a temporary name beside the
file and is renamed over it, so a reader (or a crash) sees the old file or the new one, never half.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from tracker_jupyter.core.values import dumps, json_default, storable

__all__ = [
    "atomic_write",
    "copy_matching",
    "dumps",
    "put_file",
    "read_bytes",
    "read_json",
    "write_json_atomic",
]


def atomic_write(path: Path, data: str | bytes, *, fsync: bool = False, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8).

    ``fsync`` makes the new content durable before the rename; ``mode`` creates the file with those
    permission bits (0o600 for credentials) instead of the umask's, so it is never readable by others,
    not even for a moment.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    content = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)  # whatever the umask took away
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, value: Any, *, fsync: bool = False, mode: int | None = None) -> None:
    """Replace ``path`` with ``value`` as JSON (see ``atomic_write``)."""
    try:
        text = json.dumps(value, default=json_default, indent=1, sort_keys=False)
    except Exception:  # a value JSON cannot carry (or whose repr raises): stored in its documented form
        text = json.dumps(storable(value), default=json_default, indent=1, sort_keys=False)
    atomic_write(path, text, fsync=fsync, mode=mode)


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when the file is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except ValueError:
        # Only a file written by something other than atomic_write can be half-written.
        return default


class Damaged(Exception):
    """A run file that exists but cannot be read as what it should be; the message says which and why."""


def read_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is missing; ``Damaged`` when it is there but not a
    JSON object (cut short, written by something else, unreadable)."""
    try:
        with open(path, "rb") as fh:
            content = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Damaged(f"{path.name} cannot be read ({exc.strerror or exc})") from exc
    try:
        value = json.loads(content)
    except ValueError:
        what = (
            "is empty" if not content.strip() else "is not valid JSON (cut short, or not written by tracker)"
        )
        raise Damaged(f"{path.name} {what}") from None
    if not isinstance(value, dict):
        raise Damaged(f"{path.name} holds JSON {type(value).__name__}, not an object")
    return value


def read_bytes(path: Path) -> bytes | None:
    """The content of ``path``, or None when it is missing."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def put_file(target: Path, content: bytes | str | Path) -> Path:
    """Store ``content`` (bytes, text, or a file to copy with its times) at ``target``, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(content, Path):
        atomic_write(target, content)
        return target
    import shutil

    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        shutil.copy2(content, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def copy_matching(glob_str: str, base_path: str | None, dest: str) -> list[str]:
    """``run.save(glob_str, base_path)``: copy the files ``glob_str`` matches into ``dest``, keeping their
    path relative to ``base_path`` (default: the part of ``glob_str`` before any wildcard)."""
    import glob
    import shutil
    import warnings

    if base_path is None:
        head = glob_str.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        base_path = os.path.dirname(head) or "."
    written = []
    matches = glob.glob(glob_str, recursive=True)
    if not matches:  # stacklevel: here, the writer, Run.save, then the caller of run.save()
        warnings.warn(f"run.save({glob_str!r}) matched no files.", UserWarning, stacklevel=4)
    root = os.path.realpath(dest)
    for src in matches:
        if not os.path.isfile(src):
            continue
        real = os.path.realpath(src)
        # already in the run's files (wandb.save(os.path.join(run.dir, "x.pt"))): taken as it is
        if real.startswith(root + os.sep):
            written.append(os.path.join(dest, os.path.relpath(real, root)))
            continue
        rel = os.path.relpath(src, base_path)
        if rel.startswith(".."):
            rel = os.path.basename(src)
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
        written.append(target)
    return written
