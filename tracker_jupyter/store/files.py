"""Files of a run directory other than the history: JSON written atomically, read forgivingly."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def _json_default(value: Any) -> Any:
    """Turn what json cannot encode into what it can: numpy/torch scalars, arrays, paths, sets."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "size", 1) == 1:
        return item()
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def dumps(value: Any) -> str:
    """JSON text as the store writes it (NaN and infinities kept, numpy scalars turned into numbers)."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def write_json_atomic(path: Path, value: Any, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``value`` as JSON so that a reader sees the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(value, fh, default=_json_default, indent=1, sort_keys=False)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except ValueError:
        # Only a file written by something other than write_json_atomic can be half-written.
        return default
