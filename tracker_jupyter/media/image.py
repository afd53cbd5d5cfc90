"""``Image``: numpy arrays, PIL images, matplotlib figures and image files, stored as PNG (files keep
their own format)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.media.base import IMAGE_FORMATS, Media, as_uint8, existing_file


class Image(Media):
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
            self._file, self._format = existing_file("Image", data, IMAGE_FORMATS)
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
    array = as_uint8("Image", data)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise UsageError(
            f"Image(): an array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}."
        )
    return PILImage.fromarray(array)
