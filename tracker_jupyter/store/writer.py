"""``RunWriter``: the background thread that owns an open run directory's writes."""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracker_jupyter.core.report import Once, log
from tracker_jupyter.settings import DEFAULTS
from tracker_jupyter.store.files import copy_matching, put_file, write_json_atomic
from tracker_jupyter.store.history import encode_rows
from tracker_jupyter.store.rundir import CONFIG, HISTORY, META, SUMMARY, RunLock


class RunWriter:
    """Owns one open run directory: appends rows and rewrites metadata from a background thread.

    ``enqueue`` is the only thing the logging thread calls per row; it appends to a deque and returns.
    Everything that touches the disk runs in the writer thread (and in ``close``).
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        meta: dict[str, Any],
        config: Callable[[], dict[str, Any]],
        summary: Callable[[], dict[str, Any]],
        lock: RunLock,
        flush_interval: float = DEFAULTS["flush_interval"],
        max_pending_rows: int = DEFAULTS["max_pending_rows"],
        startup: Callable[[RunWriter], None] | None = None,
    ) -> None:
        self.dir = run_dir
        self.meta = meta
        self._config = config
        self._summary = summary
        self._lock = lock
        self.flush_interval = flush_interval
        self.max_pending_rows = max_pending_rows
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self.enqueue = self._queue.append
        self.pending = self._queue.__len__
        self._wake = threading.Event()
        self._room = threading.Event()  # set by the writer after each drain, for wait_for_room()
        self._closing = False
        self._dirty_meta = True
        self._dirty_config = True
        self._dirty_summary = True
        self._listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self._retry: list[dict[str, Any]] = []
        self.rows_written = 0
        self.error: BaseException | None = None
        self._said = Once()
        self._io_lock = threading.Lock()
        self._history = open(run_dir / HISTORY, "a", encoding="utf-8")
        self._write()  # the run is visible to readers (and to other processes) as soon as init() returns
        self._thread = threading.Thread(target=self._loop, name=f"tracker-writer-{run_dir.name}", daemon=True)
        self._thread.start()
        # git and code capture may take seconds: beside the writer, so rows still reach disk every flush_interval
        self._startup_thread: threading.Thread | None = None
        if startup is not None:
            self._startup_thread = threading.Thread(
                target=self._run_startup, args=(startup,), name=f"tracker-startup-{run_dir.name}", daemon=True
            )
            self._startup_thread.start()

    # ----- called from the logging thread
    def mark_meta(self) -> None:
        self._dirty_meta = True

    def mark_config(self) -> None:
        self._dirty_config = True

    def mark_summary(self) -> None:
        self._dirty_summary = True

    def subscribe(self, listener: Callable[[list[dict[str, Any]]], None]) -> None:
        """Call ``listener(rows)`` from the writer thread after each batch reaches the disk."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[list[dict[str, Any]]], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def wait_for_room(self) -> None:
        """Pause the logging thread until the writer has caught up (only in a loop faster than the disk)."""
        low = self.max_pending_rows // 2
        while len(self._queue) > low and self._thread.is_alive():
            # Block on an event, not a polling sleep: a poller would keep asking for the GIL and
            # interrupt the writer every switch interval.
            self._room.clear()
            self._wake.set()
            self._room.wait(0.05)

    def flush(self) -> None:
        """Write everything queued so far, from the calling thread."""
        self._write()

    def close(self, *, fsync: bool = True) -> None:
        """Drain, write final metadata, fsync, release the lock. Safe to call twice."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        self._thread.join()
        if self._startup_thread is not None:
            self._startup_thread.join()  # its git and code information belongs in the final metadata
        self._write(fsync=fsync)
        if self._retry:
            log(
                "%d rows of run %s could not be written to %s: %s. Free space or fix permissions there; the "
                "rows are lost when this process exits.",
                len(self._retry), self.dir.name, self.dir, self.error,
            )  # fmt: skip
        with contextlib.suppress(OSError):
            self._history.close()
        self._lock.release()

    # ----- the writer thread
    def _run_startup(self, startup: Callable[[RunWriter], None]) -> None:
        try:
            startup(self)
        except Exception as exc:
            self._report(f"could not record code/git information: {exc}")
        self.mark_meta()

    def _loop(self) -> None:
        while not self._closing:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._write()
            self._room.set()

    def _write(self, *, fsync: bool = False) -> None:
        with self._io_lock:
            rows = self._retry
            self._retry = []
            queue = self._queue
            popleft = queue.popleft
            for _ in range(len(queue)):
                rows.append(popleft())
            try:
                if rows:
                    self._history.write(encode_rows(rows))
                    self._history.flush()
                if fsync:
                    os.fsync(self._history.fileno())
            except OSError as exc:
                # Disk full, directory gone...: keep the rows and try again at the next flush.
                self._retry = rows
                self._failed(exc)
                return
            self.rows_written += len(rows)
            self.error = None
            try:
                if self._dirty_config:
                    self._dirty_config = False
                    write_json_atomic(self.dir / CONFIG, self._config(), fsync=fsync)
                if rows or self._dirty_summary:
                    self._dirty_summary = False
                    write_json_atomic(self.dir / SUMMARY, self._summary(), fsync=fsync)
                if self._dirty_meta or fsync:
                    self._dirty_meta = False
                    self.meta["updated_at"] = time.time()
                    # dict() copies in one step under the GIL: other threads may add keys meanwhile.
                    write_json_atomic(self.dir / META, dict(self.meta), fsync=fsync)
            except (OSError, RuntimeError) as exc:
                self._dirty_meta = self._dirty_config = self._dirty_summary = True
                self._failed(exc)
        if rows:
            for listener in list(self._listeners):
                try:
                    listener(rows)
                except Exception as exc:
                    self._report(f"a run listener failed: {exc!r}")
                    self.unsubscribe(listener)

    def _failed(self, exc: Exception) -> None:
        self.error = exc
        self._report(f"could not write to {self.dir}: {exc}; keeping the data and retrying")

    def _report(self, message: str) -> None:
        if self._said():  # the first problem is said; the rest are counted in the final message
            log(message)

    # ----- files of the run (the Sink protocol's part for media, saved files and copies)
    def files_dir(self) -> str:
        return str(self.dir / "files")

    def put_file(self, relative: str, content: bytes | str | Path) -> Path | None:
        """Store a file at ``relative`` inside the run directory, atomically (see ``store.put_file``)."""
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise ValueError(f"{relative!r} is not a path inside the run directory {self.dir}")
        return put_file(self.dir / relative, content)

    def save_files(self, glob_str: str, base_path: str | None) -> list[str]:
        return copy_matching(glob_str, base_path, self.files_dir())

    def append_rows_now(self, rows: list[dict[str, Any]]) -> None:
        """Append rows synchronously (fork and resume copy history this way before logging starts)."""
        with self._io_lock:
            if rows:
                self._history.write(encode_rows(rows))
                self._history.flush()
