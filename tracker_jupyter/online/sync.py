"""Online mode: the same records as the local store, synced to an MLflow Tracking Server in the background.

The local store stays the source of truth. A syncer reads a run directory through a durable cursor
(``sync.json`` in the run directory: the MLflow run, the byte offset of ``history.jsonl`` already sent,
the params and files already sent) and writes to the server with :class:`~tracker_jupyter._rest.MlflowRest`.
Metric points carry the timestamps stamped at ``log()``, so sending a row twice stores it once: a crash
between a write and the cursor update costs nothing. The same code serves a live run (a thread) and
``tracker sync`` (a loop in the foreground).

How a run maps onto MLflow:

- project → experiment ``project`` (``entity/project`` when an entity is given);
- run → MLflow run named like ours, tagged ``tracker.id`` with our id; notes → ``mlflow.note.content``;
  group, job_type, tags → ``tracker.group``, ``tracker.job_type``, ``tracker.tags`` (comma-separated);
  program → ``mlflow.source.name``; git → ``mlflow.source.git.commit`` / ``branch`` / ``repoURL``;
- config → params (nested keys joined with '.', values in a canonical string form). MLflow params never
  change, so a value changed later under ``allow_val_change`` keeps its first value as the param, and the
  current config is the ``tracker.config`` tag (JSON) and the ``config.json`` artifact;
- history rows → metric points (numbers and bools; strings, lists and None stay local); the summary →
  the ``tracker.summary`` tag and the ``summary.json`` artifact;
- ``files/`` and ``code/`` → artifacts under the same paths;
- finished / failed / crashed → FINISHED / FAILED / KILLED.
- ``resume_from``: MLflow cannot delete points, so the rewound points stay in the server's history; the
  run is tagged ``tracker.rewinds`` with the steps it was rewound to, and new points follow them.
- ``fork_from``: a new MLflow run holding the copied points, tagged ``tracker.fork_of`` (``id?_step=N``).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter import store
from tracker_jupyter.exceptions import AuthenticationError, CommError, UsageError
from tracker_jupyter.settings import Settings, resolve

if TYPE_CHECKING:
    import argparse

    from tracker_jupyter.core.run import Run
    from tracker_jupyter.online.rest.client import Credentials, Metric, MlflowRest

SYNC_STATE = "sync.json"
ROWS_PER_BATCH = 3000  # about 9,000 points for 3 metrics a row: ten requests of the server's limit
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
INIT_TIMEOUT = 5.0  # seconds for each call init() makes: a dead server must not hang the notebook
STATUS = {"finished": "FINISHED", "failed": "FAILED", "crashed": "KILLED", "running": "RUNNING"}


# ------------------------------------------------------------------------------------- credentials


def _config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tracker_jupyter"


def credentials_file() -> Path:
    """Where ``tracker login`` keeps credentials, per server, in a file only its owner can read."""
    return _config_dir() / "credentials.json"


def _stored_credentials(base_url: str) -> dict[str, str]:
    data = store.read_json(credentials_file(), {}) or {}
    entry = data.get(base_url.rstrip("/"))
    return entry if isinstance(entry, dict) else {}


def _store_credentials(base_url: str, entry: dict[str, str]) -> Path:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = store.read_json(path, {}) or {}
    data[base_url.rstrip("/")] = entry
    store.write_json_atomic(path, data, mode=0o600)
    return path


def server_url(base_url: str) -> tuple[str, Credentials]:
    """The server URL without any ``user:password@`` in it (what is shown and stored), and those credentials."""
    from tracker_jupyter.online.rest.client import _split_base_url

    return _split_base_url(base_url)


def credentials_for(
    base_url: str, settings: Settings, anonymous: str | None = None, from_url: Credentials | None = None
) -> Credentials:
    """Credentials for ``base_url``: settings/environment first, then ``user:password@`` in the configured
    URL (``from_url``), then what ``tracker login`` stored."""
    from tracker_jupyter.online.rest.client import Credentials

    if anonymous == "must":
        return Credentials()
    token = resolve("api_key", None, settings)
    username = resolve("username", None, settings)
    password = resolve("password", None, settings)
    if token:
        return Credentials(token=token)
    if username and password:
        return Credentials(username=username, password=password)
    if username or password:
        raise UsageError(
            "basic auth needs both a username and a password; set TRACKER_USERNAME and TRACKER_PASSWORD "
            "(or settings username/password), or run `tracker login`."
        )
    if from_url is not None and from_url.is_set:
        return from_url
    stored = _stored_credentials(base_url)
    if stored.get("token"):
        return Credentials(token=stored["token"])
    if stored.get("username") and stored.get("password"):
        return Credentials(username=stored["username"], password=stored["password"])
    if anonymous == "never":
        raise AuthenticationError(
            f"anonymous='never' needs credentials for {base_url}, and none are configured: run "
            "`tracker login`, or set TRACKER_API_KEY (bearer) or TRACKER_USERNAME/TRACKER_PASSWORD.",
            url=base_url,
        )
    return Credentials()


def login(
    base_url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    api_key: str | None = None,
    verify: bool = True,
) -> bool:
    """Store credentials for a tracking server (mode 0600 file under the user's config directory).

    Parameters
    ----------
    base_url
        The MLflow Tracking Server; default ``TRACKER_BASE_URL`` / ``MLFLOW_TRACKING_URI``.
    username, password
        HTTP basic auth (MLflow's basic-auth app). Without ``password`` it is asked for (``getpass``, which a
        notebook shows as a masked input), so it never has to be typed into a cell, its history or a
        saved notebook.
    api_key
        A bearer token (servers behind an authenticating proxy).
    verify
        Check the credentials with the server before storing them.

    Returns
    -------
    bool
        True when the credentials were stored.
    """
    from tracker_jupyter.online.rest.client import Credentials, MlflowRest

    base_url = base_url or resolve("base_url", None, Settings())
    if not base_url:
        raise UsageError("login() needs a server: pass base_url= or set TRACKER_BASE_URL.")
    base_url, _ = server_url(base_url)
    if not api_key and username and not password:
        import getpass

        password = getpass.getpass(f"password for {username} at {base_url}: ")
    if api_key:
        entry, creds = {"token": api_key}, Credentials(token=api_key)
    elif username and password:
        entry, creds = {"username": username, "password": password}, Credentials(username, password)
    else:
        raise UsageError("login() needs api_key=, or username= (and password=, else it is asked for).")
    if verify:
        with MlflowRest(base_url, creds, timeout=INIT_TIMEOUT) as client:
            client.get_experiment_by_name("Default")  # any authenticated call: /health needs no login
    _store_credentials(base_url, entry)
    return True


# ------------------------------------------------------------------------------------ value mapping


def canonical(value: Any) -> str:
    """One string per value, so re-sending a param after a resume never looks like a change (7 vs 7.0)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def flatten_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_params(value, f"{name}."))
        else:
            out[name] = canonical(value)[:MAX_PARAM_VALUE]
    return out


def row_metrics(row: dict[str, Any]) -> Iterator[Metric]:
    from tracker_jupyter.online.rest.client import Metric

    step = int(row.get("_step", 0))
    timestamp = int(row.get("_timestamp", 0))
    for key, value in row.items():
        if key.startswith("_"):
            continue
        if isinstance(value, (int, float)):  # bools too (an int subclass): MLflow stores them as 0/1
            yield Metric(key, float(value), timestamp, step)


def _tag_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, allow_nan=True)
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 3] + "..."


# ---------------------------------------------------------------------------------------- the syncer


class RunSyncer:
    """Sends one run directory to the server, resuming from its ``sync.json`` cursor."""

    def __init__(self, run_dir: Path, client: MlflowRest, *, experiment_name: str | None = None) -> None:
        self.dir = run_dir
        self.client = client
        self.state: dict[str, Any] = store.read_json(run_dir / SYNC_STATE, {}) or {}
        self._experiment_name = experiment_name
        self.failures: dict[str, str] = {}  # metric key -> the server's reason, reported once
        self.last_error: str | None = None
        self.rows_synced = int(self.state.get("rows", 0))
        self._lock = threading.Lock()

    # ----- the MLflow run
    @property
    def mlflow_run_id(self) -> str | None:
        return self.state.get("mlflow_run_id")

    @property
    def url(self) -> str | None:
        return self.state.get("url")

    def _meta(self) -> dict[str, Any]:
        return store.read_json(self.dir / store.META, {}) or {}

    def ensure_run(self, meta: dict[str, Any] | None = None) -> str:
        """Find or create the MLflow run for this directory; records it in ``sync.json``."""
        meta = meta or self._meta()
        if self.state.get("server") == self.client.base_url and self.mlflow_run_id:
            self.client.workspace = self.state.get("workspace")
            return str(self.mlflow_run_id)
        if self.state.get("server") not in (None, self.client.base_url):
            self.state = {}  # synced to another server before: everything goes to this one from the start
            self.rows_synced = 0
        project = meta.get("project", "uncategorized")
        if self._experiment_name:
            workspace, name = None, self._experiment_name
        else:
            workspace, name = place(self.client, project, meta.get("entity"))
        self.client.workspace = workspace
        experiment_id = self.client.get_or_create_experiment(name)
        found = self.client.search_runs(
            [experiment_id], f"tags.`tracker.id` = '{meta['id']}'", max_results=1
        ).runs
        if found:
            info = found[0]["info"]
        else:
            info = self.client.create_run(
                experiment_id,
                run_name=meta.get("name"),
                start_time_ms=int(float(meta.get("start_time", time.time())) * 1000),
                tags=self._tags(meta),
            )["info"]
        self.state.update(
            server=self.client.base_url,
            workspace=workspace,
            experiment_id=experiment_id,
            mlflow_run_id=info["run_id"],
            artifact_uri=info["artifact_uri"],
            url=self.client.run_page_url(experiment_id, info["run_id"]),
        )
        self.state.setdefault("offset", 0)
        self.state.setdefault("generation", 0)
        self._save_state()
        return str(info["run_id"])

    def _tags(self, meta: dict[str, Any]) -> dict[str, str]:
        tags = {"tracker.id": str(meta["id"]), "mlflow.runName": str(meta.get("name") or meta["id"])}
        optional = {
            "mlflow.note.content": meta.get("notes"),
            "mlflow.user": meta.get("user"),
            "mlflow.source.name": meta.get("notebook") or meta.get("program"),
            "mlflow.source.type": "NOTEBOOK" if meta.get("notebook") else "LOCAL",
            "tracker.group": meta.get("group"),
            "tracker.job_type": meta.get("job_type"),
            "tracker.tags": ",".join(meta.get("tags") or []),
            "tracker.entity": meta.get("entity"),
        }
        git = meta.get("git") or {}
        optional.update(
            {
                "mlflow.source.git.commit": git.get("commit"),
                "mlflow.source.git.branch": git.get("branch"),
                "mlflow.source.git.repoURL": git.get("remote"),
            }
        )
        if meta.get("fork"):
            optional["tracker.fork_of"] = f"{meta['fork']['run_id']}?_step={meta['fork']['step']}"
        if meta.get("rewinds"):
            optional["tracker.rewinds"] = ",".join(str(r["step"]) for r in meta["rewinds"])
        tags.update({k: str(v)[:MAX_TAG_VALUE] for k, v in optional.items() if v not in (None, "")})
        return tags

    # ----- one pass
    def sync_once(self, *, final: bool = False, progress: Callable[[int], None] | None = None) -> int:
        """Send what is new; with ``final``, also files, summary and the end state. Returns rows sent."""
        with self._lock:
            meta = self._meta()
            run_id = self.ensure_run(meta)
            sent = self._sync_history(run_id, meta, progress)
            self._sync_params_and_tags(run_id, meta, final=final)
            if final:
                self._sync_files(run_id)
                self._finish(run_id, meta)
            self.last_error = None
            return sent

    def _sync_history(self, run_id: str, meta: dict[str, Any], progress: Callable[[int], None] | None) -> int:
        generation = len(meta.get("rewinds") or [])
        if self.state.get("generation", 0) != generation:
            # history.jsonl was rewritten by resume_from: send it again from the top; points the server
            # already has are identical (same timestamps) and stored once.
            self.state.update(generation=generation, offset=0)
        path = self.dir / store.HISTORY
        total = 0
        while True:
            rows, end = _read_rows(path, int(self.state.get("offset", 0)), ROWS_PER_BATCH)
            if not rows and end == self.state.get("offset"):
                return total
            metrics = [m for row in rows for m in row_metrics(row) if m.key not in self.failures]
            if metrics:
                for failure in self.client.log_batch(run_id, metrics=metrics):
                    if failure.key not in self.failures:
                        self.failures[failure.key] = failure.message
                        print(
                            f"tracker: the server refused metric {failure.key!r} of run {meta.get('id')}: "
                            f"{failure.message}; that key is kept locally and not sent again.",
                            file=sys.stderr,
                        )
            self.state["offset"] = end
            self.rows_synced += len(rows)
            self.state["rows"] = self.rows_synced
            self._save_state()
            total += len(rows)
            if progress is not None:
                progress(len(rows))

    def _sync_params_and_tags(self, run_id: str, meta: dict[str, Any], *, final: bool) -> None:
        config = store.read_json(self.dir / store.CONFIG, {}) or {}
        # params are immutable on the server: each key's first value, whenever this is synced
        params = flatten_params({**config, **(meta.get("config_first") or {})})
        # "param:key" / "tag:key" -> the value the server refused: not offered again until the value changes
        refused: dict[str, str] = self.state.setdefault("refused", {})
        sent_params: dict[str, str] = self.state.setdefault("params", {})
        new_params = {
            k: v for k, v in params.items() if k not in sent_params and refused.get(f"param:{k}") != v
        }
        tags = self._tags(meta)
        tags["tracker.config"] = _tag_json(config)
        if final:  # the summary changes with every row: sending it each pass would cost a request a pass
            tags["tracker.summary"] = _tag_json(store.read_json(self.dir / store.SUMMARY, {}) or {})
        sent_tags: dict[str, str] = self.state.setdefault("tags", {})
        new_tags = {k: v for k, v in tags.items() if sent_tags.get(k) != v and refused.get(f"tag:{k}") != v}
        if not new_params and not new_tags:
            return
        failures = self.client.log_batch(run_id, params=new_params, tags=new_tags)
        for failure in failures:
            item = f"{failure.kind}:{failure.key}"
            if item not in refused:
                print(
                    f"tracker: the server refused {failure.kind} {failure.key!r} of run {meta.get('id')}: "
                    f"{failure.message}; it is kept locally and not sent again.",
                    file=sys.stderr,
                )
            refused[item] = (new_params if failure.kind == "param" else new_tags).get(failure.key, "")
        now_refused = {f"{f.kind}:{f.key}" for f in failures}
        for kind, offered, sent in (("param", new_params, sent_params), ("tag", new_tags, sent_tags)):
            for key, value in offered.items():
                if f"{kind}:{key}" not in now_refused:
                    sent[key] = value
                    refused.pop(f"{kind}:{key}", None)
        self._save_state()

    def _sync_files(self, run_id: str) -> None:
        sent: dict[str, list[float]] = self.state.setdefault("files", {})
        uploads: list[tuple[str, Path]] = [
            ("config.json", self.dir / store.CONFIG),
            ("summary.json", self.dir / store.SUMMARY),
        ]
        for folder in ("files", "code"):
            base = self.dir / folder
            if base.is_dir():
                uploads += [
                    (p.relative_to(self.dir).as_posix(), p) for p in sorted(base.rglob("*")) if p.is_file()
                ]
        for tb in sorted(self.dir.glob("history.rewound-*.jsonl")):
            uploads.append((f"history/{tb.name}", tb))
        for relative, path in uploads:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            signature = [stat.st_size, stat.st_mtime]
            if sent.get(relative) == signature:
                continue
            self.client.upload_artifact(self.state["artifact_uri"], relative, path)
            sent[relative] = signature
            self._save_state()

    def _finish(self, run_id: str, meta: dict[str, Any]) -> None:
        state = store.run_state(self.dir, meta)
        if state == "running":
            return
        status = STATUS[state]
        if self.state.get("status") == status:
            return
        end = meta.get("end_time") or meta.get("updated_at") or time.time()
        self.client.update_run(run_id, status, end_time_ms=int(float(end) * 1000), run_name=meta.get("name"))
        self.state["status"] = status
        self._save_state()

    def pending_rows(self) -> int:
        """Complete rows in the history not yet sent (counted from the cursor)."""
        return store.count_rows(self.dir / store.HISTORY, int(self.state.get("offset", 0)))

    def _save_state(self) -> None:
        store.write_json_atomic(self.dir / SYNC_STATE, self.state)


def _read_rows(path: Path, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Rows of complete lines from byte ``offset`` until at least ``limit``, and the offset after them."""
    rows: list[dict[str, Any]] = []
    position = offset
    for line_rows, position in store.iter_lines(path, offset):  # noqa: B007 - the last one is what counts
        rows.extend(line_rows)
        if len(rows) >= limit:
            break
    return rows, position


def experiment_name(project: str, entity: str | None) -> str:
    """The MLflow experiment of a project: ``project``, or ``entity/project`` when an entity is given."""
    return f"{entity}/{project}" if entity else project


_told_no_workspace: set[tuple[str, str]] = set()


def place(client: MlflowRest, project: str, entity: str | None) -> tuple[str | None, str]:
    """Where a project's runs go on the server: ``(workspace, experiment name)``.

    An entity that names an MLflow workspace of the server is that workspace (experiment ``project`` in
    it); otherwise, and on servers without workspaces, the experiment ``entity/project`` of the default
    workspace. A server with workspaces but none named after the entity says so once.
    """
    if not entity:
        return None, project
    exists = client.workspace_exists(entity)
    if exists:
        return entity, project
    if exists is False and (client.base_url, entity) not in _told_no_workspace:
        _told_no_workspace.add((client.base_url, entity))
        print(
            f"tracker: {client.base_url} has no workspace {entity!r}; using the experiment "
            f"{experiment_name(project, entity)!r} of its default workspace (ask an admin to create the "
            "workspace to keep the team's runs there).",
            file=sys.stderr,
        )
    return None, experiment_name(project, entity)


# ------------------------------------------------------------------------------------- live runs


class LiveSync:
    """The background thread of an online run: syncs every ``interval`` seconds, retries with backoff."""

    def __init__(
        self, run: Run, syncer: RunSyncer, *, timeout: float, silent: bool, interval: float = 1.0
    ) -> None:
        self.run = run
        self.syncer = syncer
        self.timeout = timeout
        self.silent = silent
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stopped_on_auth = False
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name=f"tracker-sync-{run.id}", daemon=True)
        self._thread.start()

    def status(self) -> dict[str, Any]:
        return {
            "url": self.syncer.url,
            "synced": self.syncer.rows_synced,
            "pending": self.syncer.pending_rows(),
            "last_error": self.syncer.last_error,
        }

    def _loop(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.syncer.sync_once()
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
        if not self._warned and not self.silent:
            self._warned = True
            print(
                f"tracker: sync to {self.syncer.client.base_url} failed ({exc}); the data stays in "
                f"{self.syncer.dir} and is retried (or run: tracker sync {shlex.quote(str(self.syncer.dir))})",
                file=sys.stderr,
            )

    def finish(self, run: Run) -> None:
        """After the writer closed: send the rest, files and end state, waiting at most ``timeout``."""
        deadline = time.monotonic() + self.timeout  # one budget for the running pass and the last one
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.timeout)
        done = threading.Event()
        error: list[BaseException] = []

        def final() -> None:
            # Keep trying until the deadline: a server that is restarting gets the time finish() allows.
            pause = 0.5
            try:
                while True:
                    try:
                        self.syncer.sync_once(final=True)
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

        if not self._stopped_on_auth:
            worker = threading.Thread(target=final, name=f"tracker-sync-final-{run.id}", daemon=True)
            worker.start()
            done.wait(max(0.0, deadline - time.monotonic()) + 1.0)
        pending = self.syncer.pending_rows()
        run._meta["sync"] = self.status()
        if error or not done.is_set() or pending or self._stopped_on_auth:
            reason = (
                f": {error[0]}"
                if error
                else (f": {self.syncer.last_error}" if self.syncer.last_error else "")
            )
            left = f"{pending} rows pending" if pending else "files or the final state not sent"
            print(
                f"tracker: run {run.id} is not fully synced to {self.syncer.client.base_url} ({left}{reason}). "
                f"Everything is in {self.syncer.dir}; finish with: tracker sync {shlex.quote(str(self.syncer.dir))}",
                file=sys.stderr,
            )
        self.syncer.client.close()


def live_client(base_url: str, credentials: Credentials) -> MlflowRest:
    """A client for work beside the user's code (the background syncer, the runs dashboard): short connect
    timeout, reads up to 30 s, and few retries per call, since the syncer retries whole passes itself, with
    its own backoff, and notes the error at once for the widget."""
    from tracker_jupyter.online.rest.client import MlflowRest, RetryPolicy, Timeout

    return MlflowRest(
        base_url,
        credentials,
        timeout=Timeout(connect=INIT_TIMEOUT, read=30.0),
        retry=RetryPolicy(max_attempts=2, backoff_initial=0.5, deadline=INIT_TIMEOUT),
    )


def start(
    run: Run, *, settings: Settings, base_url: str, force: bool, anonymous: str | None, silent: bool
) -> None:
    """Connect an online run to the server, or fall back to offline (unless ``force``)."""
    from tracker_jupyter.online.rest.client import NO_RETRY, MlflowRest, Timeout

    base_url, from_url = server_url(base_url)
    # anonymous='never' without credentials is refused (AuthenticationError), online or forced alike
    credentials = credentials_for(base_url, settings, anonymous, from_url)
    client = live_client(base_url, credentials)
    live_timeout = client.timeout
    client.timeout = Timeout(
        INIT_TIMEOUT, INIT_TIMEOUT
    )  # while init() waits: a stalled server must not hang it
    syncer = RunSyncer(run._run_dir, client)
    try:
        probe = MlflowRest(base_url, credentials, timeout=INIT_TIMEOUT, retry=NO_RETRY)
        with probe:
            probe.health()
        syncer.ensure_run(run._meta)
    except (CommError, OSError) as exc:
        client.close()
        if force:
            raise
        _fall_back(run, base_url, str(exc), silent)
        return
    client.timeout = live_timeout
    run._meta["url"] = syncer.url
    run._meta["mlflow_run_id"] = syncer.mlflow_run_id
    run._sink.mark_meta()
    timeout = float(resolve("sync_timeout", None, settings))
    live = LiveSync(run, syncer, timeout=timeout, silent=silent)
    run._sync_status = live.status  # type: ignore[attr-defined]
    run.on_closed(live.finish)


def _fall_back(run: Run, base_url: str, reason: str, silent: bool) -> None:
    run._meta["mode"] = "offline"
    run._meta["offline_reason"] = f"{base_url}: {reason}"
    run._sink.mark_meta()
    if not silent:
        print(f"tracker: cannot use {base_url} ({reason}); logging offline.", file=sys.stderr)


# ------------------------------------------------------------------------------------ tracker sync


def _run_dirs(paths: list[str], root: Path) -> list[Path]:
    if not paths:
        from tracker_jupyter.api import Api

        return [r.dir for r in Api(root).runs()]
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
