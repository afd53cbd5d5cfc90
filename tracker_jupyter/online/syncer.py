"""``RunSyncer``: sends one run directory to the server, resuming from its durable cursor.

The cursor is ``sync.json`` in the run directory: the MLflow run, the byte offset of ``history.jsonl``
already sent, the params, tags and files already sent. Metric points carry the timestamps stamped at
``log()``, so sending a row twice stores it once: a crash between a write and the cursor update costs
nothing. The same code serves a live run (``live``), ``tracker sync`` (``upload``) and the background
uploader (``uploader``). Each pass holds the run's ``sync.lock`` and reads ``sync.json`` afresh under it,
so whichever of them sends next starts where the last one stopped, and no two send the same rows.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter import store
from tracker_jupyter.core.report import log
from tracker_jupyter.exceptions import AuthenticationError, CommError
from tracker_jupyter.online.artifacts import ArtifactSync
from tracker_jupyter.online.mapping import (
    EXPERIMENT_KIND_TRAINING,
    STATUS,
    TABLE_SUFFIX,
    TAG_CONFIG,
    TAG_EXPERIMENT_KIND,
    TAG_LOGGED_ARTIFACTS,
    TAG_SUMMARY,
    TAG_TAG,
    flatten_params,
    logged_tables,
    mlflow_table,
    place,
    row_metrics,
    run_filter,
    run_tags,
    tag_json,
)
from tracker_jupyter.store.artifacts import ArtifactStore
from tracker_jupyter.store.locks import FileLock

if TYPE_CHECKING:
    from tracker_jupyter.online.rest.client import MlflowRest

SYNC_STATE = "sync.json"
SYNC_LOCK = "sync.lock"  # held for one sync pass: the live run, tracker sync and the uploader take turns
CREATE_ATTEMPTS = 4  # runs/create, each after looking for the run once more


class SyncBusy(CommError):
    """Another process (``tracker sync`` or the background uploader) is sending this run right now."""


class SyncCancelled(CommError):
    """The pass was told to stop (``RunSyncer.cancel``) after its last accepted request."""


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
        self._file_lock = FileLock(run_dir / SYNC_LOCK)
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop the pass under way after its current request, and every later one (they raise
        ``SyncCancelled``); the cursor says exactly what was sent, so whoever sends next resumes there."""
        self._cancel.set()

    def _check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise SyncCancelled(f"the sync of {self.dir} was handed on; the cursor is saved.")

    @contextlib.contextmanager
    def locked(self, wait: float | None = None) -> Iterator[None]:
        """Hold the run's ``sync.lock`` (waiting up to ``wait`` seconds; ``None``: as long as it takes) and
        read ``sync.json`` afresh: another process may have sent rows since this one last did."""
        with self._lock:
            if not self._file_lock.acquire(wait):
                holder = self._file_lock.holder()
                raise SyncBusy(f"{self.dir} is being sent by process {holder}; it is tried again later.")
            try:
                self.state = store.read_json(self.dir / SYNC_STATE, {}) or {}
                self.rows_synced = int(self.state.get("rows", 0))
                yield
            finally:
                self._file_lock.release()

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
        experiment_id = self.client.get_or_create_experiment(
            name, defaults={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND_TRAINING}
        )
        found = self._find_or_create(experiment_id, meta)
        info = found["info"]
        on_server = {t["key"]: t.get("value", "") for t in found.get("data", {}).get("tags", [])}
        # the per-tag keys the server has: one taken off the run is deleted there at the next pass
        self.state.setdefault("tags", {}).update(
            {k: v for k, v in on_server.items() if k.startswith(TAG_TAG)}
        )
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

    def _find_or_create(self, experiment_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        """The run's MLflow run (``info`` and ``data``): found by its key, else created, at most once.

        ``runs/create`` is sent without the transport's retries: when its answer is lost, the run may exist
        all the same, so it is looked for again before another create.
        """
        from tracker_jupyter.online.rest.client import NO_RETRY

        wanted = run_filter(meta)
        pause = 0.5
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            found = self.client.search_runs([experiment_id], wanted, max_results=1).runs
            if found:
                return dict(found[0])
            try:
                created = self.client.create_run(
                    experiment_id, run_name=meta.get("name"),
                    start_time_ms=int(float(meta.get("start_time", time.time())) * 1000), tags=run_tags(meta),
                    retry=NO_RETRY,
                )  # fmt: skip
                return dict(created)
            except AuthenticationError:
                raise
            except CommError:
                if attempt == CREATE_ATTEMPTS:
                    raise
                time.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    # ----- one pass
    def sync_once(
        self, *, final: bool = False, progress: Callable[[int], None] | None = None, wait: float | None = None
    ) -> int:
        """Send what is new; with ``final``, also files, summary and the end state. Returns rows sent.

        ``wait``: seconds to wait for another process's pass on this run to end (``SyncBusy`` after)."""
        with self.locked(wait):
            meta = self._meta()
            run_id = self.ensure_run(meta)
            sent = self._sync_history(run_id, meta, progress)
            self._sync_system(run_id, meta)
            self._sync_params_and_tags(run_id, meta, final=final)
            if meta.get("logged_artifacts") or meta.get("used_artifacts"):
                self._artifacts().sync(run_id, str(self.state["artifact_uri"]), meta)
            if final:
                self._sync_files(run_id)
                self._finish(run_id, meta)
            else:
                self._sync_saved(meta)
            self.last_error = None
            return sent

    def _sync_history(self, run_id: str, meta: dict[str, Any], progress: Callable[[int], None] | None) -> int:
        generation = len(meta.get("rewinds") or [])
        if self.state.get("generation", 0) != generation:
            # history.jsonl was rewritten by resume_from: send it again from the top; points the server
            # already has are identical (same timestamps) and stored once.
            self.state.update(generation=generation, offset=0)
        path = self.dir / store.HISTORY
        if int(self.state.get("offset", 0)) > store.content_size(path):
            # the history is shorter than what sync.json says was sent (cut, or restored from a backup):
            # send it again from the top; the server keeps each point (same step and timestamp) once
            log(
                "%s is shorter than sync.json says was sent; sending run %s's history again from the start",
                path, meta.get("id"),
            )  # fmt: skip
            self.state["offset"] = 0
            self.rows_synced = 0
        return self._send_lines(run_id, meta, path, "offset", progress)

    def _send_lines(self, run_id: str, meta: dict[str, Any], path: Path, cursor: str,
                    progress: Callable[[int], None] | None = None, *, counted: bool = True) -> int:  # fmt: skip
        """Send the rows of ``path`` from its cursor (``self.state[cursor]``), one log-batch request's worth
        of whole lines at a time, the cursor saved after each: an exit, a kill or a timeout re-sends at most
        one request, and what is pending is counted exactly. ``counted`` rows are the history's (``rows``
        in ``sync.json``, the progress bar). Returns the rows sent."""
        limit = self.client.batch_limits.metrics
        batch: list[Any] = []
        total, batch_rows, end = 0, 0, int(self.state.get(cursor, 0))
        for line_rows, line_end in store.iter_lines(path, end):
            metrics = [m for row in line_rows for m in row_metrics(row) if m.key not in self.failures]
            if batch and len(batch) + len(metrics) > limit:
                total += self._send_rows(run_id, meta, batch, batch_rows, (cursor, end), progress, counted)
                batch, batch_rows = [], 0
            batch += metrics
            batch_rows += len(line_rows)
            end = line_end
        if batch_rows or end != self.state.get(cursor, 0):
            total += self._send_rows(run_id, meta, batch, batch_rows, (cursor, end), progress, counted)
        return total

    def _send_rows(self, run_id: str, meta: dict[str, Any], metrics: list[Any], rows: int,
                   cursor: tuple[str, int], progress: Callable[[int], None] | None, counted: bool) -> int:  # fmt: skip
        self._check_cancelled()
        if metrics:
            for failure in self.client.log_batch(run_id, metrics=metrics):
                if failure.key not in self.failures:
                    self.failures[failure.key] = failure.message
                    log(
                        "the server refused metric %r of run %s: %s; that key is kept locally and not "
                        "sent again.", failure.key, meta.get("id"), failure.message,
                    )  # fmt: skip
        self.state[cursor[0]] = cursor[1]
        if counted:
            self.rows_synced += rows
            self.state["rows"] = self.rows_synced
        self._save_state()
        if counted and progress is not None and rows:
            progress(rows)
        return rows

    def _sync_system(self, run_id: str, meta: dict[str, Any]) -> None:
        """System metrics samples, as MLflow's ``system/...`` metrics (its System Metrics tab), each at its
        sample number and time, from their own cursor."""
        path = self.dir / store.SYSTEM
        if path.is_file():
            self._send_lines(run_id, meta, path, "system_offset", counted=False)

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
        tags = run_tags(meta)
        tags[TAG_CONFIG] = tag_json(config)
        if final:  # the summary changes with every row: sending it each pass would cost a request a pass
            tags[TAG_SUMMARY] = tag_json(store.read_json(self.dir / store.SUMMARY, {}) or {})
        sent_tags: dict[str, str] = self.state.setdefault("tags", {})
        for key in [
            k for k in sent_tags if k.startswith(TAG_TAG) and k not in tags
        ]:  # a tag taken off the run
            self.client.delete_tag(run_id, key)
            del sent_tags[key]
            self._save_state()
        new_tags = {k: v for k, v in tags.items() if sent_tags.get(k) != v and refused.get(f"tag:{k}") != v}
        if not new_params and not new_tags:
            return
        failures = self.client.log_batch(run_id, params=new_params, tags=new_tags)
        for failure in failures:
            item = f"{failure.kind}:{failure.key}"
            if item not in refused:
                log(
                    "the server refused %s %r of run %s: %s; it is kept locally and not sent again.",
                    failure.kind, failure.key, meta.get("id"), failure.message,
                )  # fmt: skip
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
        tables = [relative for relative, _ in uploads if relative.endswith(TABLE_SUFFIX)]
        for relative, path in uploads:
            self._upload_changed(relative, path, sent)
        if tables and self.state.get("tables") != tables:
            self.client.log_batch(run_id, tags={TAG_LOGGED_ARTIFACTS: logged_tables(tables)})
            self.state["tables"] = tables
            self._save_state()

    def _artifacts(self) -> ArtifactSync:
        return ArtifactSync(self.client, self.state, ArtifactStore(self.dir.parent.parent), self._save_state)

    def _sync_saved(self, meta: dict[str, Any]) -> None:
        """While the run is live: files ``run.save()`` recorded with ``policy`` ``live`` (again whenever
        they change) or ``now`` (once); ``end`` files, like everything else, go at finish."""
        sent: dict[str, list[float]] = self.state.setdefault("files", {})
        for relative, policy in (meta.get("saved_files") or {}).items():
            if policy == "end" or (policy == "now" and relative in sent):
                continue
            self._upload_changed(relative, self.dir / relative, sent)

    def _upload_changed(self, relative: str, path: Path, sent: dict[str, list[float]]) -> None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        signature = [stat.st_size, stat.st_mtime]
        if sent.get(relative) == signature:
            return
        self._check_cancelled()
        if relative.endswith(TABLE_SUFFIX):
            self._upload_table(relative, path)
        else:
            self.client.upload_artifact(self.state["artifact_uri"], relative, path)
        sent[relative] = signature
        self._save_state()

    def _upload_table(self, relative: str, path: Path) -> None:
        """A table in the JSON MLflow's own ``log_table`` writes, so its UI and ``load_table`` read it."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            converted = Path(tmp) / path.name
            converted.write_bytes(mlflow_table(path.read_text(encoding="utf-8")))
            self.client.upload_artifact(self.state["artifact_uri"], relative, converted)

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

    def done(self) -> bool:
        """Everything sent: every row, and the run's end state (so its files and summary too)."""
        return self.pending_rows() == 0 and self.state.get("status") is not None

    def _save_state(self) -> None:
        store.write_json_atomic(self.dir / SYNC_STATE, self.state)


def pending_rows(run_dir: Path) -> int:
    """Complete rows of a run's history not yet sent, from its saved cursor."""
    state = store.read_json(run_dir / SYNC_STATE, {}) or {}
    offset = state.get("offset", 0) if isinstance(state, dict) else 0
    return store.count_rows(run_dir / store.HISTORY, int(offset or 0))
