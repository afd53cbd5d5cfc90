"""Values added to an artifact with ``artifact.add(obj, name)``: tables and other media, stored as files.

A ``Table`` becomes ``<name>.table.json`` (the JSON a logged table has); media in its cells, and other
media values, are stored the way ``log()`` stores them (``files/media/...``) with ``<name>.<kind>.json``
holding the reference a history row would hold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.files import put_file

MEDIA_SUFFIXES = (".table.json", ".json")
_VALUE_FILE = re.compile(r"^(?P<name>.+)\.(?P<kind>[A-Za-z0-9]+)\.json$")


class _Files:
    """What a media value needs of a run to store itself (``put_file``, ``step``), writing into a folder
    of the artifact's draft instead."""

    step = 0

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[tuple[str, Path]] = []

    def put_file(self, relative: str, content: bytes | str | Path) -> Path:
        target = put_file(self.folder / relative, content)
        self.written.append((relative, target))
        return target


def store_value(obj: Any, name: str, folder: Path) -> tuple[list[tuple[str, Path]], str]:
    """Store ``obj`` under ``folder``: the (artifact path, file) pairs to add, and the main one's path."""
    to_history = getattr(obj, "_to_history", None)
    if not callable(to_history):
        raise UsageError(
            f"artifact.add(obj, {name!r}) takes a Table or a media value (Image, Audio, Html, ...), got "
            f"{type(obj).__name__}; add files with add_file() or new_file()."
        )
    files = _Files(folder / name)
    try:
        ref = to_history(files, name)
    finally:
        logged = getattr(obj, "_logged", None)
        if isinstance(logged, dict):  # a table remembers what it stored per run: not for this stand-in
            logged.pop(id(files), None)
    kind = str(getattr(obj, "kind", "media"))
    if ref.get("_type") in ("table-file", "incremental-table-file"):
        main = f"{name}.table.json"
        table_file = ref["path"]
        pairs = [(main if rel == table_file else rel, path) for rel, path in files.written]
        return pairs, main
    main = f"{name}.{kind}.json"
    ref_file = files.folder / main
    ref_file.write_text(json.dumps(ref), encoding="utf-8")
    return [*files.written, (main, ref_file)], main


def load_value(path: Path) -> Any:
    """The value stored at ``path`` by ``store_value``: a ``Table``, an ``Image``...; else the path."""
    from tracker_jupyter import media

    if path.name.endswith(".table.json"):
        return media.Table.from_file(path)
    match = _VALUE_FILE.match(path.name)
    if match is None:
        return str(path)
    ref = json.loads(path.read_text(encoding="utf-8"))
    stored = ref.get("path") if isinstance(ref, dict) else None
    kinds = {"image": media.Image, "audio": media.Audio, "video": media.Video, "html": media.Html}
    cls = kinds.get(match.group("kind"))
    if cls is None or not stored:
        return ref
    file = path.parent / stored
    return cls(str(file)) if file.is_file() else ref
