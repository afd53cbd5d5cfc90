"""``Video``: a video file, or frames encoded as GIF (Pillow) or MP4 (imageio-ffmpeg)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.media.base import VIDEO_FORMATS, Media, as_uint8, existing_file


class Video(Media):
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
            self._file, self._format = existing_file("Video", data, VIDEO_FORMATS)
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
    array = as_uint8("Video", data)
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
