"""The slow path of ``log()``: rows with nested dicts, numpy or torch values, media, anything else."""

from __future__ import annotations

import datetime
import decimal
import enum
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from tracker_jupyter.exceptions import UsageError

SCALARS = frozenset((float, int, str, bool, type(None)))


def _flatten(prefix: str, value: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, inner in value.items():
        if not isinstance(key, str):
            raise UsageError(f"log() keys must be strings; {prefix!r} has the key {key!r}.")
        name = f"{prefix}/{key}"
        if isinstance(inner, Mapping):
            _flatten(name, inner, out)
        else:
            out[name] = inner


def check_keys(row: Mapping[Any, Any]) -> None:
    """A UsageError naming the first key of a logged row that is not a string.

    ``log()``'s common path leaves this to the encoder, which refuses such keys before the row is stored;
    the slow paths call it first."""
    for key in row:
        if not isinstance(key, str):
            raise UsageError(
                f"log() keys must be strings; got {key!r} ({type(key).__name__}). Use e.g. str({key!r})."
            )


def check_step(step: Any) -> int:
    """``log(step=...)`` as a non-negative int, or a UsageError saying what it must be."""
    if isinstance(step, bool) or (not isinstance(step, (int, float)) and not hasattr(step, "__index__")):
        raise UsageError(f"log(step=...) must be a non-negative integer, got {step!r}.")
    if isinstance(step, float):
        if not step.is_integer():
            raise UsageError(f"log(step=...) must be a whole number, got {step!r}.")
        step = int(step)
    step = int(step.__index__()) if not isinstance(step, int) else step
    if step < 0:
        raise UsageError(f"log(step=...) must be a non-negative integer, got {step}.")
    return step


def normalize_row(
    data: dict[str, Any], run: Any, warn_once: Callable[[str, str, int], None], depth: int = 0
) -> dict[str, Any]:
    """Nested dicts flattened with '/', values made storable (media store themselves through ``run``, the
    ``Run`` logging them: not imported here, which would be a cycle)."""
    check_keys(data)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            _flatten(key, value, out)
        else:
            out[key] = value
    for key, value in out.items():
        if type(value) in SCALARS:
            continue
        out[key] = _normalize_value(key, value, run, warn_once, depth)
    return out


def _normalize_value(
    key: str, value: Any, run: Any, warn_once: Callable[[str, str, int], None], depth: int
) -> Any:
    if isinstance(value, (int, float, str)) and not hasattr(value, "item"):
        return value
    to_history = getattr(value, "_to_history", None)
    if callable(to_history):  # media objects know how to store themselves
        return to_history(run, key)
    item = getattr(value, "item", None)
    if callable(item):  # numpy and torch scalars, and one-element arrays/tensors
        numel = getattr(value, "numel", None)  # torch: .size is a method, .numel() the count
        if (numel() if callable(numel) else getattr(value, "size", 1)) == 1:
            return item()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, (list, tuple)):
        return _normalize_list(key, value, run)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return _normalize_value(key, value.value, run, warn_once, depth + 1)
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise UsageError(
        f"log() value for {key!r} is a {type(value).__name__}, which log() does not store: log numbers, "
        "strings, bools, None, lists and dicts of them, numpy or torch values, or media (Image, Video, "
        "Audio, Html, Table, Histogram, ...). To keep its text, log str(value)."
    )


def _normalize_list(key: str, value: list[Any] | tuple[Any, ...], run: Any) -> Any:
    """A list as stored; media in it store themselves (``<key>_<index>``) and the list becomes a
    ``media-list`` reference: ``{"_type": "media-list", "count": n, "items": [...]}``."""
    if not any(callable(getattr(item, "_to_history", None)) for item in value):
        return list(value)
    items = [
        item._to_history(run, f"{key}_{index}") if callable(getattr(item, "_to_history", None)) else item
        for index, item in enumerate(value)
    ]
    kinds = {item.get("_type") for item in items if isinstance(item, dict)}
    return {"_type": "media-list", "kind": kinds.pop() if len(kinds) == 1 else "mixed", "count": len(items),
            "items": items}  # fmt: skip
