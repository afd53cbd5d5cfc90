"""The background uploader: finishes, after the run's process has ended, what ``finish()`` could not send
within ``sync_timeout``.

    python -m tracker_jupyter.online.uploader STORE_ROOT BASE_URL   (credentials as JSON on stdin)

``hand_off()`` (called by ``finish()``) queues the run in ``<store>/.sync/queue/`` and starts the uploader
unless one already serves that store and server (``<store>/.sync/uploader-<server>.lock``). The uploader
runs in a session of its own, so it outlives the script or kernel (and a kill -9 of it); it sends each
queued run (``sync_concurrency`` requests in flight at most, fewer when the server says it is full), marks
its MLflow run's final state, removes it from the queue, and exits once the queue is empty. Progress is in
each run's ``sync.json`` and queue entry (``tracker sync --status``); its log is ``<store>/.sync/uploader.log``.
A run's passes hold its ``sync.lock``, so ``tracker sync`` by hand never sends the same rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter import store
from tracker_jupyter.exceptions import AuthenticationError, UsageError
from tracker_jupyter.online.syncer import SyncBusy
from tracker_jupyter.store.locks import FileLock

if TYPE_CHECKING:
    from tracker_jupyter.online.parallel import Outcome
    from tracker_jupyter.online.rest.client import Credentials

SYNC_DIR = ".sync"
LOG = "uploader.log"
PATIENCE = 6 * 3600.0  # seconds without progress on a run before the uploader leaves it to `tracker sync`
MAX_PAUSE = 60.0  # the longest wait between two tries of a run
IDLE_GRACE = 2.0  # seconds an empty queue is watched before the uploader exits


def queue_dir(root: Path) -> Path:
    return root / SYNC_DIR / "queue"


def server_key(base_url: str) -> str:
    return hashlib.sha256(base_url.encode()).hexdigest()[:12]


def uploader_lock(root: Path, base_url: str) -> FileLock:
    return FileLock(root / SYNC_DIR / f"uploader-{server_key(base_url)}.lock")


def entry_path(root: Path, run_dir: Path) -> Path:
    relative = os.path.relpath(os.path.abspath(run_dir), os.path.abspath(root))
    return queue_dir(root) / f"{hashlib.sha256(relative.encode()).hexdigest()[:20]}.json"


def read_entries(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The queued runs of a store: (entry file, entry)."""
    folder = queue_dir(root)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        entry = store.read_json(path, None)
        if isinstance(entry, dict) and isinstance(entry.get("run_dir"), str):
            found.append((path, entry))
    return found


# ------------------------------------------------------------------------------- the run's side


def hand_off(
    run_dir: Path, base_url: str, credentials: Credentials, *, proxies: dict[str, str] | None = None
) -> int | None:
    """Queue ``run_dir`` for the background uploader of its store and ``base_url``, starting it when none
    runs. Returns the uploader's pid (None when it could not be started: ``tracker sync`` remains)."""
    root = Path(os.path.abspath(run_dir)).parent.parent
    (root / SYNC_DIR).mkdir(parents=True, exist_ok=True)
    queue_dir(root).mkdir(exist_ok=True)
    entry = {
        "run_dir": os.path.relpath(os.path.abspath(run_dir), os.path.abspath(root)),
        "base_url": base_url,
        "queued_at": time.time(),
        "queued_by": os.getpid(),
    }
    store.write_json_atomic(entry_path(root, run_dir), entry)
    lock = uploader_lock(root, base_url)
    # the queue entry is written first: an uploader that is about to exit looks at the queue once more
    # after it lets go of its lock, so it either sees this entry or this call sees no uploader
    holder = lock.holder()
    if holder is not None:
        return holder
    return _start(root, base_url, credentials, proxies)


def _start(root: Path, base_url: str, credentials: Credentials, proxies: dict[str, str] | None) -> int | None:
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    secrets = {"username": credentials.username, "password": credentials.password,
               "token": credentials.token, "proxies": proxies or {}}  # fmt: skip
    try:
        with open(root / SYNC_DIR / LOG, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "tracker_jupyter.online.uploader", str(root), base_url],
                stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                close_fds=True, start_new_session=True, cwd=root,
            )  # fmt: skip
        assert process.stdin is not None
        process.stdin.write(json.dumps(secrets).encode())  # not on the command line: ps shows that
        process.stdin.close()
    except OSError:
        return None
    return process.pid


# ------------------------------------------------------------------------------- the uploader


class Uploader:
    """The loop of one uploader process: the queue of one store, for one server."""

    def __init__(self, root: Path, base_url: str, secrets: dict[str, Any]) -> None:
        from tracker_jupyter.online.rest.client import Credentials
        from tracker_jupyter.online.rest.limiter import AdaptiveLimit
        from tracker_jupyter.settings import Settings, resolve

        self.root, self.base_url = root, base_url
        self.credentials = Credentials(secrets.get("username"), secrets.get("password"), secrets.get("token"))
        self.proxies = secrets.get("proxies") or None
        self.workers = int(resolve("sync_concurrency", None, Settings()))
        self.gate = AdaptiveLimit(self.workers)
        self.next_try: dict[str, float] = {}  # entry file name -> when to try that run again

    def client(self) -> Any:
        from tracker_jupyter.online.rest.client import MlflowRest, RetryPolicy, Timeout

        return MlflowRest(
            self.base_url, self.credentials, timeout=Timeout(connect=10.0, read=60.0),
            retry=RetryPolicy(max_attempts=5, backoff_initial=0.5, deadline=120.0),
            proxies=self.proxies, gate=self.gate,
        )  # fmt: skip

    def due(self) -> list[tuple[Path, dict[str, Any]]]:
        """Queued runs of this server to try now; a run still open (resumed) is its own process's."""
        now, due = time.time(), []
        for path, entry in read_entries(self.root):
            if entry.get("base_url") != self.base_url or entry.get("gave_up"):
                continue
            run_dir = self.root / entry["run_dir"]
            if not (run_dir / store.META).is_file():
                path.unlink(missing_ok=True)  # the run was deleted: nothing to send
                continue
            if store.is_locked(run_dir) or self.next_try.get(path.name, 0.0) > now:
                continue
            due.append((path, entry))
        return due

    def waiting(self) -> bool:
        return any(
            e.get("base_url") == self.base_url and not e.get("gave_up") for _, e in read_entries(self.root)
        )

    def serve(self, lock: FileLock) -> None:
        """Send the queue until it is empty, then exit (looking once more after letting go of the lock)."""
        idle_since: float | None = None
        while True:
            due = self.due()
            if due:
                idle_since = None
                self._pass(due)
                continue
            if self.waiting():
                idle_since = None
                time.sleep(min(1.0, max(0.05, min(self.next_try.values(), default=0) - time.time())))
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since < IDLE_GRACE:
                time.sleep(0.2)
                continue
            lock.release()
            if not self.waiting() or not lock.acquire(0):
                return
            idle_since = None

    def _pass(self, due: list[tuple[Path, dict[str, Any]]]) -> None:
        from tracker_jupyter.online.parallel import sync_many

        entries = {self.root / entry["run_dir"]: (path, entry) for path, entry in due}
        sync_many(list(entries), self.client, workers=self.workers, wait=0,
                  finished=lambda outcome: self._record(outcome, *entries[outcome.run_dir]))  # fmt: skip

    def _record(self, outcome: Outcome, path: Path, entry: dict[str, Any]) -> None:
        """After a pass: a run that is done leaves the queue; one that failed is tried again later."""
        now = time.time()
        if outcome.error is None and outcome.done:
            path.unlink(missing_ok=True)
            self.next_try.pop(path.name, None)
            _say(f"{entry['run_dir']}: sent ({outcome.sent} rows this pass) -> {outcome.url}")
            return
        attempts = int(entry.get("attempts", 0)) + 1
        if outcome.sent or "progress_at" not in entry:
            entry["progress_at"] = now
        error = outcome.error
        entry.update(attempts=attempts, last_try=now, uploader=os.getpid(),
                     last_error=None if error is None else str(error))  # fmt: skip
        if isinstance(error, SyncBusy):
            pause = 1.0
        else:
            pause = min(MAX_PAUSE, 0.5 * 2 ** min(attempts, 10))
            if error is not None:
                _say(f"{entry['run_dir']}: {error}; tried again in {pause:.0f} s")
        if isinstance(error, AuthenticationError) or now - float(entry["progress_at"]) > PATIENCE:
            entry["gave_up"] = f"{error}. Send it with: tracker sync {self.root / entry['run_dir']}"
            _say(f"{entry['run_dir']}: left to `tracker sync`: {error}")
        self.next_try[path.name] = now + pause
        with contextlib.suppress(OSError):
            store.write_json_atomic(path, entry)


def _say(text: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} [{os.getpid()}] {text}", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        raise UsageError("usage: python -m tracker_jupyter.online.uploader STORE_ROOT BASE_URL")
    root, base_url = Path(os.path.abspath(argv[1])), argv[2]
    text = sys.stdin.read() if not sys.stdin.isatty() else ""
    secrets = json.loads(text) if text.strip() else {}
    lock = uploader_lock(root, base_url)
    if not lock.acquire(0):
        return 0  # another uploader serves this store and server; it picks up the queue
    _say(f"uploading the queue of {root} to {base_url}")
    try:
        Uploader(root, base_url, secrets).serve(lock)
    finally:
        lock.release()
    _say("queue empty; exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
