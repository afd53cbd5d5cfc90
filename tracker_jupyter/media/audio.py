"""``Audio``: a sound file, or samples written as 16-bit PCM WAV with the standard library's ``wave``."""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.media.base import Media, existing_file

AUDIO_FORMATS = ("wav", "mp3", "ogg", "flac", "m4a")
MAX_SECONDS = 3600  # an hour of samples at most: longer recordings belong in a file (Audio(path))


class Audio(Media):
    """A sound for ``run.log()``.

    Parameters
    ----------
    data_or_path
        The path of an audio file (wav, mp3, ogg, flac, m4a), or samples: a numpy array (or list) of
        floats in -1..1 (or integers, taken as 16-bit), shaped ``(samples,)`` or ``(samples, channels)``.
    sample_rate
        Samples per second; needed for samples.
    caption
        Shown with the sound.
    """

    kind = "audio"

    def __init__(self, data_or_path: Any, sample_rate: int | None = None, caption: str | None = None) -> None:
        super().__init__(caption)
        self._file: Path | None = None
        self.sample_rate = sample_rate
        if isinstance(data_or_path, (str, os.PathLike)):
            self._file, self._format = existing_file("Audio", data_or_path, AUDIO_FORMATS)
            return
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise UsageError(
                f"Audio(samples, sample_rate=...) needs a positive int sample rate, got {sample_rate!r}."
            )
        self._format = "wav"
        self._wav, self.duration = _wav(data_or_path, sample_rate)

    def _payload(self) -> tuple[bytes | Path, str, dict[str, Any]]:
        if self._file is not None:
            return self._file, self._format, {}
        return self._wav, "wav", {"sample_rate": self.sample_rate, "duration": self.duration}


def _wav(data: Any, sample_rate: int) -> tuple[bytes, float]:
    import numpy as np

    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    try:
        samples = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"Audio(): samples must be numbers ({exc}).") from None
    if samples.ndim == 2 and samples.shape[0] <= 8 < samples.shape[1]:
        samples = samples.T  # (channels, samples), as torchaudio gives them
    if samples.ndim not in (1, 2) or samples.size == 0:
        raise UsageError(
            f"Audio(): samples must be (samples,) or (samples, channels), got shape {samples.shape}."
        )
    if samples.shape[0] > MAX_SECONDS * sample_rate:
        raise UsageError(
            f"Audio(): {samples.shape[0] / sample_rate:.0f} s of samples; at most {MAX_SECONDS} s are encoded "
            "here. Write the file yourself and log Audio(path)."
        )
    if np.issubdtype(samples.dtype, np.floating):
        pcm = (np.clip(np.nan_to_num(samples), -1.0, 1.0) * 32767).round().astype("<i2")
    elif np.issubdtype(samples.dtype, np.integer):
        pcm = np.clip(samples, -32768, 32767).astype("<i2")
    else:
        raise UsageError(f"Audio(): samples must be numbers, got an array of {samples.dtype}.")
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue(), pcm.shape[0] / sample_rate
