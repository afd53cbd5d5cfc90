"""The local run store: the on-disk format, the background writer, and the readers.

Layout under the store root (``init(dir=...)``, default ``./tracker``)::

    <root>/<project>/<run_id>/
        run.json        metadata: names, tags, state, exit code, git, lineage (replaced atomically)
        config.json     the run's config (replaced atomically)
        summary.json    the run's summary (replaced atomically)
        history.jsonl   append-only; each line a committed row (a JSON object with ``_step`` and
                        ``_timestamp``) or a block of rows (a JSON array of them) written at once
        history.rewound-N.jsonl   rows set aside by ``resume_from`` (kept, never read as history)
        lock            held (``flock``) by the process that has the run open
        files/          files saved with ``run.save()``
        code/           the program, git diff, notebook copies (``save_code``)

Why it is crash-safe: rows only ever get appended, a reader ignores a torn last line, and every other file
is written to a temporary name and renamed over the old one. The writer thread appends at least every
``flush_interval`` seconds, so after a ``kill -9`` everything older than that is readable. Whether a run is
still alive is not a flag the dead process would have had to clear: it is the ``flock`` on ``lock``, which
the kernel drops when the process dies, so an unfinished run with a free lock reads as ``crashed``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .exceptions import UsageError

HISTORY = "history.jsonl"
META = "run.json"
CONFIG = "config.json"
SUMMARY = "summary.json"
LOCK = "lock"

DEFAULT_FLUSH_INTERVAL = 0.5
# Rows waiting for the writer before log() pauses for it: bounds memory in a tight loop (about 10 MB).
DEFAULT_MAX_PENDING_ROWS = 20_000

FINAL_STATES = ("finished", "failed")

try:  # The C encoder is about twice as fast as json.dumps per row; fall back where it does not exist.
    from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
    from json.encoder import encode_basestring_ascii as _encode_str
except ImportError:  # pragma: no cover - other Python implementations
    _c_make_encoder = None


def _json_default(value: Any) -> Any:
    """Turn what json cannot encode into what it can: numpy/torch scalars, arrays, paths, sets."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "size", 1) == 1:
        return item()
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def _make_encoder() -> Callable[[Any], str]:
    if _c_make_encoder is None:  # pragma: no cover
        return json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
    encode = _c_make_encoder(None, _json_default, _encode_str, None, ":", ",", False, False, True)

    def encode_value(value: Any) -> str:
        return "".join(encode(value, 0))

    return encode_value


_encode = _make_encoder()
# One history line holds a block of rows (a JSON array) written in one go, or a single row (an object).
# A block is encoded in one call of the C encoder: a fifth cheaper per row than one call a row, and the
# writer thread's time is what a tight logging loop shares the GIL with.
BLOCK_ROWS = 4096


def encode_rows(rows: list[dict[str, Any]]) -> str:
    """History lines for ``rows``, each a block of at most ``BLOCK_ROWS``, with the final newline."""
    if len(rows) == 1:
        return _encode(rows[0]) + "\n"
    return "".join(_encode(rows[i : i + BLOCK_ROWS]) + "\n" for i in range(0, len(rows), BLOCK_ROWS))


def rows_in_line(line: bytes) -> list[dict[str, Any]]:
    """The rows of one complete history line (a row or a block); an unreadable line has none."""
    try:
        value = json.loads(line)
    except ValueError:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [row for row in value if isinstance(row, dict)]
    return []


def dumps(value: Any) -> str:
    """JSON text as the store writes it (NaN and infinities kept, numpy scalars turned into numbers)."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def write_json_atomic(path: Path, value: Any, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``value`` as JSON so that a reader sees the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(value, fh, default=_json_default, indent=1, sort_keys=False)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except ValueError:
        # Only a file written by something other than write_json_atomic can be half-written.
        return default


# ----------------------------------------------------------------------------------------------- paths

_FORBIDDEN = set("/\\#?%:")


def check_name(kind: str, value: str, *, max_len: int) -> str:
    """Refuse names that cannot be a single path component (ids and projects become directory names)."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"{kind} must be a non-empty string, got {value!r}.")
    bad = sorted(set(value) & _FORBIDDEN)
    if bad:
        raise UsageError(
            f"{kind} {value!r} contains {' '.join(bad)}; the characters / \\ # ? % : are not allowed. "
            f"Pick another {kind}, without them."
        )
    if value in (".", "..") or any(ord(c) < 32 for c in value) or value != value.strip():
        raise UsageError(
            f"{kind} {value!r} is not usable as a name: no control characters, no leading or trailing "
            "spaces, and not '.' or '..'."
        )
    if len(value) > max_len:
        raise UsageError(f"{kind} {value[:20]!r}... is {len(value)} characters long; at most {max_len}.")
    return value


def run_path(root: Path, project: str, run_id: str) -> Path:
    path = root / project / run_id
    # check_name already rules out separators; this is the belt to those braces.
    if Path(os.path.abspath(path)).parent.parent != Path(os.path.abspath(root)):
        raise UsageError(f"project {project!r} / id {run_id!r} would leave the store root {root}.")
    return path


# ------------------------------------------------------------------------------------------------ lock


class RunLock:
    """An exclusive ``flock`` on ``<run>/lock`` held while a process has the run open."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def is_locked(run_dir: Path) -> bool:
    """True while some process (this one included) holds the run open."""
    import fcntl

    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def run_state(run_dir: Path, meta: dict[str, Any] | None = None) -> str:
    """``running``, ``finished``, ``failed`` or ``crashed``, derived from the store alone."""
    if meta is None:
        meta = read_json(run_dir / META, {}) or {}
    state = meta.get("state")
    if state in FINAL_STATES:
        return str(state)
    return "running" if is_locked(run_dir) else "crashed"


# --------------------------------------------------------------------------------------------- history


def iter_history(path: Path, end: int | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a history file in order (only those within its first ``end`` bytes, when given).

    A torn or unreadable line (a crash mid-write) is skipped.
    """
    for rows, _ in iter_lines(path, 0, end):
        yield from rows


def iter_lines(
    path: Path, offset: int = 0, end: int | None = None
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """``(rows, offset after the line)`` for each complete line from byte ``offset`` (up to ``end``)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        fh.seek(offset)
        position = offset
        for line in fh:
            position += len(line)
            if not line.endswith(b"\n") or (end is not None and position > end):
                return  # torn tail (the process died while writing it), or past ``end``
            yield rows_in_line(line), position


def mend_torn_tail(path: Path) -> None:
    """Make sure appending starts on a line of its own after a writer was killed mid-write.

    A last line without its newline is either complete JSON (the kill came just before the newline: it gets
    its newline) or a torn record (cut off, it was never readable anyway).
    """
    try:
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            start = size
            while True:
                start = max(0, start - (1 << 20))
                fh.seek(start)
                newline = fh.read(size - start).rfind(b"\n")
                if newline >= 0 or start == 0:
                    break
            line_start = start + newline + 1 if newline >= 0 else 0
            fh.seek(line_start)
            try:
                json.loads(fh.read())
            except ValueError:
                fh.truncate(line_start)
            else:
                fh.write(b"\n")
    except FileNotFoundError:
        return


def count_rows(path: Path, offset: int = 0) -> int:
    """How many rows the complete lines after byte ``offset`` hold, without parsing them.

    Every row has exactly one ``"_step":`` and that text cannot occur inside a JSON string (its quotes
    would be escaped there), so counting it counts rows.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return 0
    return data[: data.rfind(b"\n") + 1].count(b'"_step":')


def last_row(path: Path, end: int | None = None) -> dict[str, Any] | None:
    """The last complete row of a history file (within its first ``end`` bytes), reading only its tail."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None
    with fh:
        end = fh.seek(0, os.SEEK_END) if end is None else end
        chunk = 1 << 16
        while True:
            start = max(0, end - chunk)
            fh.seek(start)
            lines = fh.read(end - start).split(b"\n")
            # lines[-1] is the torn tail or b""; lines[0] may be cut unless we read from the start.
            candidates = lines[:-1] if start == 0 else lines[1:-1]
            for line in reversed(candidates):
                rows = rows_in_line(line)
                if rows:
                    return rows[-1]
            if start == 0:
                return None
            chunk *= 4


def summarize(rows: Iterator[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """Last value of every key over ``rows`` and the step after the last row."""
    summary: dict[str, Any] = {}
    next_step = 0
    for row in rows:
        next_step = int(row.get("_step", next_step)) + 1
        summary.update((k, v) for k, v in row.items() if not k.startswith("_"))
    return summary, next_step


# ---------------------------------------------------------------------------------------------- writer


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
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_pending_rows: int = DEFAULT_MAX_PENDING_ROWS,
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
        self._warned = False
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
            print(
                f"tracker: {len(self._retry)} rows of run {self.dir.name} could not be written to {self.dir}: "
                f"{self.error}. Free space or fix permissions there; the rows are lost when this process exits.",
                file=sys.stderr,
            )
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
        if not self._warned:
            self._warned = True
            print(f"tracker: {message}", file=sys.stderr)

    def append_rows_now(self, rows: list[dict[str, Any]]) -> None:
        """Append rows synchronously (fork and resume copy history this way before logging starts)."""
        with self._io_lock:
            if rows:
                self._history.write(encode_rows(rows))
                self._history.flush()


# ----------------------------------------------------------------------------------- rewind and fork


def check_step(run_dir: Path, step: int, where: str = "") -> None:
    """Refuse a step past the run's last one; ``where`` starts the message (the argument that named it)."""
    last = last_row(run_dir / HISTORY)
    last_step = int(last["_step"]) if last and "_step" in last else -1
    if step > last_step:
        has = (
            f"its last step is {last_step}. Pick a step from 0 to {last_step}."
            if last_step >= 0
            else "it has logged no steps yet."
        )
        raise UsageError(f"{where}run {run_dir.name} has no step {step}: {has}")


def history_until(run_dir: Path, step: int) -> list[dict[str, Any]]:
    """The rows of a run up to and including ``step``; a step past the run's last one is an error."""
    check_step(run_dir, step)
    return [row for row in iter_history(run_dir / HISTORY) if row.get("_step", 0) <= step]


def rewind_history(run_dir: Path, step: int) -> str:
    """Set aside the rows after ``step``: they move to ``history.rewound-N.jsonl``, the rest stay.

    Crash-safe in every order: the kept rows are written and synced first, the old file is hard-linked
    to its archive name, and only then renamed over; at any moment ``history.jsonl`` is whole.
    """
    rows = history_until(run_dir, step)
    history = run_dir / HISTORY
    n = 1
    while (run_dir / f"history.rewound-{n}.jsonl").exists():
        n += 1
    archive = run_dir / f"history.rewound-{n}.jsonl"
    tmp = run_dir / f".{HISTORY}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        if rows:
            fh.write(encode_rows(rows))
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(history, archive)
    except OSError:
        import shutil

        shutil.copy2(history, archive)
    os.replace(tmp, history)
    summary, _ = summarize(iter(rows))
    write_json_atomic(run_dir / SUMMARY, summary, fsync=True)
    return archive.name
