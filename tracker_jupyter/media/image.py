"""``Image``: numpy arrays, PIL images, matplotlib figures and image files, stored as PNG (files keep
their own format)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter.core.values import to_json
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.media.base import IMAGE_FORMATS, Media, as_uint8, existing_file, put_media

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run


class Image(Media):
    """An image for ``run.log()`` (the reference's ``wandb.Image``), stored as PNG by default.

    Parameters
    ----------
    data_or_path
        A numpy array ``(H, W)`` or ``(H, W, 1|3|4)``, a torch tensor ``(C, H, W)`` or ``(H, W)``, a
        ``PIL.Image.Image``, a matplotlib ``Figure``, or the path of an image file (kept as it is). Pixel
        values: integers 0..255; floats 0..255 as the reference documents, or 0..1 when all of them are.
    mode
        A PIL mode to convert to (``"L"``, ``"RGB"``, ``"RGBA"``).
    caption
        Shown under the image.
    grouping, classes
        Kept with the image: ``classes`` as ``[{"id": 0, "name": "cat"}, ...]`` (or names).
    boxes
        ``{"predictions": {"box_data": [{"position": {"minX": ..}, "class_id": 1, ...}], "class_labels":
        {1: "cat"}}}``: kept with the image, as the reference takes them.
    masks
        ``{"predictions": {"mask_data": array (H, W) of class ids, "class_labels": {...}}}`` (or
        ``{"path": png}``): each mask is stored as a PNG of its own beside the image.
    file_type
        ``"png"`` (default), ``"jpg"``/``"jpeg"`` or ``"bmp"`` for arrays and images.
    """

    kind = "image"

    def __init__(
        self,
        data_or_path: Any,
        mode: str | None = None,
        caption: str | None = None,
        grouping: int | None = None,
        classes: Any = None,
        boxes: dict[str, Any] | None = None,
        masks: dict[str, Any] | None = None,
        file_type: str | None = None,
    ) -> None:
        super().__init__(caption)
        self._file: Path | None = None
        self._bytes: bytes
        self._extra: dict[str, Any] = {}
        if grouping is not None:
            self._extra["grouping"] = grouping
        if classes is not None:
            self._extra["classes"] = _classes(classes)
        if boxes is not None:
            self._extra["boxes"] = _boxes(boxes)
        self._masks = _masks(masks) if masks is not None else {}
        if isinstance(data_or_path, (str, os.PathLike)):
            self._file, self._format = existing_file("Image", data_or_path, IMAGE_FORMATS)
            _check_size(self._file.stat().st_size, f"the file {self._file}")
            from PIL import Image as PILImage

            with PILImage.open(self._file) as opened:
                self.width, self.height = opened.size
            return
        fmt = (file_type or "png").lower()
        if fmt not in ("png", "jpg", "jpeg", "bmp"):
            raise UsageError(f"Image(file_type=...) must be png, jpg, jpeg or bmp, got {file_type!r}.")
        pil = _to_pil(data_or_path)
        _check_size(pil.width * pil.height * len(pil.getbands()), f"{pil.width}×{pil.height} pixels")
        if mode is not None:
            pil = pil.convert(mode)
        if fmt in ("jpg", "jpeg") and pil.mode not in ("RGB", "L"):
            pil = pil.convert("RGB")  # JPEG has no alpha
        self._format = "jpg" if fmt == "jpeg" else fmt
        self.width, self.height = pil.size
        buffer = io.BytesIO()
        pil.save(buffer, format={"jpg": "JPEG", "png": "PNG", "bmp": "BMP"}[self._format])
        self._bytes = buffer.getvalue()

    def _payload(self) -> tuple[bytes | Path, str, dict[str, Any]]:
        content: bytes | Path = self._file if self._file is not None else self._bytes
        return content, self._format, {"width": self.width, "height": self.height, **self._extra}

    def _to_history(self, run: Run, key: str) -> dict[str, Any]:
        stored = super()._to_history(run, key)
        if self._masks:
            stored["masks"] = {
                name: {**mask, "path": _put_mask(run, f"{key}_{name}", png)}
                for name, (png, mask) in self._masks.items()
            }
        return stored


MAX_BYTES = 100 << 20  # an image's pixels (or file) at most: 100 MiB


def _check_size(size: int, what: str) -> None:
    if size > MAX_BYTES:
        raise UsageError(
            f"Image(): {what} is {size / (1 << 20):.0f} MiB; an image may have at most {MAX_BYTES >> 20} MiB. "
            "Resize it (PIL's Image.thumbnail) or log a crop; to keep the full file, run.save() it."
        )


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
            f"Image() takes a numpy array, a torch tensor, a PIL image, a matplotlib figure or a file path, got "
            f"{type(data).__name__}."
        )
    if hasattr(data, "permute") and getattr(data, "ndim", 0) == 3 and data.shape[0] in (1, 3, 4):
        data = data.permute(1, 2, 0)  # torch's (C, H, W)
    array = as_uint8("Image", data)
    if array.ndim > 3:
        array = array.squeeze()
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise UsageError(
            f"Image(): an array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (a tensor (C, H, W)), got "
            f"{array.shape}."
        )
    return PILImage.fromarray(array)


def _classes(classes: Any) -> list[dict[str, Any]]:
    if hasattr(classes, "_class_set"):  # the reference's Classes object
        classes = classes._class_set
    out = []
    for index, item in enumerate(classes):
        if isinstance(item, str):
            out.append({"id": index, "name": item})
        elif isinstance(item, dict) and "id" in item:
            out.append({"id": item["id"], "name": str(item.get("name", item["id"]))})
        else:
            raise UsageError(
                f"Image(classes=...): each class is a name or {{'id': .., 'name': ..}}, got {item!r}."
            )
    return out


def _boxes(boxes: Any) -> dict[str, Any]:
    if not isinstance(boxes, dict):
        raise UsageError(
            "Image(boxes=...) must be a dict: {'predictions': {'box_data': [...], 'class_labels': {...}}}."
        )
    out = {}
    for name, layer in boxes.items():
        if not isinstance(layer, dict) or not isinstance(layer.get("box_data"), list):
            raise UsageError(f"Image(boxes=...): layer {name!r} needs a 'box_data' list of boxes.")
        for box in layer["box_data"]:
            if not isinstance(box, dict) or not isinstance(box.get("position"), dict):
                raise UsageError(
                    f"Image(boxes=...): each box of {name!r} needs a 'position' dict, got {box!r}."
                )
        labels = {str(k): str(v) for k, v in (layer.get("class_labels") or {}).items()}
        out[str(name)] = {"box_data": to_json(layer["box_data"]), "class_labels": labels}
    return out


def _masks(masks: Any) -> dict[str, tuple[bytes, dict[str, Any]]]:
    if not isinstance(masks, dict):
        raise UsageError(
            "Image(masks=...) must be a dict: {'predictions': {'mask_data': array, 'class_labels': {...}}}."
        )
    from PIL import Image as PILImage

    out = {}
    for name, layer in masks.items():
        if not isinstance(layer, dict) or ("mask_data" not in layer and "path" not in layer):
            raise UsageError(
                f"Image(masks=...): layer {name!r} needs 'mask_data' (an array of class ids) or 'path'."
            )
        labels = {str(k): str(v) for k, v in (layer.get("class_labels") or {}).items()}
        if "path" in layer:
            path, _ = existing_file("Image mask", layer["path"], ("png",))
            png = path.read_bytes()
        else:
            import numpy as np

            data = layer["mask_data"]
            ids = np.asarray(data.detach().cpu().numpy() if hasattr(data, "detach") else data)
            if (
                ids.ndim != 2
                or not np.issubdtype(ids.dtype, np.integer)
                or ids.min(initial=0) < 0
                or ids.max(initial=0) > 255
            ):
                raise UsageError(
                    f"Image(masks=...): {name!r} mask_data must be a 2-d array of class ids 0..255."
                )
            buffer = io.BytesIO()
            PILImage.fromarray(ids.astype(np.uint8)).save(buffer, format="PNG")
            png = buffer.getvalue()
        out[str(name)] = (png, {"class_labels": labels})
    return out


def _put_mask(run: Run, key: str, png: bytes) -> str | None:
    relative, _, target = put_media(run, "images/masks", key, png, "png")
    return relative if target is not None else None
