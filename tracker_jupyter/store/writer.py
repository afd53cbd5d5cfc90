"""``RunWriter``: the sink of a stored run; the rows go to the kernel in the caller's thread (``appender``),
the metadata from a background thread."""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracker_jupyter.core.report import Once, log
from tracker_jupyter.core.values import mask_argv, mask_code, mask_secrets, secret_values
from tracker_jupyter.settings import DEFAULTS
from tracker_jupyter.store.appender import HistoryAppender
from tracker_jupyter.store.console import OUTPUT_LOG, SYSTEM, ConsoleLog, SystemStream
from tracker_jupyter.store.files import copy_matching, put_file, write_json_atomic
from tracker_jupyter.store.history import encode_rows
from tracker_jupyter.store.rundir import CONFIG, HISTORY, META, SUMMARY, RunLock


class RunWriter:
    """Owns one open run directory: the sink of a stored run.

    ``append_plain`` (or ``append``) is the only thing the logging thread calls per row: it encodes the row
    and hands its line to the kernel (``HistoryAppender``) before returning, and, only while a display
    follows the run, keeps the row for it. The writer thread rewrites the metadata, config and summary
    (atomically, at most every ``flush_interval`` seconds) and hands the followed rows to their listeners.
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
        mask_secrets: bool = True,
    ) -> None:
        self.dir = run_dir
        self._mask = mask_secrets
        self.meta = meta
        self._config = config
        self._summary = summary
        self._lock = lock
        self.flush_interval = flush_interval
        self._said = Once()
        # raises on a disk with no room for the first chunk: init() then undoes the run
        self._appender = HistoryAppender(
            run_dir / HISTORY, max_pending=max_pending_rows, on_problem=self._on_append_problem
        )
        self.append_plain: Callable[[dict[str, Any]], bool] = self._appender.append_plain
        self.append: Callable[[dict[str, Any]], None] = self._appender.append
        self._followed: collections.deque[dict[str, Any]] = collections.deque()  # rows for the listeners
        self._listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self._wake = threading.Event()
        self._closing = False
        self._dirty_meta = True
        self._dirty_config = True
        self._dirty_summary = True
        self._summarized_at = -1  # the history's end when summary.json was last written
        self.error: BaseException | None = None
        self._console: ConsoleLog | None = None
        self._system: SystemStream | None = None
        self._io_lock = threading.Lock()
        try:
            self._write(
                strict=True
            )  # the run is visible to readers (and other processes) when init() returns
        except BaseException:
            self._appender.close(fsync=False)
            raise
        self._thread = threading.Thread(target=self._loop, name=f"tracker-writer-{run_dir.name}", daemon=True)
        self._thread.start()
        # git and code capture may take seconds: beside the writer, so metadata writes go on meanwhile
        self._startup_thread: threading.Thread | None = None
        if startup is not None:
            self._startup_thread = threading.Thread(
                target=self._run_startup, args=(startup,), name=f"tracker-startup-{run_dir.name}", daemon=True
            )
            self._startup_thread.start()

    # ----- called from the logging thread
    def _append_plain_followed(self, row: dict[str, Any]) -> bool:
        if self._appender.append_plain(row):
            self._followed.append(row)
            return True
        return False

    def _append_followed(self, row: dict[str, Any]) -> None:
        self._appender.append(row)
        self._followed.append(row)

    def pending(self) -> int:
        """Rows held in memory because the disk refused them (0 while it takes them)."""
        return len(self._appender.pending)

    def mark_meta(self) -> None:
        self._dirty_meta = True

    def mark_config(self) -> None:
        self._dirty_config = True

    def mark_summary(self) -> None:
        self._dirty_summary = True

    def subscribe(self, listener: Callable[[list[dict[str, Any]]], None]) -> None:
        """Call ``listener(rows)`` from the writer thread with the rows logged since the last call."""
        self._listeners.append(listener)
        self.append_plain, self.append = self._append_plain_followed, self._append_followed

    def unsubscribe(self, listener: Callable[[list[dict[str, Any]]], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)
        if not self._listeners:
            self.append_plain, self.append = self._appender.append_plain, self._appender.append

    def flush(self) -> None:
        """Write the metadata and hand the followed rows to their listeners now, from the calling thread."""
        self._write()

    def close(self, *, fsync: bool = True) -> None:
        """Write what waits, cut and fsync the history, write the final metadata, release the lock.

        Safe to call twice."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        self._thread.join()
        if self._startup_thread is not None:
            self._startup_thread.join()  # its git and code information belongs in the final metadata
        for stream in (self._console, self._system):
            if stream is not None:
                stream.close()
        appender = self._appender
        try:
            appender.close(fsync=fsync)
        except OSError as exc:
            self._failed(exc)
        if appender.pending or appender.dropped:
            self.meta["rows_dropped"] = appender.dropped + len(appender.pending)
            log(
                "%d rows of run %s could not be written to %s (%s): %d held in memory are lost when this "
                "process exits, %d were dropped at the bound of %d. Free space or fix permissions there.",
                appender.dropped + len(appender.pending), self.dir.name, self.dir, appender.error,
                len(appender.pending), appender.dropped, appender.max_pending,
            )  # fmt: skip
        self._write(fsync=fsync)
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
            try:
                self._write()
            except Exception as exc:  # never a dead writer: say it once, try again next time
                self._report(f"could not write the run's metadata: {exc!r}")

    def _write(self, *, fsync: bool = False, strict: bool = False) -> None:
        with self._io_lock:
            followed = self._followed
            rows = [followed.popleft() for _ in range(len(followed))]
            end = self._appender.end
            try:
                if self._dirty_config:
                    self._dirty_config = False
                    config = self._config()
                    write_json_atomic(
                        self.dir / CONFIG, mask_secrets(config) if self._mask else config, fsync=fsync
                    )
                if end != self._summarized_at or self._dirty_summary:
                    self._dirty_summary = False
                    write_json_atomic(self.dir / SUMMARY, self._summary(), fsync=fsync)
                    self._summarized_at = end
                    # how much of the history summary.json covers: a resume after kill -9 adds the rest
                    self.meta["summary_through"] = end
                    self._dirty_meta = True
                if self._dirty_meta or fsync:
                    self._dirty_meta = False
                    self.meta["updated_at"] = time.time()
                    # dict() copies in one step under the GIL: other threads may add keys meanwhile.
                    write_json_atomic(self.dir / META, self._stored_meta(dict(self.meta)), fsync=fsync)
            except (OSError, RuntimeError) as exc:
                if strict:
                    raise
                self._dirty_meta = self._dirty_config = self._dirty_summary = True
                self._failed(exc)
        if rows:
            for listener in list(self._listeners):
                try:
                    listener(rows)
                except Exception as exc:
                    self._report(f"a run listener failed: {exc!r}")
                    self.unsubscribe(listener)

    def _stored_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The metadata as written: secret-looking command-line values and first config values masked."""
        if self._mask:
            if isinstance(meta.get("args"), list):
                meta["args"] = mask_argv([str(a) for a in meta["args"]])
            if isinstance(meta.get("config_first"), dict):
                meta["config_first"] = mask_secrets(meta["config_first"])
        return meta

    def _on_append_problem(self, kind: str, message: str) -> None:
        """From the logging thread: the disk refused rows, rows were dropped, or a value was stored in its
        fallback form (the last is the user's to hear about, as a warning pointing at their log())."""
        if kind == "value":
            if self._said(("value", message)):
                warnings.warn(message, UserWarning, stacklevel=5)  # the caller of log()
            return
        if kind == "dropped":
            self.meta["rows_dropped"] = True
            self.mark_meta()
        if self._said(kind):
            log(message)

    def _failed(self, exc: Exception) -> None:
        self.error = exc
        self._report(f"could not write to {self.dir}: {exc}; keeping the data and retrying")

    def _report(self, message: str) -> None:
        if self._said("report"):  # the first problem is said; the rest are counted in the final message
            log(message)

    # ----- files of the run (the Sink protocol's part for media, saved files and copies)
    def masked_code(self, text: str) -> str:
        """Saved code with the run's secrets masked (``mask_code``), unless masking is off."""
        if not self._mask:
            return text
        return mask_code(text, secret_values(self._config(), self.meta.get("args") or ()))

    def files_dir(self) -> str:
        return os.path.abspath(self.dir / "files")  # absolute, as the reference's run.dir

    # ----- the streams beside the history: console output and system metrics
    def console_log(self, max_bytes: int) -> ConsoleLog:
        """The run's ``files/output.log`` (opened on first use; closed with the run)."""
        if self._console is None:
            self._console = ConsoleLog(self.dir / OUTPUT_LOG, max_bytes=max_bytes, mask=self.masked_code)
        return self._console

    def system_stream(self) -> SystemStream:
        """The run's ``system.jsonl`` (opened on first use; closed with the run)."""
        if self._system is None:
            self._system = SystemStream(self.dir / SYSTEM)
        return self._system

    def put_file(self, relative: str, content: bytes | str | Path) -> Path | None:
        """Store a file at ``relative`` inside the run directory, atomically (see ``store.put_file``)."""
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise ValueError(f"{relative!r} is not a path inside the run directory {self.dir}")
        return put_file(self.dir / relative, content)

    def save_files(self, glob_str: str, base_path: str | None, policy: str = "live") -> list[str]:
        """Copy the matching files into ``files/`` (a file already there is taken as it is) and record each
        with its upload ``policy`` in the metadata (``saved_files``: path in the run -> policy)."""
        written = copy_matching(glob_str, base_path, self.files_dir())
        saved = dict(self.meta.get("saved_files") or {})
        for path in written:
            saved[Path(os.path.relpath(path, self.dir)).as_posix()] = policy  # files_dir is absolute
        self.meta["saved_files"] = saved
        self.mark_meta()
        return written

    def append_rows_now(self, rows: list[dict[str, Any]]) -> None:
        """Append rows before logging starts (a fork copies its source's history this way)."""
        if rows:
            self._appender.append_lines_now(encode_rows(rows))
