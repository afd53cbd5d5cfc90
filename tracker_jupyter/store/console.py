"""``files/output.log``: what a run printed, as a terminal would show it, and the system metrics stream.

Console text arrives in pieces (``write()`` calls of ``sys.stdout``/``sys.stderr``). A line goes to the file
when it ends, so after a kill -9 the log holds every line printed before. A carriage return starts the
line over, as it does on a terminal: a tqdm bar that redraws itself a thousand times is kept as its last
state, one line. Colour and cursor escapes are dropped. Past ``max_bytes`` one note says the rest is not
kept.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracker_jupyter.core.values import json_default

OUTPUT_LOG = "files/output.log"
SYSTEM = "system.jsonl"
_ESCAPES = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_MAX_LINE = 1 << 20  # a "line" that never ends (a binary blob printed): cut here


class ConsoleLog:
    """The run's ``files/output.log``, appended line by line. Safe to call from any thread."""

    def __init__(self, path: Path, *, max_bytes: int, mask: Callable[[str], str] | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._mask = mask
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._written = os.fstat(self._fd).st_size  # a resumed run goes on after what it printed before
        self._line = ""
        self._restart = False  # a carriage return came: the next text replaces the line
        self._full = False
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        if not text or self._fd < 0:
            return
        text = _ESCAPES.sub("", text)
        done: list[str] = []
        with self._lock:
            pieces = text.split("\n")
            for i, piece in enumerate(pieces):
                self._take(piece)
                if i < len(pieces) - 1:  # a newline followed this piece
                    done.append(self._line + "\n")
                    self._line, self._restart = "", False
            if len(self._line) > _MAX_LINE:
                done.append(self._line + "\n")
                self._line = ""
            if done:
                self._emit("".join(done))

    def _take(self, piece: str) -> None:
        parts = piece.split("\r")
        for j, part in enumerate(parts):
            if j > 0:
                self._restart = True
            if part:
                if self._restart:
                    self._line, self._restart = part, False
                else:
                    self._line += part

    def _emit(self, text: str) -> None:
        if self._full:
            return
        if self._mask is not None:
            text = self._mask(text)
        data = text.encode("utf-8", "replace")
        if self._written + len(data) > self.max_bytes:
            room = max(0, self.max_bytes - self._written)
            kept = data[:room].rsplit(b"\n", 1)[0] + b"\n" if b"\n" in data[:room] else b""
            note = (
                f"[tracker: output.log reached {self.max_bytes:,} bytes (console_max_bytes); the rest of "
                "the output is not kept]\n"
            ).encode()
            data = kept + note
            self._full = True
        try:
            os.write(self._fd, data)
            self._written += len(data)
        except OSError:  # a full disk: the user's own output still shows; the log just stops
            self._full = True

    def close(self) -> None:
        """Write the last, unfinished line (a progress bar's final state) and close the file."""
        with self._lock:
            if self._fd < 0:
                return
            if self._line:
                self._emit(self._line + "\n")
                self._line = ""
            os.close(self._fd)
            self._fd = -1


class SystemStream:
    """``system.jsonl``: one JSON line per system metrics sample, appended with one write each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def append(self, sample: dict[str, Any]) -> None:
        line = json.dumps(sample, default=json_default, allow_nan=True) + "\n"
        with self._lock:
            if self._fd >= 0:
                try:
                    os.write(self._fd, line.encode())
                except OSError:
                    pass  # a full disk: the sample is lost, the run goes on

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def tail_lines(path: Path, lines: int = 20, *, block: int = 64 << 10) -> list[str]:
    """The last ``lines`` lines of a text file (read from its end), or [] when it is missing."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            start = max(0, size - block)
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", "replace")
    found = text.splitlines()
    if start > 0 and found:
        found = found[1:]  # the first one is cut
    return list(deque(found, maxlen=lines))


def last_sample(path: Path) -> dict[str, Any] | None:
    """The newest complete system metrics sample in ``system.jsonl``."""
    for line in reversed(tail_lines(path, 3)):
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        if isinstance(sample, dict):
            return sample
    return None
