"""``init(monitor_gym=True)``: log the videos gymnasium's ``RecordVideo`` wrapper records.

``gymnasium.wrappers.RecordVideo.stop_recording`` (gymnasium 1.x; it writes ``<video_folder>/<name>.mp4``
when an episode's recording ends, and on ``env.close()``) is patched while the run is live. Each video it
writes is logged as ``run.log({"videos": Video(path)}, commit=False)``: the file is copied under
``files/media/videos/`` and the reference joins the run's current row (the step the next ``log()`` commits),
so it sits next to the metrics of the episode it shows. ``tracker_jupyter.media.latest_media(run, "video")``
is the newest one. Wrappers created before ``init()`` are covered (the class is patched); the original
method is back at finish.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

from tracker_jupyter.integrations._patching import Patch, WhenImported, is_installed, missing_extra

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

VIDEO_KEY = "videos"
_runs: list[Any] = []  # live runs with monitor_gym; the newest receives the videos
_undo: list[Any] = []


def _log_video(path: str) -> None:
    from tracker_jupyter.media import Video

    run = _runs[-1] if _runs else None
    if run is None or run.state != "running" or not os.path.isfile(path):
        return  # no frames were recorded: RecordVideo wrote nothing
    try:
        run.log({VIDEO_KEY: Video(path)}, commit=False)
    except Exception as exc:  # the user's environment must keep running
        warnings.warn(f"tracker: monitor_gym could not log {path}: {exc!r}", RuntimeWarning, stacklevel=3)


def _patch(wrappers: Any) -> None:
    record_video = wrappers.RecordVideo
    if not hasattr(record_video, "stop_recording"):
        return  # gymnasium < 1.0: a different recorder; the extra asks for >= 1.0

    def make(original: Any) -> Any:
        def stop_recording(self: Any) -> Any:
            name = getattr(self, "_video_name", None)
            result = original(self)
            if name is not None:
                _log_video(os.path.join(self.video_folder, f"{name}.mp4"))
            return result

        return stop_recording

    _undo.append(Patch(record_video, "stop_recording", make).undo)


def start(run: Run) -> None:
    """Log ``RecordVideo`` videos to ``run`` until it finishes (see the module docstring)."""
    for package in ("gymnasium", "moviepy"):  # RecordVideo writes its mp4 files with moviepy
        if not is_installed(package):
            raise missing_extra("monitor_gym=True", "gym", package)
    if not _runs:
        _undo.append(WhenImported("gymnasium.wrappers", _patch).remove)
    _runs.append(run)
    run.on_finish(_stop)


def _stop(run: Run) -> None:
    _runs.remove(run)
    if not _runs:
        for action in reversed(_undo):
            action()
        _undo.clear()
