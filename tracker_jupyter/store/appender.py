"""``HistoryAppender``: each row of ``history.jsonl`` handed to the operating system before ``log()`` returns.

The caller's thread encodes the row (orjson, about 0.2 µs) and copies the line into a memory map of the
history file. Those pages belong to the kernel as soon as they are written, so a ``kill -9`` of the
process right after ``log()`` returns loses nothing; only a machine crash can, which is why ``close()``
fsyncs. The file grows in chunks allocated with ``posix_fallocate``: a full disk is an ``ENOSPC`` from
that call, never a ``SIGBUS`` from writing into a page with no block behind it.

What this means for readers: while a run is open (or after its process was killed) the file ends in the
zeros of its last chunk, which no line reader mistakes for a row (there is no newline among them);
``close()`` cuts the file to its content and ``store.history.mend_torn_tail`` does the same on resume.

When the disk refuses a chunk, lines wait in memory, in order, up to ``max_pending`` of them; beyond that
the newest are dropped and counted. Every later append first tries to write what waits, so when space
returns the file holds the same rows in the same order, each once.

Values orjson cannot write exactly (NaN and infinities, ints past 64 bits, str subclasses it refuses, dicts
with non-string keys deep in a list, structures that contain themselves) take the standard library's
encoder; what even that cannot store is kept in a documented form: ``decide_value``.
"""

from __future__ import annotations

import collections
import json
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracker_jupyter.core.rows import check_keys
from tracker_jupyter.core.values import decide_value
from tracker_jupyter.store.history import content_end

CHUNK = 1 << 20  # bytes allocated (and mapped) at a time: about 10,000 rows of a few metrics
_PAGE = mmap.ALLOCATIONGRANULARITY

Row = dict[str, Any]
_dumps: Any = None  # orjson.dumps, imported with the first appender (import tracker_jupyter stays light)
_NEWLINE = 0
_PLAIN = 0  # and no datetimes, dataclasses or subclasses of str, int, list and dict: normalize those


def _load_orjson() -> None:
    global _dumps, _NEWLINE, _PLAIN
    if _dumps is None:
        import orjson

        _NEWLINE = orjson.OPT_APPEND_NEWLINE
        _PLAIN = (
            _NEWLINE
            | orjson.OPT_PASSTHROUGH_DATETIME
            | orjson.OPT_PASSTHROUGH_DATACLASS
            | orjson.OPT_PASSTHROUGH_SUBCLASS
        )
        _dumps = orjson.dumps


class HistoryAppender:
    """Appends encoded rows to a history file through a memory map (see the module docstring).

    ``on_problem(kind, message)`` is told, from the appending thread, when the disk refuses rows
    (``"disk"``), when rows are dropped at the bound (``"dropped"``) and when a value had to be stored
    in its documented fallback form (``"value"``).
    """

    def __init__(self, path: Path, *, max_pending: int, on_problem: Callable[[str, str], None]) -> None:
        _load_orjson()
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        with open(self._fd, "rb", closefd=False) as fh:  # where the next line goes: after the content,
            end = content_end(fh, os.fstat(self._fd).st_size)  # not after zeros a killed writer left
        os.ftruncate(self._fd, end)
        self._map: mmap.mmap | None = None
        self._map_start = end  # file offset of the map's first byte
        self._map_len = 0
        self._pos = 0  # where the next line goes, from the map's first byte
        self._limit = -1
        self.pending: collections.deque[bytes] = collections.deque()
        self.max_pending = max_pending
        self.dropped = 0
        self.error: OSError | None = None
        self._on_problem = on_problem
        self._slow = json.JSONEncoder(separators=(",", ":"), allow_nan=True)
        self._closed = False
        self._grow(0, strict=True)  # a disk that has no room for the first chunk fails init() cleanly

    @property
    def end(self) -> int:
        """The file's content size: where the next line goes."""
        return self._map_start + self._pos

    # ----- the caller's thread
    def append_plain(self, row: Row) -> bool:
        """Encode a plain row and hand its line to the kernel; False, storing nothing, for any other row.

        Plain: string keys; strings, finite floats, ints of 64 bits, bools and lists of them. Everything
        else orjson refuses here (numpy and torch values, media, subclasses, dataclasses, datetimes, keys
        that are not strings) or shows in the line: ``null`` (None, and NaN or an infinity, which orjson
        would write as null) and a second ``{`` (a nested dict to flatten). A string holding either only
        sends its row the longer way. On a full disk the line is kept (bounded) for later."""
        try:
            line = _dumps(row, None, _PLAIN)
        except (TypeError, ValueError, OverflowError, RecursionError):
            return False
        if line.find(b"null") >= 0 or line.find(b"{", 1) >= 0:  # find: cheaper than `in` on bytes
            return False
        pos = self._pos
        stop = pos + len(line)
        if stop > self._limit:  # past the mapped chunk, or lines are waiting (the limit is then -1)
            self._append_slow(line)
            return True
        self._map[pos:stop] = line  # type: ignore[index]
        self._pos = stop
        return True

    def append(self, row: Row) -> None:
        """Encode any row and hand its line to the kernel: orjson where it writes the row exactly, else
        the standard library's encoder. A top-level key that is not a string is a ``UsageError``."""
        try:
            line = _dumps(row, None, _NEWLINE)
        except (TypeError, ValueError, OverflowError, RecursionError):
            line = self._encode_slow(row)
        else:
            if line.find(b"null") >= 0:  # orjson writes NaN and infinities as null: the stdlib keeps them
                line = self._encode_slow(row)
        self._append_slow(line)  # not the hot path: append_plain keeps its copy of the fast write

    def _append_slow(self, line: bytes) -> None:
        if self.pending or not self._put(line):
            self._hold(line)

    def _put(self, line: bytes) -> bool:
        size = len(line)
        if self._pos + size > self._map_len and not self._grow(size):
            return False
        assert self._map is not None
        self._map[self._pos : self._pos + size] = line
        self._pos += size
        return True

    def _grow(self, need: int, *, strict: bool = False) -> bool:
        """Map the next chunk (at least ``need`` bytes past the end), allocated on disk first."""
        end = self.end
        start = end - end % _PAGE
        length = max(CHUNK, end - start + need)
        length += -length % _PAGE
        try:
            os.posix_fallocate(self._fd, start, length)
            new_map = mmap.mmap(self._fd, length, offset=start)
        except OSError as exc:
            if strict:
                raise
            self._refused(exc)
            return False
        if self._map is not None:
            self._map.close()
        self._map, self._map_start, self._map_len, self._pos = new_map, start, length, end - start
        self._set_limit()
        return True

    def _set_limit(self) -> None:
        """The end past which ``append`` takes the slow path: the chunk's end, or -1 while lines wait."""
        self._limit = -1 if self.pending else self._map_len

    def _hold(self, line: bytes) -> None:
        if not self.pending or not self.retry():
            if len(self.pending) < self.max_pending:
                self.pending.append(line)
                self._limit = -1
                return
            self.dropped += 1
            if self.dropped == 1:
                self._on_problem(
                    "dropped",
                    f"{self.max_pending} rows are waiting in memory for {self.path.parent} and the disk still "
                    "refuses them; newer rows are dropped (and counted) until it takes them again",
                )
            return
        if not self._put(line):
            self.pending.append(line)
            self._limit = -1

    def retry(self) -> bool:
        """Write the lines that wait, in order; True when none is left."""
        while self.pending:
            if not self._put(self.pending[0]):
                return False
            self.pending.popleft()
        self._set_limit()
        if self.error is not None:
            self.error = None
        return True

    def _refused(self, exc: OSError) -> None:
        first = self.error is None
        self.error = exc
        if first:
            self._on_problem(
                "disk",
                f"could not write to {self.path.parent}: {exc}; up to {self.max_pending} rows are kept in memory "
                "and written, in order, when the disk takes them",
            )

    def _encode_slow(self, row: Row) -> bytes:
        """The row through the standard library's encoder; values it cannot write, in documented forms."""
        check_keys(row)
        try:
            return (self._slow.encode(row) + "\n").encode("utf-8")
        except Exception:  # whatever a value's own methods raise
            pass
        fixed = {}
        for key, value in row.items():
            try:
                self._slow.encode(value)
            except Exception:
                stored, how = decide_value(value)
                self._on_problem("value", f"log() value for {key!r} {how}")
                fixed[key] = stored
            else:
                fixed[key] = value
        return (self._slow.encode(fixed) + "\n").encode("utf-8")

    # ----- closing
    def close(self, *, fsync: bool = True) -> None:
        """Write what waits if the disk takes it, cut the file to its content, fsync, close."""
        if self._closed:
            return
        self._closed = True
        self.retry()
        if self._map is not None:
            if fsync:
                self._map.flush()
            self._map.close()
            self._map = None
        try:
            os.ftruncate(self._fd, self.end)
            if fsync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)

    def append_lines_now(self, text: str) -> None:
        """Lines encoded elsewhere (a fork's copied history), before logging starts."""
        data = text.encode("utf-8")
        if not self._put(data):
            raise OSError(f"no room in {self.path} for the copied history")
