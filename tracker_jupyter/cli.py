"""The ``tracker`` command: ``tracker runs``, ``tracker sync``, ``tracker login``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from tracker_jupyter.exceptions import Error


def _cmd_runs(args: argparse.Namespace) -> int:
    from tracker_jupyter.api import Api

    runs = Api(dir=args.dir).runs(project=args.project)
    if args.json:
        json.dump([r.to_dict() for r in runs], sys.stdout, indent=1, default=str)
        print()
        return 0
    if not runs:
        print(f"no runs under {Api(dir=args.dir).root}")
        return 0
    header = ("project", "id", "name", "state", "started", "steps", "tags")
    rows = []
    for r in runs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.start_time)) if r.start_time else "-"
        last = r.meta.get("last_step")
        rows.append((r.project, r.id, r.name or "", r.state, started, "" if last is None else str(last + 1),
                     ",".join(r.tags)))  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for line in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tracker", description="Local-first experiment tracker.")
    sub = parser.add_subparsers(dest="command", required=True)
    runs = sub.add_parser("runs", help="list stored runs")
    runs.add_argument("--dir", help="store root (default: TRACKER_DIR or ./tracker)")
    runs.add_argument("--project", help="only runs of this project")
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs.set_defaults(func=_cmd_runs)
    try:
        from tracker_jupyter.online.sync import add_cli_commands
    except ImportError:
        pass
    else:
        add_cli_commands(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Error as exc:
        print(f"tracker: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
