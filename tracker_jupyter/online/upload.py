"""``tracker sync``: upload offline or not fully synced runs from the local store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tracker_jupyter import store
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.online.credentials import credentials_for, server_url
from tracker_jupyter.online.syncer import RunSyncer
from tracker_jupyter.settings import Settings, resolve


def _run_dirs(paths: list[str], root: Path) -> list[Path]:
    if not paths:
        return [r.dir for r in store.list_runs(root)]
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / store.META).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p.parent for p in path.glob("**/" + store.META))
        else:
            raise UsageError(f"{raw}: no run directory (or store holding runs) there.")
    return found


def sync_paths(
    paths: list[str], *, dir: str | None = None, base_url: str | None = None, out: Any = None
) -> int:
    """``tracker sync``: upload offline or not fully synced runs. Returns how many runs were synced."""
    from tracker_jupyter.online.rest.client import MlflowRest

    out = out or sys.stderr
    settings = Settings()
    base_url = base_url or resolve("base_url", None, settings)
    if not base_url:
        raise UsageError(
            "tracker sync needs a server: pass --base-url or set TRACKER_BASE_URL (or MLFLOW_TRACKING_URI)."
        )
    root = Path(resolve("root_dir", dir, settings))
    dirs = _run_dirs(paths, root)
    base_url, from_url = server_url(base_url)
    client = MlflowRest(base_url, credentials_for(base_url, settings, from_url=from_url))
    synced = 0
    with client:
        client.health()
        for run_dir in dirs:
            record = store.RunRecord(run_dir)
            if record.damage is not None:
                print(f"{record.damage} It is not synced.", file=out)
                continue
            meta = record.meta
            state = record.state
            label = f"{meta.get('project')}/{meta.get('id')}"
            if state == "running":
                print(f"{label}: still running (pid {meta.get('pid')}); its own process syncs it.", file=out)
                continue
            syncer = RunSyncer(run_dir, client)
            total = max(syncer.pending_rows(), 1)
            done = [0]

            def progress(n: int, done: list[int] = done, total: int = total, label: str = label) -> None:
                done[0] += n
                width = 30
                filled = int(width * min(done[0], total) / total)
                print(
                    f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done[0]}/{total} rows",
                    end="",
                    file=out,
                )

            sent = syncer.sync_once(final=True, progress=progress)
            if sent:
                print(file=out)
            print(f"{label}: {state}, {sent} rows sent → {syncer.url}", file=out)
            synced += 1
    return synced
