"""The ``tracker`` command: ``tracker runs``, ``tracker sync``, ``tracker login``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

from tracker_jupyter.exceptions import Error


def _cmd_runs(args: argparse.Namespace) -> int:
    from tracker_jupyter import store
    from tracker_jupyter.api import Api

    api = Api(dir=args.dir)
    runs = api.runs(project=args.project, order="-created_at")
    for damaged in (r for r in runs if r.damage is not None):
        print(f"tracker: {damaged.damage}", file=sys.stderr)
    if args.json:
        lines = json.dumps([r.to_dict() for r in runs], indent=1, default=str).split("\n")
    elif not runs:
        lines = [f"no runs under {api.root}"]
    else:
        header = ("project", "id", "name", "state", "started", "steps", "tags")
        rows = []
        for r in runs:
            started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.start_time)) if r.start_time else "-"
            last = r.meta.get("last_step")
            if last is None:  # only finish() writes last_step: a running or crashed run has its history
                tail = store.last_row(r.dir / store.HISTORY)
                last = tail.get("_step") if tail is not None else None
            rows.append((r.project, r.id, r.name or "", r.state, started, "" if last is None else str(last + 1),
                         ",".join(r.tags)))  # fmt: skip
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
        lines = [
            "  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in (header, *rows)
        ]
    try:
        # Line by line: with an unbuffered stdout (PYTHONUNBUFFERED) one large write into a pipe closed
        # midway is cut short without an error, and the rest of the output silently lost.
        for line in lines:
            print(line)
        sys.stdout.flush()  # a closed pipe fails here, inside the try, rather than at exit
    except BrokenPipeError:
        # The reader went away (`tracker runs | head -1`). Point stdout at devnull so Python's flush at
        # exit does not fail again, and exit with 1 as Python itself does on EPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from tracker_jupyter.online.upload import sync_paths

    if args.status:
        import json

        from tracker_jupyter.online.upload import print_status, status_rows

        rows = status_rows(args.paths, dir=args.dir)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print_status(rows)
        return 0
    sync_paths(args.paths, dir=args.dir, base_url=args.base_url, jobs=args.jobs)
    return 0


def _cmd_login(args: argparse.Namespace) -> int:
    import getpass

    from tracker_jupyter.exceptions import UsageError
    from tracker_jupyter.online.credentials import credentials_file, login

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracker", description="Local-first experiment tracker.")
    sub = parser.add_subparsers(dest="command", required=True)
    runs = sub.add_parser("runs", help="list stored runs")
    runs.add_argument("--dir", help="store root (default: TRACKER_DIR or ./tracker)")
    runs.add_argument("--project", help="only runs of this project")
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs.set_defaults(func=_cmd_runs)
    sync = sub.add_parser("sync", help="upload offline or not fully synced runs to the tracking server")
    sync.add_argument("paths", nargs="*", help="run directories or stores (default: every run under --dir)")
    sync.add_argument("--dir", help="store root when no PATH is given (default: TRACKER_DIR or ./tracker)")
    sync.add_argument("--base-url", help="the MLflow Tracking Server (default: TRACKER_BASE_URL)")
    sync.add_argument(
        "--jobs",
        type=int,
        help="runs sent at once and requests in flight (default: TRACKER_SYNC_CONCURRENCY, 4)",
    )
    sync.add_argument(
        "--status",
        action="store_true",
        help="show what is still to send per run (and the background uploader)",
    )
    sync.add_argument("--json", action="store_true", help="with --status: as JSON")
    sync.set_defaults(func=_cmd_sync)
    log_in = sub.add_parser("login", help="store credentials for a tracking server (file mode 0600)")
    log_in.add_argument("--base-url", help="the MLflow Tracking Server (default: TRACKER_BASE_URL)")
    log_in.add_argument("--username", help="basic-auth user; the password is read from standard input")
    log_in.add_argument(
        "--token", action="store_true", help="read a bearer token from standard input instead"
    )
    log_in.add_argument("--no-verify", action="store_true", help="store without checking with the server")
    log_in.set_defaults(func=_cmd_login)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except Error as exc:
        print(f"tracker: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
