"""``tracker sync``: upload offline or not fully synced runs from the local store, several at once, and
``tracker sync --status``: what is still to send, per run."""

from __future__ import annotations

import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tracker_jupyter import store
from tracker_jupyter.exceptions import CommError, UsageError
from tracker_jupyter.online.credentials import credentials_for, server_url
from tracker_jupyter.online.syncer import SYNC_LOCK, SYNC_STATE, pending_rows
from tracker_jupyter.settings import Settings, resolve
from tracker_jupyter.store.locks import FileLock


def _run_dirs(paths: list[str], root: Path) -> list[Path]:
    if not paths:
        return [r.dir for r in store.list_runs(root)]
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / store.META).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p.parent for p in path.glob("**/" + store.META) if ".sync" not in p.parts)
        else:
            raise UsageError(f"{raw}: no run directory (or store holding runs) there.")
    return found


def _label(meta: dict[str, Any]) -> str:
    return f"{meta.get('project')}/{meta.get('id')}"


def _candidates(dirs: list[Path], out: Any) -> list[tuple[Path, str, str]]:
    """The runs to send: (directory, label, state); damaged and running ones are reported and left."""
    chosen = []
    for run_dir in dirs:
        record = store.RunRecord(run_dir)
        if record.damage is not None:
            print(f"{record.damage} It is not synced.", file=out)
            continue
        label, state = _label(record.meta), record.state
        if state == "running":
            print(
                f"{label}: still running (pid {record.meta.get('pid')}); its own process syncs it.", file=out
            )
            continue
        holder = FileLock(run_dir / SYNC_LOCK).holder()
        if holder is not None:
            print(f"{label}: process {holder} is sending it (the background uploader?); waiting.", file=out)
        chosen.append((run_dir, label, state))
    return chosen


class _Progress:
    """One progress line: per run when one run is sent, overall (runs, rows, rate) when several are."""

    def __init__(self, out: Any, runs: list[tuple[Path, str, str]], totals: dict[Path, int]) -> None:
        self.out, self.totals = out, totals
        self.labels = {run_dir: label for run_dir, label, _ in runs}
        self.rows = 0
        self.ended = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.shown = False

    def rows_sent(self, run_dir: Path, rows: int) -> None:
        with self.lock:
            self.rows += rows
            total = max(sum(self.totals.values()), 1)
            if len(self.labels) == 1:
                text = f"{self.labels[run_dir]} {self._bar(self.rows, total)} {self.rows}/{total} rows"
            else:
                rate = self.rows / max(time.monotonic() - self.started, 1e-6)
                text = (
                    f"{self._bar(self.rows, total)} {self.ended}/{len(self.labels)} runs, "
                    f"{self.rows}/{total} rows, {rate:,.0f} rows/s"
                )
            print(f"\r{text}", end="", file=self.out)
            self.shown = True

    @staticmethod
    def _bar(done: int, total: int, width: int = 30) -> str:
        filled = int(width * min(done, total) / total)
        return f"[{'#' * filled}{'.' * (width - filled)}]"

    def say(self, text: str) -> None:
        with self.lock:
            self._end_line()
            print(text, file=self.out)

    def end(self) -> None:
        with self.lock:
            self._end_line()

    def _end_line(self) -> None:
        if self.shown:
            print(file=self.out)
            self.shown = False


def sync_paths(
    paths: list[str],
    *,
    dir: str | None = None,
    base_url: str | None = None,
    out: Any = None,
    jobs: int | None = None,
) -> int:
    """``tracker sync``: upload offline or not fully synced runs, ``jobs`` runs at once (default: the
    ``sync_concurrency`` setting). Returns how many runs were synced completely."""
    from tracker_jupyter.online.parallel import Outcome, sync_many
    from tracker_jupyter.online.rest.client import MlflowRest
    from tracker_jupyter.online.rest.limiter import AdaptiveLimit

    out = out or sys.stderr
    settings = Settings()
    base_url = base_url or resolve("base_url", None, settings)
    if not base_url:
        raise UsageError(
            "tracker sync needs a server: pass --base-url or set TRACKER_BASE_URL (or MLFLOW_TRACKING_URI)."
        )
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise UsageError(f"tracker sync --jobs must be a whole number of at least 1, got {jobs!r}.")
    workers = jobs or int(resolve("sync_concurrency", None, settings))
    root = Path(resolve("root_dir", dir, settings))
    runs = _candidates(_run_dirs(paths, root), out)
    base_url, from_url = server_url(base_url)
    credentials = credentials_for(base_url, settings, from_url=from_url)
    with MlflowRest(base_url, credentials) as probe:
        probe.health()
    gate = AdaptiveLimit(workers)
    totals = {run_dir: pending_rows(run_dir) for run_dir, _, _ in runs}
    progress = _Progress(out, runs, totals)
    states = {run_dir: (label, state) for run_dir, label, state in runs}

    def finished(outcome: Outcome) -> None:
        label, state = states[outcome.run_dir]
        with progress.lock:
            progress.ended += 1
        if outcome.error is not None:
            if len(runs) == 1:
                return  # raised below, as it is
            progress.say(
                f"{label}: not synced ({outcome.error}); what was sent is kept, run again to send the rest."
            )
        else:
            progress.say(f"{label}: {state}, {outcome.sent} rows sent → {outcome.url}")

    outcomes = sync_many(
        [run_dir for run_dir, _, _ in runs], lambda: MlflowRest(base_url, credentials, gate=gate),
        workers=min(workers, max(1, len(runs))), progress=progress.rows_sent, finished=finished,
    )  # fmt: skip
    if gate.cuts:
        progress.say(
            f"The server said it was full {gate.cuts} times; requests in flight were lowered to {gate.limit}."
        )
    failed = [o for o in outcomes if o.error is not None]
    if len(failed) == 1 and len(outcomes) == 1:
        assert failed[0].error is not None
        progress.end()
        raise failed[0].error
    if failed:
        raise CommError(
            f"{len(failed)} of {len(outcomes)} runs are not fully synced (each is named above); what was "
            "sent is kept on the server and in each run's cursor: run tracker sync again to send the rest."
        )
    return len(outcomes)


def status_rows(paths: list[str], *, dir: str | None = None) -> list[dict[str, Any]]:
    """What ``tracker sync --status`` shows: per run, the server run, rows sent and pending, whether its
    end state reached the server, and what the background uploader is doing with it."""
    from tracker_jupyter.online.uploader import entry_path, read_entries, uploader_lock

    settings = Settings()
    root = Path(resolve("root_dir", dir, settings))
    rows = []
    for run_dir in _run_dirs(paths, root):
        record = store.RunRecord(run_dir)
        meta = record.meta if record.damage is None else {}
        sync = store.read_json(run_dir / SYNC_STATE, {}) or {}
        if not isinstance(sync, dict):
            sync = {}
        pending = pending_rows(run_dir)
        entries = dict(read_entries(run_dir.parent.parent))
        entry = entries.get(entry_path(run_dir.parent.parent, run_dir))
        uploader = None
        if entry is not None:
            holder = uploader_lock(run_dir.parent.parent, str(entry.get("base_url"))).holder()
            if entry.get("gave_up"):
                uploader = f"gave up: {entry['gave_up']}"
            elif holder is not None:
                uploader = f"queued, uploader pid {holder} running"
            else:
                uploader = "queued, no uploader running (tracker sync sends it)"
            if entry.get("last_error") and not entry.get("gave_up"):
                uploader += f"; last error: {entry['last_error']}"
        rows.append({
            "run": _label(meta) if meta else str(run_dir), "dir": str(run_dir), "state": record.state,
            "mode": meta.get("mode"), "server": sync.get("server"), "url": sync.get("url"),
            "synced": int(sync.get("rows", 0) or 0), "pending": pending,
            "final_state_sent": sync.get("status"), "uploader": uploader,
        })  # fmt: skip
    return rows


def print_status(rows: list[dict[str, Any]], out: Any = None) -> None:
    out = out or sys.stdout
    if not rows:
        print("No runs in the store.", file=out)
        return
    for row in rows:
        if row["server"] is None:
            where = "never synced" + (" (offline run)" if row["mode"] == "offline" else "")
        else:
            sent = "end state sent" if row["final_state_sent"] else "end state not sent"
            where = f"{row['synced']} rows sent to {row['server']}, {sent}"
        line = f"{row['run']}: {row['state']}, {row['pending']} rows pending; {where}"
        if row["uploader"]:
            line += f"; {row['uploader']}"
        elif row["pending"] or (row["state"] != "running" and not row["final_state_sent"]):
            line += f"; send with: tracker sync {shlex.quote(row['dir'])}"
        print(line, file=out)
