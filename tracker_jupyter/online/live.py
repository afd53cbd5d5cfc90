"""An online run's background sync: connect at ``init()`` (or fall back to offline), sync while it runs,
send the rest at finish within ``sync_timeout``, and hand what is left to the background uploader."""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tracker_jupyter.core.report import Once, log
from tracker_jupyter.exceptions import AuthenticationError, CommError
from tracker_jupyter.online.credentials import (
    INIT_TIMEOUT,
    credentials_for,
    init_timeout,
    proxies,
    server_url,
)
from tracker_jupyter.online.syncer import RunSyncer, SyncBusy
from tracker_jupyter.settings import Settings, resolve

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run
    from tracker_jupyter.online.rest.client import Credentials, MlflowRest

# seconds of sync_timeout (at most a tenth of it) kept for handing off and recording once sending stops
HAND_OFF_RESERVE = 3.0


class LiveSync:
    """The background thread of an online run: syncs every ``interval`` seconds, retries with backoff."""

    def __init__(
        self, run: Run, syncer: RunSyncer, *, timeout: float, silent: bool, interval: float = 1.0,
        hand_off: Callable[[], int | None] | None = None,
    ) -> None:  # fmt: skip
        self.run = run
        self.syncer = syncer
        self.timeout = timeout
        self.silent = silent
        self.interval = interval
        self.hand_off = hand_off  # queues the run for the background uploader; its pid (None: not started)
        self.uploader: int | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stopped_on_auth = False
        self._said = Once()
        self._thread = threading.Thread(target=self._loop, name=f"tracker-sync-{run.id}", daemon=True)
        self._thread.start()

    def status(self) -> dict[str, Any]:
        status = {
            "url": self.syncer.url,
            "synced": self.syncer.rows_synced,
            "pending": self.syncer.pending_rows(),
            "last_error": self.syncer.last_error,
        }
        if self.uploader is not None:
            status["uploader"] = self.uploader
        return status

    def _loop(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.syncer.sync_once(wait=self.interval)
                backoff = self.interval
            except SyncBusy:  # `tracker sync` or the uploader is sending an earlier part of a resumed run
                backoff = self.interval
            except AuthenticationError as exc:
                self._note(exc)
                self._stopped_on_auth = True
                return
            except (CommError, OSError) as exc:
                self._note(exc)
                backoff = min(backoff * 2, 30.0)
            except Exception as exc:
                self._note(exc)
                backoff = min(backoff * 2, 30.0)

    def _note(self, exc: BaseException) -> None:
        self.syncer.last_error = str(exc)
        if not self.silent and self._said():
            log(
                "sync to %s failed (%s); the data stays in %s and is retried (or run: tracker sync %s)",
                self.syncer.client.base_url, exc, self.syncer.dir, shlex.quote(str(self.syncer.dir)),
            )  # fmt: skip

    def finish(self, run: Run) -> None:
        """After the writer closed: send the rest, files and end state, waiting at most ``timeout``; hand
        what is left to the background uploader."""
        # One budget from the moment finish() began (its hooks and the flush come out of it too), for the
        # running pass and the last one. Sending stops a little early: handing off and recording the state
        # write files (fsync), which take seconds on a machine busy with many writers, and finish() must
        # still return within sync_timeout.
        deadline = (
            (run.finish_started or time.monotonic()) + self.timeout - min(HAND_OFF_RESERVE, self.timeout / 10)
        )
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        done = threading.Event()
        error: list[BaseException] = []
        if not self._stopped_on_auth:
            worker = threading.Thread(
                target=self._final, args=(deadline, done, error), name=f"tracker-sync-final-{run.id}",
                daemon=True,
            )  # fmt: skip
            worker.start()
            done.wait(max(0.0, deadline - time.monotonic()))
        complete = done.is_set() and not error and not self._stopped_on_auth and self.syncer.done()
        if not complete and not self._stopped_on_auth and self.hand_off is not None:
            self.syncer.cancel()  # the pass under way stops after its current request; the cursor is saved
            self.uploader = self.hand_off()
        run.update_meta(sync=self.status())  # after the writer closed: for the final snapshot
        if not complete:
            self._say_left(run, error)
        self.syncer.client.close()

    def _final(self, deadline: float, done: threading.Event, error: list[BaseException]) -> None:
        """The last pass, tried again until the deadline: a restarting server gets the time finish() allows."""
        pause = 0.5
        try:
            while True:
                try:
                    self.syncer.sync_once(final=True, wait=max(0.0, deadline - time.monotonic()))
                    return
                except (CommError, OSError) as exc:
                    if isinstance(exc, AuthenticationError) or time.monotonic() + pause > deadline:
                        raise
                    self.syncer.last_error = str(exc)
                    time.sleep(pause)
                    pause = min(pause * 2, 5.0)
        except BaseException as exc:
            error.append(exc)
        finally:
            done.set()

    def _say_left(self, run: Run, error: list[BaseException]) -> None:
        pending = self.syncer.pending_rows()
        reason = (
            f": {error[0]}" if error else (f": {self.syncer.last_error}" if self.syncer.last_error else "")
        )
        left = f"{pending} rows pending" if pending else "files or the final state not sent"
        where = self.syncer.client.base_url
        quoted = shlex.quote(str(self.syncer.dir))
        if self.uploader is not None:
            print(
                f"tracker: run {run.id} is not fully synced to {where} yet ({left}{reason}); the background "
                f"uploader (pid {self.uploader}) sends the rest after this process ends. Progress: tracker sync "
                f"--status {quoted}",
                file=sys.stderr,
            )
            return
        print(
            f"tracker: run {run.id} is not fully synced to {where} ({left}{reason}). Everything is in "
            f"{self.syncer.dir}; finish with: tracker sync {quoted}",
            file=sys.stderr,
        )


def live_client(
    base_url: str,
    credentials: Credentials,
    *,
    connect: float = INIT_TIMEOUT,
    proxies: dict[str, str] | None = None,
) -> MlflowRest:
    """A client for work beside the user's code (the background syncer, the runs dashboard): short connect
    timeout, reads up to 30 s, and few retries per call, since the syncer retries whole passes itself, with
    its own backoff, and notes the error at once for the widget."""
    from tracker_jupyter.online.rest.client import MlflowRest, RetryPolicy, Timeout

    return MlflowRest(
        base_url,
        credentials,
        timeout=Timeout(connect=connect, read=30.0),
        retry=RetryPolicy(max_attempts=2, backoff_initial=0.5, deadline=connect),
        proxies=proxies,
    )


def start(
    run: Run, *, settings: Settings, base_url: str, force: bool, anonymous: str | None, silent: bool
) -> None:
    """Connect an online run to the server, or fall back to offline (unless ``force``)."""
    from tracker_jupyter.online.rest.client import NO_RETRY, MlflowRest, Timeout

    base_url, from_url = server_url(base_url)
    # anonymous='never' without credentials is refused (AuthenticationError), online or forced alike
    credentials = credentials_for(base_url, settings, anonymous, from_url)
    seconds, via = init_timeout(settings), proxies(settings)
    client = live_client(base_url, credentials, connect=seconds, proxies=via)
    live_timeout = client.timeout
    client.timeout = Timeout(seconds, seconds)  # while init() waits: a stalled server must not hang it
    assert run.run_dir is not None, "an online run has a run directory"
    syncer = RunSyncer(run.run_dir, client)
    try:
        probe = MlflowRest(base_url, credentials, timeout=seconds, retry=NO_RETRY, proxies=via)
        with probe:
            probe.health()
        with syncer.locked(wait=seconds):
            syncer.ensure_run(dict(run.meta))
    except (CommError, OSError) as exc:
        client.close()
        if force:
            raise
        _fall_back(run, base_url, str(exc), silent)
        return
    client.timeout = live_timeout
    run.update_meta(url=syncer.url, mlflow_run_id=syncer.mlflow_run_id)
    timeout = float(resolve("sync_timeout", None, settings))
    background = None
    if resolve("sync_background", None, settings):
        from tracker_jupyter.online.uploader import hand_off

        def background() -> int | None:
            return hand_off(syncer.dir, base_url, credentials, proxies=via)

    live = LiveSync(run, syncer, timeout=timeout, silent=silent, hand_off=background)
    run.parts.sync_status = live.status
    run.parts.server = lambda: live_client(base_url, credentials, connect=seconds, proxies=via)
    run.on_closed(live.finish)


def _fall_back(run: Run, base_url: str, reason: str, silent: bool) -> None:
    run.update_meta(mode="offline", offline_reason=f"{base_url}: {reason}")
    if not silent:
        print(f"tracker: cannot use {base_url} ({reason}); logging offline.", file=sys.stderr)
