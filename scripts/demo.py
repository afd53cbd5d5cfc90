"""Execute a notebook in a real kernel on the embedded store, then say where its run went.

Usage: python scripts/demo.py notebooks/quickstart.ipynb
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import tracker_jupyter as tj

REPO = Path(__file__).resolve().parent.parent


def main(path: str) -> int:
    source = Path(path).resolve()
    notebook = nbformat.read(source, as_version=4)
    started = time.time()
    # The kernel runs in the repository root, so the run lands in ./tracker, the embedded default.
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()
    executed = source.with_name(f"{source.stem}.executed.ipynb")
    nbformat.write(notebook, executed)
    runs = [r for r in tj.Api(REPO / "tracker").runs() if (r.start_time or 0) >= started]
    if not runs:
        print(f"{source.name} ran, but started no run under {REPO / 'tracker'}", file=sys.stderr)
        return 1
    print(f"executed notebook: {executed.relative_to(REPO)}")
    for run in runs:
        print(f"run {run.name} ({run.id}) in project {run.project!r}: {run.state}")
        print(f"  stored in {run.dir.relative_to(REPO)}  ({len(run.history())} history rows)")
        summary = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in run.summary.items()
        )
        print(f"  summary: {summary}")
        print(f"  list runs: .venv/bin/tracker runs --project {run.project}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(REPO / "notebooks" / "quickstart.ipynb")))
