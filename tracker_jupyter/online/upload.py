"""``tracker sync``: upload offline or not fully synced runs from the local store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter import store
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.online.credentials import credentials_file, credentials_for, login, server_url
from tracker_jupyter.online.syncer import RunSyncer
from tracker_jupyter.settings import Settings, resolve

if TYPE_CHECKING:
    import argparse


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
            meta = store.read_json(run_dir / store.META, {}) or {}
            state = store.run_state(run_dir, meta)
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


def add_cli_commands(sub: Any) -> None:
    """``tracker sync`` and ``tracker login``."""
    sync = sub.add_parser("sync", help="upload offline or not fully synced runs to the tracking server")
    sync.add_argument("paths", nargs="*", help="run directories or stores (default: every run under --dir)")
    sync.add_argument("--dir", help="store root when no PATH is given (default: TRACKER_DIR or ./tracker)")
    sync.add_argument("--base-url", help="the MLflow Tracking Server (default: TRACKER_BASE_URL)")
    sync.set_defaults(func=_cmd_sync)
    log_in = sub.add_parser("login", help="store credentials for a tracking server (file mode 0600)")
    log_in.add_argument("--base-url", help="the MLflow Tracking Server (default: TRACKER_BASE_URL)")
    log_in.add_argument("--username", help="basic-auth user; the password is read from standard input")
    log_in.add_argument(
        "--token", action="store_true", help="read a bearer token from standard input instead"
    )
    log_in.add_argument("--no-verify", action="store_true", help="store without checking with the server")
    log_in.set_defaults(func=_cmd_login)


def _cmd_sync(args: argparse.Namespace) -> int:
    sync_paths(args.paths, dir=args.dir, base_url=args.base_url)
    return 0


def _cmd_login(args: argparse.Namespace) -> int:
    import getpass

    secret = (
        getpass.getpass("token: " if args.token else "password: ")
        if sys.stdin.isatty()
        else sys.stdin.readline().strip()
    )
    if args.token:
        login(args.base_url, api_key=secret, verify=not args.no_verify)
    else:
        if not args.username:
            raise UsageError("tracker login: pass --username (basic auth) or --token.")
        login(args.base_url, username=args.username, password=secret, verify=not args.no_verify)
    print(f"credentials stored in {credentials_file()} (mode 0600)")
    return 0
