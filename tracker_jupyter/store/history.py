"""``history.jsonl``: how rows are encoded into lines, read back, counted, mended, rewound and cut."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tracker_jupyter.core.values import json_default
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.files import write_json_atomic
from tracker_jupyter.store.rundir import HISTORY, SUMMARY

try:  # The C encoder is about twice as fast as json.dumps per row; fall back where it does not exist.
    from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
    from json.encoder import encode_basestring_ascii as _encode_str
except ImportError:  # pragma: no cover - other Python implementations
    _c_make_encoder = None


def _make_encoder() -> Callable[[Any], str]:
    if _c_make_encoder is None:  # pragma: no cover
        return json.JSONEncoder(separators=(",", ":"), default=json_default).encode
    encode = _c_make_encoder(None, json_default, _encode_str, None, ":", ",", False, False, True)

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


# orjson reads an int past 64 bits as a float; such an int has 19 digits or more, and a line that has a run
# of 19 digits anywhere (a value, a key, a string) is read with the standard library instead: exact always.
# Found with translate (every digit made "0") and find: a tenth of what a regex costs over digit-heavy lines.
_DIGITS_AS_ZEROS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_RUN = b"0" * 19
_READ_BLOCK = 1 << 22  # bytes read at a time: the digit check runs over a block, not a line
_loads: Callable[[bytes], Any] | None = None


def _fast_loads() -> Callable[[bytes], Any]:
    global _loads
    if _loads is None:
        import orjson  # imported by the first reader: import tracker_jupyter stays light

        _loads = orjson.loads
    return _loads


def _long_digits(data: bytes) -> list[int]:
    """Where runs of 19 or more digits start in ``data`` (mostly nowhere)."""
    marked = data.translate(_DIGITS_AS_ZEROS)
    found = []
    at = marked.find(_LONG_RUN)
    while at >= 0:
        found.append(at)
        after = marked.find(b" ", at)
        at = -1 if after < 0 else marked.find(_LONG_RUN, after)
    return found


def rows_in_line(line: bytes, exact: bool | None = None) -> list[dict[str, Any]] | None:
    """The rows of one complete history line (a row or a block); None for a line that is not one (garbage,
    or rows without an integer ``_step``).

    Read with orjson, unless the line may hold an int past 64 bits (``exact``; checked here when None) or
    has what only the standard library reads (NaN, infinities)."""
    if exact is None:
        exact = _LONG_RUN in line.translate(_DIGITS_AS_ZEROS)
    try:
        value = json.loads(line) if exact else _fast_loads()(line)
    except ValueError:
        try:
            value = json.loads(line)
        except ValueError:
            return None
    if type(value) is dict:  # a row: the common line
        return [value] if type(value.get("_step")) is int else None
    rows = value if type(value) is list else None
    if not rows:
        return None
    for row in rows:
        if type(row) is not dict or type(row.get("_step")) is not int:
            return None
    return rows


def iter_history(
    path: Path, end: int | None = None, bad: list[int] | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of a history file in order (only those within its first ``end`` bytes, when given).

    A torn last line (a crash mid-write) is ignored; an unreadable line is skipped, and its number
    (1-based) goes into ``bad`` when given, for the reader to report.
    """
    for rows, _ in iter_lines(path, 0, end, bad):
        yield from rows


def iter_lines(
    path: Path, offset: int = 0, end: int | None = None, bad: list[int] | None = None
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """``(rows, offset after the line)`` for each complete line from byte ``offset`` (up to ``end``); an
    unreadable line gives no rows, and its number counted from ``offset`` goes into ``bad``.

    What follows the last newline is a torn line (the process died while writing it) or the zeros of an
    open writer's chunk: never a row."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        fh.seek(offset)
        position = offset
        number = 0
        tail = b""
        while True:
            data = fh.read(_READ_BLOCK)
            if not data:
                return
            data = tail + data if tail else data
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            if not cut:
                continue
            long_digits = _long_digits(data[:cut])
            next_long = 0  # the first of them not yet passed
            start = 0
            for line in data[: cut - 1].split(b"\n"):
                number += 1
                stop = start + len(line) + 1
                position += len(line) + 1
                if end is not None and position > end:
                    return
                exact = False
                while next_long < len(long_digits) and long_digits[next_long] < stop:
                    exact = True  # in this line: the earlier lines passed theirs
                    next_long += 1
                rows = rows_in_line(line, exact)
                if rows is None:
                    if bad is not None:
                        bad.append(number)
                    rows = []
                yield rows, position
                start = stop


def content_end(fh: Any, end: int) -> int:
    """Where the history's content ends within its first ``end`` bytes: before the zeros an open (or
    killed) writer's last preallocated chunk leaves at the end of the file."""
    position = end
    while position > 0:
        start = max(0, position - (1 << 20))
        fh.seek(start)
        kept = len(fh.read(position - start).rstrip(b"\0"))
        if kept:
            return start + kept
        position = start
    return 0


def content_size(path: Path) -> int:
    """The history's size without the zeros of an open writer's preallocated chunk (0 when missing)."""
    try:
        with open(path, "rb") as fh:
            return content_end(fh, fh.seek(0, os.SEEK_END))
    except FileNotFoundError:
        return 0


def mend_torn_tail(path: Path) -> None:
    """Make sure appending starts on a line of its own after a writer was killed mid-write.

    The zeros of a killed writer's last chunk are cut off. A last line without its newline is then
    either complete JSON (the kill came just before the newline: it gets its newline) or a torn record
    (cut off, it was never readable anyway).
    """
    try:
        with open(path, "rb+") as fh:
            size = content_end(fh, fh.seek(0, os.SEEK_END))
            fh.truncate(size)
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
        end = content_end(fh, fh.seek(0, os.SEEK_END) if end is None else end)
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
                    return rows[-1]  # the last readable row: a garbage line is passed over
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
