"""Media kept as documents: ``Html`` (a page), ``Plotly`` (a figure's JSON), ``Object3D`` (a point cloud or
a 3-d model file)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.media.base import Media, existing_file

MODEL_FORMATS = ("obj", "gltf", "glb", "babylon", "stl", "pts.json")
MAX_POINTS = 1_000_000  # points of a logged point cloud: past that, subsample it


class Html(Media):
    """An HTML page for ``run.log()``: a string of HTML, an open text file, or the path of an .html file.

    ``inject`` (default True) makes a page that has a ``<head>`` declare UTF-8 (the reference injects its
    hosted stylesheet there; nothing remote is added here). The page is otherwise stored as given: whoever
    shows it decides how to sandbox it.
    """

    kind = "html"

    def __init__(self, data: Any, inject: bool = True, data_is_not_path: bool = False) -> None:
        super().__init__(None)
        if hasattr(data, "read"):
            data = data.read()
        if isinstance(data, (str, os.PathLike)) and not data_is_not_path and _is_html_path(data):
            path, _ = existing_file("Html", data, ("html", "htm"))
            data = path.read_text(encoding="utf-8")
        if not isinstance(data, str):
            raise UsageError(
                f"Html() takes a string of HTML, a text file or an .html path, got {type(data).__name__}."
            )
        if inject and "<head>" in data:
            data = data.replace("<head>", '<head><meta charset="utf-8">', 1)
        self.html = data

    def _payload(self) -> tuple[bytes | Path, str, dict[str, Any]]:
        return self.html.encode("utf-8"), "html", {}


def _is_html_path(data: str | os.PathLike[str]) -> bool:
    text = os.fspath(data)
    return "<" not in text and text.lower().endswith((".html", ".htm"))


class Plotly(Media):
    """A plotly figure for ``run.log()``, stored as its JSON (``figure.to_json()``), which plotly.js draws.

    A matplotlib figure is accepted too and converted with plotly's ``plotly.tools.mpl_to_plotly``.
    """

    kind = "plotly"

    def __init__(self, val: Any) -> None:
        super().__init__(None)
        if type(val).__module__.startswith("matplotlib") and hasattr(val, "savefig"):
            from plotly import tools

            val = tools.mpl_to_plotly(val)
        to_json = getattr(val, "to_json", None)
        if not callable(to_json) or not hasattr(val, "data"):
            raise UsageError(
                f"Plotly() takes a plotly figure (plotly.graph_objects.Figure), got {type(val).__name__}."
            )
        self.figure_json = to_json()

    def _payload(self) -> tuple[bytes | Path, str, dict[str, Any]]:
        return self.figure_json.encode("utf-8"), "plotly.json", {}


class Object3D(Media):
    """A 3-d object for ``run.log()``: a point cloud as a numpy array, or a model file.

    Parameters
    ----------
    data_or_path
        An array ``(N, 3)`` (x, y, z), ``(N, 4)`` (x, y, z, category) or ``(N, 6)`` (x, y, z, r, g, b), or
        the path of a file: obj, gltf, glb, babylon, stl or pts.json.
    caption
        Shown with the object.
    """

    kind = "object3D"

    def __init__(self, data_or_path: Any, caption: str | None = None) -> None:
        super().__init__(caption)
        self._file: Path | None = None
        if isinstance(data_or_path, (str, os.PathLike)):
            name = os.fspath(data_or_path).lower()
            fmt = "pts.json" if name.endswith(".pts.json") else name.rsplit(".", 1)[-1]
            if fmt not in MODEL_FORMATS:
                raise UsageError(f"Object3D({name!r}): the format must be one of {', '.join(MODEL_FORMATS)}.")
            self._file = Path(os.fspath(data_or_path))
            if not self._file.is_file():
                raise UsageError(f"Object3D({name!r}): no such file.")
            self._format = fmt
            return
        self._format = "pts.json"
        self._points = _points(data_or_path)

    def _payload(self) -> tuple[bytes | Path, str, dict[str, Any]]:
        if self._file is not None:
            return self._file, self._format, {}
        return json.dumps(self._points).encode("utf-8"), "pts.json", {"points": len(self._points)}


def _points(data: Any) -> list[list[float]]:
    import numpy as np

    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    try:
        points = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"Object3D(): points must be numbers ({exc}).") from None
    if points.ndim != 2 or points.shape[1] not in (3, 4, 6):
        raise UsageError(f"Object3D(): points must be (N, 3), (N, 4) or (N, 6), got shape {points.shape}.")
    if points.shape[0] > MAX_POINTS:
        raise UsageError(
            f"Object3D(): {points.shape[0]:,} points; at most {MAX_POINTS:,} are stored. Subsample them "
            f"(points[:: {points.shape[0] // MAX_POINTS + 1}])."
        )
    if not np.isfinite(points).all():
        raise UsageError("Object3D(): points must be finite (no NaN or infinities).")
    return points.tolist()
