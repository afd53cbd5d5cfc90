"""Values for ``run.log()`` beyond numbers and strings: ``Image``, ``Video``, ``Table``, ``Histogram``.

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

from tracker_jupyter.media.audio import Audio
from tracker_jupyter.media.base import MEDIA_DIR, latest_media
from tracker_jupyter.media.documents import Html, Object3D, Plotly
from tracker_jupyter.media.histogram import Histogram
from tracker_jupyter.media.image import Image
from tracker_jupyter.media.table import Table
from tracker_jupyter.media.video import Video

__all__ = [
    "MEDIA_DIR",
    "Audio",
    "Histogram",
    "Html",
    "Image",
    "Object3D",
    "Plotly",
    "Table",
    "Video",
    "latest_media",
]
