"""Console capture (``console="wrap"``): ``sys.stdout`` and ``sys.stderr`` pass everything on unchanged
and also hand it to the run's ``files/output.log`` (``store.console``).

The user's terminal or notebook shows exactly what it would; in a Jupyter kernel the streams are the
kernel's, so a cell's prints reach the log once, as they reach the cell. Output written below Python (a C
library, a subprocess writing to the inherited file descriptor) is not seen by a wrap.
"""

from __future__ import annotations

import sys
from typing import Any


class TeeStream:
    """A text stream that writes to ``wrapped`` and to ``log``; everything else is ``wrapped``'s."""

    def __init__(self, wrapped: Any, log: Any) -> None:
        self._wrapped = wrapped
        self._log = log
        self.active = True

    def write(self, text: str) -> int:
        written = self._wrapped.write(text)
        if self.active and isinstance(text, str):
            try:
                self._log.write(text)
            except Exception:  # the log never breaks a print
                self.active = False
        return written  # type: ignore[no-any-return]

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class ConsoleCapture:
    """The two tees of one run, installed by ``start`` and taken out by ``stop``."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.tees: dict[str, TeeStream] = {}

    def start(self) -> None:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is None:  # pythonw, some services: nothing to wrap
                continue
            tee = TeeStream(stream, self.log)
            self.tees[name] = tee
            setattr(sys, name, tee)

    def stop(self, *_: Any) -> None:
        """Put the streams back; a tee that something else wrapped since just stops copying."""
        for name, tee in self.tees.items():
            tee.active = False
            if getattr(sys, name) is tee:
                setattr(sys, name, tee._wrapped)
        self.tees.clear()
