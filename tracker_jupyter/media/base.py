"""What every media value shares: storing itself under the run when logged, and the newest one per run.

A media value's ``_to_history(run, key)`` writes its file into the run (``run.put_file``) in the caller's
thread and returns the reference the history row holds; ``path`` is relative to the run directory and the
file name holds the key, the step and a content hash, so logging the same key again never overwrites.
"""

from __future__ import annotations

import hashlib
import os
import re
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter.exceptions import UsageError

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

MEDIA_DIR = "files/media"
VIDEO_FORMATS = ("mp4", "gif", "webm", "ogg")
IMAGE_FORMATS = ("png", "jpeg", "jpg", "gif", "bmp", "webp")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

# run -> its newest media row, so the live widget finds it without reading the history back
_latest: weakref.WeakKeyDictionary[Any, dict[str | None, dict[str, Any]]] = weakref.WeakKeyDictionary()


class Media:
    """A value that stores itself under the run when logged (``Run._normalize_value`` calls ``_to_history``)."""

    kind = "media"

    def __init__(self, caption: str | None) -> None:
        if caption is not None and not isinstance(caption, str):
            raise UsageError(f"{type(self).__name__}(caption=...) must be a string, got {caption!r}.")
        self.caption = caption

    def _payload(self) -> tuple[bytes | Path, str, dict[str, Any]]:
        """The file content (bytes, or a file to copy), its format and extra row fields."""
        raise NotImplementedError

    def _to_history(self, run: Run, key: str) -> dict[str, Any]:
        content, fmt, extra = self._payload()
        relative, digest, target = put_media(run, f"{self.kind}s", key, content, fmt)
        row: dict[str, Any] = {"_type": self.kind, "path": None, "format": fmt, **extra, "sha256": digest}
        if self.caption is not None:
            row["caption"] = self.caption
        if target is not None:  # a disabled run keeps no files: the row says what would have been stored
            row["path"] = relative
            row["size"] = target.stat().st_size
        newest = {**row, "key": key, "step": run.step}
        _latest.setdefault(run, {}).update({self.kind: newest, None: newest})
        return row

    def __repr__(self) -> str:
        return f"<{type(self).__name__} caption={self.caption!r}>"


def put_media(
    run: Run, folder: str, key: str, content: bytes | Path, fmt: str
) -> tuple[str, str, Path | None]:
    """Store ``content`` as ``files/media/<folder>/<key>_<step>_<hash>.<fmt>`` in the run: its path in the
    run, its sha256, and the file written (None for a disabled run, which keeps no files)."""
    digest = sha256_of(content)
    relative = f"{MEDIA_DIR}/{folder}/{safe_name(key)}_{run.step}_{digest[:8]}.{fmt}"
    return relative, digest, run.put_file(relative, content)


def safe_name(key: str) -> str:
    """A metric key as part of a file name: anything but letters, digits, ``_``, ``.`` and ``-`` as ``_``."""
    return _UNSAFE.sub("_", key)


def sha256_of(content: bytes | Path) -> str:
    digest = hashlib.sha256()
    if isinstance(content, Path):
        with content.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(content)
    return digest.hexdigest()


def existing_file(cls: str, data: Any, formats: tuple[str, ...]) -> tuple[Path, str]:
    path = Path(os.fspath(data))
    if not path.is_file():
        raise UsageError(f"{cls}({str(path)!r}): no such file.")
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in formats:
        raise UsageError(
            f"{cls}({str(path)!r}): the format must be one of {', '.join(formats)}, not {fmt!r}."
        )
    return path, fmt


def as_uint8(cls: str, array: Any) -> Any:
    """Pixels as uint8. Integers are 0..255. Floats are 0..255 as the reference documents, except an array
    whose values all lie in 0..1, taken as 0..1 (the reference would store it black); NaN is 0."""
    import numpy as np

    if hasattr(array, "detach"):  # a torch tensor, wherever it lives
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array, nan=0.0, posinf=255.0, neginf=0.0)
        if array.size and array.min() >= 0.0 and array.max() <= 1.0:
            array = array * 255
        return np.clip(array, 0.0, 255.0).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return np.clip(array.astype(np.int64) * (255 if array.dtype == np.bool_ else 1), 0, 255).astype(
            np.uint8
        )
    raise UsageError(f"{cls}: pixel values must be numbers, got an array of {array.dtype}.")


def latest_media(run: Run | str | os.PathLike[str], kind: str | None = None) -> dict[str, Any] | None:
    """The newest media row of a run (``kind``: ``"video"``, ``"image"`` or None for any), or None.

    ``run`` is a live ``Run`` (answered from memory) or a run directory (its history is read). The row is
    the one stored in the history plus ``key`` and ``step``; its ``path`` is relative to the run directory.
    """
    if not isinstance(run, (str, os.PathLike)):
        newest = _latest.get(run, {}).get(kind)
        if newest is not None or run.run_dir is None or not run.resumed:
            return newest  # a live run's history is not read back: the widget asks often
        run = run.run_dir  # a resumed run: its media were logged by an earlier process
    from tracker_jupyter import store

    found = None
    for history_row in store.iter_history(Path(run) / store.HISTORY):
        for key, value in history_row.items():
            media_type = value.get("_type") if isinstance(value, dict) else None
            if media_type in ("video", "image") and kind in (None, media_type):
                found = {**value, "key": key, "step": history_row.get("_step")}
    return found
