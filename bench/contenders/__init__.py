"""Contenders for the side-by-side benchmark.

Each module in this package describes one tracker and imports nothing heavy at module level, so the
orchestrator can read its metadata without paying for the tracker's import. A contender module defines:

``NAME``
    the short name used on the command line (``--only``) and in the table.
``MODULE``
    the top-level module whose import is timed.
``DIST``
    the distribution name the version column is read from.
``environ(workdir) -> dict[str, str]``
    environment for the child process: keeps every file the tracker writes inside ``workdir``.
``start(workdir, config) -> Session``
    creates the run (this call is what the ``init`` column times) and returns its bound methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Table order: ours first so every ratio reads against the row above it, the naive floor next.
CONTENDERS: dict[str, str] = {
    "ours": "contenders.ours",
    "naive": "contenders.naive_jsonl",
    "wandb": "contenders.wandb_offline",
    "trackio": "contenders.trackio_local",
    "mlflow": "contenders.mlflow_local",
}


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Session:
    """A started run, reduced to the calls the benchmark times.

    ``log`` is handed the bound method itself where the tracker's signature allows it, so the timed call
    carries no adapter frame; only trackers that need a step argument get a closure.
    """

    log: Callable[[dict[str, float]], object]
    finish: Callable[[], object]
    # Stops helper processes (wandb's service) after the run so their peak RSS can be read from
    # RUSAGE_CHILDREN, which only counts children that have been waited for.
    teardown: Callable[[], object] = field(default=_nothing)
