"""Checks of what users pass to artifacts: names inside an artifact, paths, aliases, metadata."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.artifacts import check_alias


def checked_aliases(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set)):
        raise UsageError(f"{where} must be a string or a list of strings, got {value!r}.")
    out: list[str] = []
    for alias in value:
        if alias != "latest":
            check_alias(alias)
        if alias not in out:
            out.append(alias)
    return out


def checked_description(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"Artifact(description=...) must be a string, got {value!r}.")
    return value


def checked_metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UsageError(f"Artifact(metadata=...) must be a dict, got {type(value).__name__}.")
    from tracker_jupyter.core.values import json_default

    try:
        json.dumps(dict(value), default=json_default)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"Artifact(metadata=...) must be JSON-serializable: {exc}") from None
    return dict(value)


def existing(local_path: Any, method: str, argument: str, *, want: str) -> Path:
    if not isinstance(local_path, (str, os.PathLike)):
        raise UsageError(f"{method}({argument}=...) must be a path, got {local_path!r}.")
    path = Path(os.fspath(local_path))
    if not path.exists():
        raise UsageError(f"{method}({argument}={os.fspath(local_path)!r}): no such {want}.")
    if want == "file" and not path.is_file():
        raise UsageError(
            f"{method}({argument}={os.fspath(local_path)!r}) is a directory; add it with add_dir()."
        )
    if want == "dir" and not path.is_dir():
        raise UsageError(f"{method}({argument}={os.fspath(local_path)!r}) is a file; add it with add_file().")
    return path


def checked_entry_name(name: Any, method: str) -> str:
    if not isinstance(name, str) or not name.strip("/"):
        raise UsageError(f"{method}(name=...) must be a non-empty path string, got {name!r}.")
    clean = name.replace(os.sep, "/").lstrip("/")
    parts = clean.rstrip("/").split("/")
    if any(part in ("..", ".") for part in parts) or any(ord(c) < 32 for c in clean):
        raise UsageError(f"{method}(name={name!r}): a name inside the artifact, without '.' or '..' parts.")
    return clean


def inside(root: Path, relative: str) -> Path:
    target = root / relative
    if not os.path.abspath(target).startswith(os.path.abspath(root) + os.sep):
        raise UsageError(f"artifact file {relative!r} would be written outside {root}.")
    return target
