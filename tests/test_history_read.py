"""Reading ``history.jsonl`` fast (orjson) and exactly: ints past 64 bits, NaN, torn tails and bad lines,
across the reader's block boundaries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tracker_jupyter.store import history


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize("block", [7, 64, 1 << 22])  # blocks smaller than a line, a few lines, the file
def test_lines_read_exactly_whatever_the_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int):
    monkeypatch.setattr(history, "_READ_BLOCK", block)
    path = tmp_path / "history.jsonl"
    rows = [
        {"_step": 0, "x": 0.5},
        {"_step": 1, "big": 2**70, "neg": -(2**63) - 1},  # orjson alone would make floats of these
        {"_step": 2, "s": "1234567890123456789012"},  # 19 digits in a string: read exactly too
        {"_step": 3, "nan": float("nan"), "inf": float("inf")},
    ]
    lines = [json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in rows]
    block_line = json.dumps([{"_step": 4, "y": 1}, {"_step": 5, "y": 2}]).encode() + b"\n"
    _write(
        path, [*lines[:2], b"not json\n", *lines[2:], b'{"_step": "7"}\n', block_line, b'{"_step": 6, "tor']
    )
    bad: list[int] = []
    got = list(history.iter_history(path, bad=bad))
    assert [row["_step"] for row in got] == [0, 1, 2, 3, 4, 5]  # the torn tail is not a row
    assert got[1]["big"] == 2**70 and type(got[1]["big"]) is int and got[1]["neg"] == -(2**63) - 1
    assert got[2]["s"] == "1234567890123456789012"
    assert math.isnan(got[3]["nan"]) and got[3]["inf"] == math.inf
    assert bad == [3, 6]  # the garbage line and the line whose _step is not an int, by number


def test_offsets_and_end_bound_the_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(history, "_READ_BLOCK", 10)
    path = tmp_path / "history.jsonl"
    lines = [json.dumps({"_step": i}).encode() + b"\n" for i in range(5)]
    _write(path, [*lines, b"\0" * 100])  # the zeros of an open writer's chunk
    positions = [pos for _, pos in history.iter_lines(path)]
    assert positions == [sum(map(len, lines[: i + 1])) for i in range(5)]
    after_two = positions[1]
    assert [rows[0]["_step"] for rows, _ in history.iter_lines(path, after_two)] == [2, 3, 4]
    assert [row["_step"] for row in history.iter_history(path, end=positions[2])] == [0, 1, 2]
