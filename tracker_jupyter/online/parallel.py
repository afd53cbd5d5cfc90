"""Sending several runs at once: ``tracker sync`` and the background uploader.

Runs go through a pool of ``workers`` threads, each with a client of its own (one HTTP session a thread);
every client shares one ``AdaptiveLimit``, so the requests in flight stay within the ``sync_concurrency``
setting and fall when the server says it is full. Each run's pass holds that run's ``sync.lock``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tracker_jupyter.online.syncer import RunSyncer

if TYPE_CHECKING:
    from tracker_jupyter.online.rest.client import MlflowRest


@dataclass
class Outcome:
    """How one run's pass ended: the rows it sent, and the error that stopped it (None: it completed)."""

    run_dir: Path
    sent: int = 0
    error: BaseException | None = None
    url: str | None = None
    done: bool = False


def sync_many(
    run_dirs: Iterable[Path],
    client_for: Callable[[], MlflowRest],
    *,
    workers: int,
    wait: float | None = None,
    progress: Callable[[Path, int], None] | None = None,
    finished: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """One final pass over each run, ``workers`` at a time. ``wait``: seconds to wait for a run another
    process is sending (``SyncBusy`` in its outcome after that). ``progress(run_dir, rows)`` is called as
    rows are accepted, ``finished(outcome)`` as each run ends; both from the worker threads."""
    local = threading.local()
    clients: list[MlflowRest] = []
    guard = threading.Lock()

    def client() -> MlflowRest:
        if getattr(local, "client", None) is None:
            local.client = client_for()
            with guard:
                clients.append(local.client)
        return local.client  # type: ignore[no-any-return]

    def one(run_dir: Path) -> Outcome:
        outcome = Outcome(run_dir)
        syncer = RunSyncer(run_dir, client())
        counted = None if progress is None else (lambda rows: progress(run_dir, rows))
        try:
            outcome.sent = syncer.sync_once(final=True, progress=counted, wait=wait)
        except Exception as exc:  # reported per run: one run's failure must not stop the others
            outcome.error = exc
        outcome.url, outcome.done = syncer.url, syncer.done()
        if finished is not None:
            finished(outcome)
        return outcome

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tracker-sync") as pool:
            return list(pool.map(one, list(run_dirs)))
    finally:
        for each in clients:
            each.close()
