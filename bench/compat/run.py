"""Run each script here under real wandb (offline) and under tracker_jupyter, and compare what each stored.

    .bench-venv/bin/python bench/compat/run.py          # needs wandb, torch and scikit-learn there

For every logged key: how many rows hold it and what kind of value (a number, or the ``_type`` of a
stored value), and the summary value of every key both keep, side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPTS = ("torch_loop.py", "evaluation.py", "trainer.py")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("_type", "dict"))
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _records(path: Path) -> list[bytes]:
    """The records of a .wandb file: a 7-byte header, then 32 KiB blocks of LevelDB-log records (crc32 4,
    length 2, type 1 full / 2 first / 3 middle / 4 last, then the data); a block's tail shorter than a
    record header is padding."""
    data = path.read_bytes()[7:]
    records: list[bytes] = []
    partial = b""
    position, block = 0, 32768
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        length = int.from_bytes(data[position + 4 : position + 6], "little")
        kind = data[position + 6]
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            partial = chunk
        elif kind == 3:
            partial += chunk
        elif kind == 4:
            records.append(partial + chunk)
    return records


def _put(into: dict[str, Any], path: list[str], value: Any) -> None:
    """wandb sends a stored value's fields as nested keys (``samples`` / ``_type``): put them back together."""
    for part in path[:-1]:
        into = into.setdefault(part, {})
    into[path[-1]] = value


def _wandb_rows(root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from wandb.proto import wandb_internal_pb2

    (run_dir,) = (root / "wandb").glob("offline-run-*")
    (records,) = run_dir.glob("run-*.wandb")
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for data in _records(records):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _put(row, list(item.nested_key) or [item.key], json.loads(item.value_json))
            rows.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _put(summary, list(item.nested_key) or [item.key], json.loads(item.value_json))
    written = run_dir / "files" / "wandb-summary.json"
    if written.exists():
        summary.update(json.loads(written.read_text()))
    return rows, summary


def _our_rows(root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    sys.path.insert(0, str(HERE.parent.parent))
    import tracker_jupyter

    (record,) = tracker_jupyter.Api(root).runs("compat")
    return list(record.scan_history()), dict(record.summary)


def _profile(rows: list[dict[str, Any]]) -> dict[str, str]:
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        for key, value in row.items():
            if not key.startswith("_"):
                kinds[key][_kind(value)] += 1
    return {
        key: ", ".join(f"{n}× {kind}" for kind, n in sorted(counter.items()))
        for key, counter in kinds.items()
    }


def _short(value: Any) -> str:
    if isinstance(value, dict) and "_type" in value:
        return f"<{value['_type']}>"
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _observed(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("COMPAT ")]
    return dict(json.loads(lines[-1][len("COMPAT ") :])) if lines else {}


def main() -> None:
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    chosen = [name for name in sys.argv[1:] if name in (*SCRIPTS, "surface.py")] or [*SCRIPTS, "surface.py"]
    for script in chosen:
        if script == "surface.py":
            _compare_surface(env)
            continue
        results = {}
        for tracker in ("wandb", "tracker_jupyter"):
            with tempfile.TemporaryDirectory() as tmp:
                done = subprocess.run(
                    [sys.executable, str(HERE / script)], env={**env, "COMPAT_TRACKER": tracker, "COMPAT_DIR": tmp,
                     "PYTHONPATH": str(HERE.parent.parent)}, capture_output=True, text=True, cwd=tmp,
                )  # fmt: skip
                if done.returncode != 0:
                    results[tracker] = None
                    print(f"{script} under {tracker} failed:\n{done.stderr[-2000:]}")
                    continue
                rows, summary = (_wandb_rows if tracker == "wandb" else _our_rows)(Path(tmp))
                results[tracker] = (_profile(rows), summary)
        print(
            f"\n### {script}\n\n| key | wandb rows | tracker_jupyter rows | wandb summary | tracker_jupyter summary |"
        )
        print("|---|---|---|---|---|")
        theirs, ours = results.get("wandb"), results.get("tracker_jupyter")
        keys = sorted(
            set((theirs or ({}, {}))[0])
            | set((ours or ({}, {}))[0])
            | set((theirs or ({}, {}))[1])
            | set((ours or ({}, {}))[1])
        )
        for key in keys:
            if key.startswith("_"):
                continue
            cells = []
            for side in (theirs, ours):
                cells.append("—" if side is None else side[0].get(key, ""))
            for side in (theirs, ours):
                cells.append("—" if side is None or key not in side[1] else _short(side[1][key]))
            print(f"| `{key}` | " + " | ".join(cells) + " |")


def _compare_surface(env: dict[str, str]) -> None:
    """surface.py under both: what each call returned (or raised), side by side."""
    seen: dict[str, dict[str, Any]] = {}
    for tracker in ("wandb", "tracker_jupyter"):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [sys.executable, str(HERE / "surface.py")], env={**env, "COMPAT_TRACKER": tracker, "COMPAT_DIR": tmp,
                 "PYTHONPATH": str(HERE.parent.parent)}, capture_output=True, text=True, cwd=tmp,
            )  # fmt: skip
            seen[tracker] = _observed(done.stdout) if done.returncode == 0 else {"(script)": "failed"}
            if done.returncode != 0:
                print(f"surface.py under {tracker} failed:\n{done.stderr[-2000:]}")
    print("\n### surface.py\n\n| call | wandb | tracker_jupyter |\n|---|---|---|")
    for key in dict.fromkeys([*seen["wandb"], *seen["tracker_jupyter"]]):
        print(f"| `{key}` | {seen['wandb'].get(key, '—')} | {seen['tracker_jupyter'].get(key, '—')} |")


if __name__ == "__main__":
    main()
