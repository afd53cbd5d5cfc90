"""Media values for ``run.log()``: ``Video`` and ``Image``.

``run.log({"gameplay": Video("episode.mp4")})`` copies the file under the run and stores a reference in the
history row instead of the pixels::

    {"_type": "video", "path": "files/media/videos/gameplay_12_1a2b3c4d.mp4", "format": "mp4",
     "sha256": "...", "size": 12345, "caption": "..."}          # caption only when given
    {"_type": "image", "path": "files/media/images/sample_3_5e6f7a8b.png", "format": "png",
     "width": 64, "height": 48, "sha256": "...", "size": 2345}

``path`` is relative to the run directory (``files/`` is what gets uploaded with the run), and the file
name holds the key, the step and a content hash, so logging the same key again never overwrites. The file
is written by ``log()`` in the caller's thread: media are rare next to scalars, and the reference in the
row must point at a complete file. ``latest_media(run)`` gives the newest one, for the dashboard.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter.exceptions import UsageError

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

__all__ = ["Image", "Video", "latest_media"]

MEDIA_DIR = "files/media"
VIDEO_FORMATS = ("mp4", "gif", "webm", "ogg")
IMAGE_FORMATS = ("png", "jpeg", "jpg", "gif", "bmp", "webp")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

# run -> its newest media row, so the live widget finds it without reading the history back
_latest: weakref.WeakKeyDictionary[Any, dict[str | None, dict[str, Any]]] = weakref.WeakKeyDictionary()


class _Media:
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
        digest = _sha256(content)
        row: dict[str, Any] = {"_type": self.kind, "path": None, "format": fmt, **extra, "sha256": digest}
        if self.caption is not None:
            row["caption"] = self.caption
        relative = f"{MEDIA_DIR}/{self.kind}s/{_UNSAFE.sub('_', key)}_{run.step}_{digest[:8]}.{fmt}"
        target = run.put_file(relative, content)
        if target is not None:  # a disabled run keeps no files: the row says what would have been stored
            row["path"] = relative
            row["size"] = target.stat().st_size
        newest = {**row, "key": key, "step": run.step}
        _latest.setdefault(run, {}).update({self.kind: newest, None: newest})
        return row

    def __repr__(self) -> str:
        return f"<{type(self).__name__} caption={self.caption!r}>"


def _sha256(content: bytes | Path) -> str:
    digest = hashlib.sha256()
    if isinstance(content, Path):
        with content.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(content)
    return digest.hexdigest()


def _existing_file(cls: str, data: Any, formats: tuple[str, ...]) -> tuple[Path, str]:
    path = Path(os.fspath(data))
    if not path.is_file():
        raise UsageError(f"{cls}({str(path)!r}): no such file.")
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in formats:
        raise UsageError(
            f"{cls}({str(path)!r}): the format must be one of {', '.join(formats)}, not {fmt!r}."
        )
    return path, fmt


def _uint8(cls: str, array: Any) -> Any:
    """Pixels as uint8: floats are taken as 0..1, integers as 0..255."""
    import numpy as np

    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return np.clip(array.astype(np.int64) * (255 if array.dtype == np.bool_ else 1), 0, 255).astype(
            np.uint8
        )
    raise UsageError(f"{cls}: pixel values must be numbers, got an array of {array.dtype}.")


# ------------------------------------------------------------------------------------------------ Image


class Image(_Media):
    """An image for ``run.log()``, stored as PNG (files keep their own format).

    Parameters
    ----------
    data
        A numpy array ``(H, W)``, ``(H, W, 1|3|4)`` (uint8 0..255, or floats 0..1), a ``PIL.Image.Image``,
        a matplotlib ``Figure``, or the path of an image file.
    caption
        Shown under the image.
    """

    kind = "image"

    def __init__(self, data: Any, caption: str | None = None) -> None:
        super().__init__(caption)
        self._file: Path | None = None
        self._png: bytes
        if isinstance(data, (str, os.PathLike)):
            self._file, self._format = _existing_file("Image", data, IMAGE_FORMATS)
            from PIL import Image as PILImage

            with PILImage.open(self._file) as opened:
                self.width, self.height = opened.size
            return
        self._format = "png"
        pil = _to_pil(data)
        self.width, self.height = pil.size
        buffer = io.BytesIO()
        pil.save(buffer, format="PNG")
        self._png = buffer.getvalue()

    def _payload(self) -> tuple[bytes | Path, str, dict[str, Any]]:
        content: bytes | Path = self._file if self._file is not None else self._png
        return content, self._format, {"width": self.width, "height": self.height}


def _to_pil(data: Any) -> Any:
    from PIL import Image as PILImage

    if isinstance(data, PILImage.Image):
        return data
    if hasattr(data, "savefig") and hasattr(data, "canvas"):  # a matplotlib Figure, without importing it
        buffer = io.BytesIO()
        data.savefig(buffer, format="png")
        buffer.seek(0)
        return PILImage.open(buffer)
    if not hasattr(data, "__array__"):
        raise UsageError(
            f"Image() takes a numpy array, a PIL image, a matplotlib figure or a file path, got "
            f"{type(data).__name__}."
        )
    array = _uint8("Image", data)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise UsageError(
            f"Image(): an array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}."
        )
    return PILImage.fromarray(array)


# ------------------------------------------------------------------------------------------------ Video


class Video(_Media):
    """A video for ``run.log()``.

    Parameters
    ----------
    data
        The path of a video file (mp4, gif, webm, ogg), or frames as a numpy array ``(T, H, W, C)`` or
        ``(T, C, H, W)`` with C in 1, 3 (uint8 0..255, or floats 0..1).
    caption
        Shown under the video.
    fps
        Frames per second, for frames.
    format
        For frames: ``"gif"`` (needs only Pillow) or ``"mp4"`` (needs ``imageio`` and ``imageio-ffmpeg``).
        Default: mp4 when those are installed, else gif.
    """

    kind = "video"

    def __init__(
        self, data: Any, caption: str | None = None, fps: float = 4, format: str | None = None
    ) -> None:
        super().__init__(caption)
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
            raise UsageError(f"Video(fps=...) must be a positive number, got {fps!r}.")
        self.fps = fps
        self._file: Path | None = None
        if isinstance(data, (str, os.PathLike)):
            if format is not None:
                raise UsageError("Video(format=...) is for frames; a file keeps its own format.")
            self._file, self._format = _existing_file("Video", data, VIDEO_FORMATS)
            return
        if not hasattr(data, "__array__"):
            raise UsageError(
                f"Video() takes a file path or a numpy array of frames, got {type(data).__name__}."
            )
        if format is None:
            format = "mp4" if _has_mp4_encoder() else "gif"
        if format not in ("gif", "mp4"):
            raise UsageError(f"Video(format=...) for frames must be 'gif' or 'mp4', got {format!r}.")
        if format == "mp4" and not _has_mp4_encoder():
            raise UsageError(
                "Video(format='mp4') needs imageio and imageio-ffmpeg: pip install imageio imageio-ffmpeg."
            )
        self._format = format
        self._frames = _frames(data)

    def _payload(self) -> tuple[bytes | Path, str, dict[str, Any]]:
        if self._file is not None:
            return self._file, self._format, {}
        frames = self._frames
        extra = {
            "fps": self.fps,
            "frames": int(frames.shape[0]),
            "width": int(frames.shape[2]),
            "height": int(frames.shape[1]),
        }
        return _encode(frames, self._format, self.fps), self._format, extra


def _frames(data: Any) -> Any:
    array = _uint8("Video", data)
    if array.ndim != 4:
        raise UsageError(
            f"Video(): frames must be a 4-d array (T, H, W, C) or (T, C, H, W), got {array.shape}."
        )
    if array.shape[-1] not in (1, 3) and array.shape[1] in (1, 3):
        array = array.transpose(0, 2, 3, 1)  # (T, C, H, W), the torch/wandb layout
    if array.shape[-1] not in (1, 3):
        raise UsageError(f"Video(): frames need 1 or 3 channels, got shape {array.shape}.")
    if array.shape[-1] == 1:
        array = array.repeat(3, axis=-1)
    return array


def _has_mp4_encoder() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("imageio", "imageio_ffmpeg"))


def _encode(frames: Any, fmt: str, fps: float) -> bytes:
    if fmt == "gif":
        from PIL import Image as PILImage

        images = [PILImage.fromarray(frame) for frame in frames]
        buffer = io.BytesIO()
        images[0].save(
            buffer, format="GIF", save_all=True, append_images=images[1:], duration=1000 / fps, loop=0
        )
        return buffer.getvalue()
    import tempfile

    import imageio.v2 as imageio

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "video.mp4")
        # even sizes and yuv420p: what browsers play; macro_block_size=1 keeps odd sizes from being resized
        writer = imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p")
        try:
            for frame in frames:
                writer.append_data(frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2])
        finally:
            writer.close()
        return Path(path).read_bytes()


# ----------------------------------------------------------------------------------------------- lookup


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
