"""``FileLock``: an exclusive ``flock`` on a file, held by one process at a time, naming its holder.

The run's ``lock`` is held while a process has the run open (``RunLock``); its ``sync.lock`` for one sync
pass (by the live run, ``tracker sync`` or the background uploader), so two of them never send the same
rows; the uploader's lock makes it one per store and server. A lock dies with its process: a kill -9
leaves nothing to clean up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType


class FileLock:
    """An exclusive ``flock`` on ``path`` (created when missing); the holder's pid is written into it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (``None``: as long as it takes, ``0``: not at
        all). Returns whether it was taken."""
        import fcntl

        if self._fd is not None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.02
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                if deadline is not None and time.monotonic() + pause > deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._fd = fd
            return True

    def release(self) -> None:
        """Let go of the lock (closing the file drops the ``flock``)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def holder(self) -> int | None:
        """The pid of the process holding the lock now, or None when nobody does."""
        import fcntl

        if self._fd is not None:
            return os.getpid()
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else -1
            return None
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
