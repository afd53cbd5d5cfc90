"""A small client for the REST API of an MLflow Tracking Server.

Only online mode imports this module, so ``requests`` is imported at the top. Every call goes through
``transport.Transport.send`` (retries) and ``errors.error_for`` (the one place where an HTTP answer
becomes one of :mod:`tracker_jupyter.exceptions`; value objects are in ``values``, the log-batch packing
in ``batch``):

- 401 and 403 become :class:`~tracker_jupyter.exceptions.AuthenticationError`;
- 400 ``INVALID_PARAMETER_VALUE`` / ``RESOURCE_ALREADY_EXISTS`` become
  :class:`~tracker_jupyter.exceptions.UsageError` (the request itself was wrong);
- everything else, and network failures, become :class:`~tracker_jupyter.exceptions.CommError`.

408, 429 and 5xx answers and connection failures are retried with capped, jittered exponential backoff
(``Retry-After`` is honoured); other 4xx answers never are.

Facts about the server this relies on (checked against MLflow 3.17):

- a JSON ``NaN`` token in a metric value is stored as value 0 at step 0 and timestamp 0, without an
  error; non-finite values must be sent as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
  (infinities are stored clamped to +-1.8e308);
- ``runs/update`` with an unknown status answers 200 and changes nothing, so statuses are checked here;
- ``runs/create`` without ``start_time`` records 0, so a start time is always sent;
- ``experiments/get-by-name`` also returns deleted experiments, whose name cannot be reused;
- ``runs/log-batch`` may write part of a batch before refusing the rest; replaying is safe because
  identical metric points are deduplicated, identical params are accepted and tags are overwritten.
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from tracker_jupyter.exceptions import CommError, UsageError
from tracker_jupyter.online.rest.batch import (
    BatchState,
    Item,
    batch_body,
    dump_json,
    key_value_item,
    key_values,
    metric_item,
    pack_batches,
    record_failure,
)
from tracker_jupyter.online.rest.errors import (
    Refusal,
    comm_error_from_exception,
    parse_refusal,
)
from tracker_jupyter.online.rest.registry import RegistryEndpoints
from tracker_jupyter.online.rest.transport import Transport, split_base_url
from tracker_jupyter.online.rest.values import (
    BATCH_LIMITS,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    NO_RETRY,
    ArtifactData,
    BatchLimits,
    Credentials,
    ItemFailure,
    ItemKind,
    JsonObject,
    Metric,
    RetryPolicy,
    RunsPage,
    Timeout,
)

__all__ = [
    "BATCH_LIMITS",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "NO_RETRY",
    "BatchLimits",
    "Credentials",
    "ItemFailure",
    "Metric",
    "MlflowRest",
    "RetryPolicy",
    "RunsPage",
    "Timeout",
    "split_base_url",
]

ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts/artifacts"
RUN_STATUSES = frozenset({"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"})
# The server's maximum page size for get-history; above it the request is refused.
MAX_HISTORY_PAGE = 25_000


# --------------------------------------------------------------------------------------------------
# The client


class MlflowRest(RegistryEndpoints, Transport):
    """A client for one MLflow Tracking Server: the endpoints tracker_jupyter calls.

    It is built like its ``Transport`` (the server URL, credentials, session, timeout, retry policy,
    sleep and log-batch limits), which sends every request.
    """

    # ---- workspaces -------------------------------------------------------------------------------

    def workspace_exists(self, name: str) -> bool | None:
        """Whether the server has the MLflow workspace ``name``; None when it has no workspaces at all
        (started without ``--enable-workspaces``, or older than MLflow 3.10)."""
        url = f"{self._base_url}/api/3.0/mlflow/workspaces/{quote(name, safe='')}"
        what = f"look up workspace {name!r}"
        sent = self.send("GET", url, what=what, retry=NO_RETRY)
        status = sent.response.status_code
        if status == 200:
            return True
        refusal = parse_refusal(sent.response)
        if status == 404 and refusal.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        if status == 401:  # the credentials: every later call would be refused too
            raise self._error(sent, what=what, method="GET", url=url, refusal=refusal)
        # 503 "disabled because the server is running without workspaces", no such endpoint, or 403 (no
        # permission to see workspaces): not a workspace these credentials can log to
        return None

    # ---- experiments ------------------------------------------------------------------------------

    def health(self) -> None:
        """Check that the server answers ``GET /health``, with a single attempt.

        ``/health`` needs no login, so this proves the server is up, not that the credentials work.

        Raises
        ------
        CommError
            The server cannot be reached or does not answer 200.
        """
        url = f"{self._base_url}/health"
        what = "answer a health check"
        sent = self.send("GET", url, what=what, retry=NO_RETRY)
        if sent.response.status_code != 200:
            raise self._error(sent, what=what, method="GET", url=url)

    def get_experiment_by_name(self, name: str) -> JsonObject | None:
        """The experiment called ``name`` (MLflow JSON, deleted ones included), or None if there is none."""
        result = self._call(
            "GET",
            "experiments/get-by-name",
            params={"experiment_name": name},
            what=f"look up experiment {name!r}",
            tolerate=("RESOURCE_DOES_NOT_EXIST",),
        )
        return None if isinstance(result, Refusal) else result["experiment"]

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> str:
        """Create an experiment and return its id.

        Raises
        ------
        UsageError
            An experiment with this name exists already (use :meth:`get_or_create_experiment`).
        """
        result = self._create_experiment(name, tags, tolerate=())
        assert result is not None
        return result

    def get_or_create_experiment(
        self, name: str, tags: Mapping[str, str] | None = None, defaults: Mapping[str, str] | None = None
    ) -> str:
        """Return the id of the experiment called ``name``, creating it if needed.

        Safe when several processes do this at once: losing the creation race reads the winner's id.
        ``tags`` are set only when this call creates the experiment; ``defaults`` are set when the
        experiment (new or not) has no value for them.

        Raises
        ------
        UsageError
            The experiment exists but is deleted (its name cannot be reused until it is restored).
        """
        experiment = self.get_experiment_by_name(name)
        if experiment is None:
            created = self._create_experiment(name, {**(defaults or {}), **(tags or {})},
                                              tolerate=("RESOURCE_ALREADY_EXISTS",))  # fmt: skip
            if created is not None:
                return created
            experiment = self.get_experiment_by_name(name)
            if experiment is None:
                raise CommError(
                    f"MLflow server reported experiment {name!r} as existing but does not return it "
                    f"({self._base_url}). Check the server's logs.",
                    url=self._base_url,
                )
        if experiment.get("lifecycle_stage") == "deleted":
            raise UsageError(
                f"Experiment {name!r} (id {experiment.get('experiment_id')}) is deleted on "
                f"{self._base_url}, and MLflow does not reuse the names of deleted experiments. Restore it "
                "in the MLflow UI or with `mlflow experiments restore`, or choose another project name."
            )
        present = {t.get("key") for t in experiment.get("tags", [])}
        for key, value in (defaults or {}).items():
            if key not in present:
                self.set_experiment_tag(str(experiment["experiment_id"]), key, value)
        return str(experiment["experiment_id"])

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._request_json("POST", "experiments/set-experiment-tag",
                           body={"experiment_id": experiment_id, "key": key, "value": value},
                           what=f"tag experiment {experiment_id}")  # fmt: skip

    def _create_experiment(
        self, name: str, tags: Mapping[str, str] | None, tolerate: Collection[str]
    ) -> str | None:
        body: JsonObject = {"name": name}
        if tags:
            body["tags"] = key_values(tags)
        result = self._call(
            "POST", "experiments/create", body=body, what=f"create experiment {name!r}", tolerate=tolerate
        )
        return None if isinstance(result, Refusal) else str(result["experiment_id"])

    # ---- runs -------------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        start_time_ms: int | None = None,
        tags: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> JsonObject:
        """Create a run and return it (MLflow JSON with ``info`` and ``data``).

        ``info.run_id`` and ``info.artifact_uri`` are what later calls need. ``start_time_ms`` defaults
        to now (the server would record 0). A retry after a lost answer can create a second run; callers
        that must avoid that pass ``retry=NO_RETRY``, tag the run with their own key and look for it with
        :meth:`search_runs` before creating it again (``online.syncer`` does).
        """
        body: JsonObject = {
            "experiment_id": str(experiment_id),
            "start_time": int(time.time() * 1000) if start_time_ms is None else int(start_time_ms),
            "tags": key_values(tags),
        }
        if run_name is not None:
            body["run_name"] = run_name
        result = self._request_json(
            "POST", "runs/create", body=body, what=f"create a run in experiment {experiment_id}", retry=retry
        )
        run: JsonObject = result["run"]
        return run

    def update_run(
        self, run_id: str, status: str, end_time_ms: int | None = None, run_name: str | None = None
    ) -> JsonObject:
        """Set a run's status (``RUNNING``, ``SCHEDULED``, ``FINISHED``, ``FAILED``, ``KILLED``), end time and
        name; return the updated ``run_info``.
        """
        if status not in RUN_STATUSES:
            # The server answers 200 to an unknown status and keeps the old one.
            raise UsageError(f"update_run: status must be one of {sorted(RUN_STATUSES)}, got {status!r}.")
        body: JsonObject = {"run_id": run_id, "status": status}
        if end_time_ms is not None:
            body["end_time"] = int(end_time_ms)
        if run_name is not None:
            body["run_name"] = run_name
        result = self._request_json("POST", "runs/update", body=body, what=f"update run {run_id}")
        info: JsonObject = result["run_info"]
        return info

    def get_run(self, run_id: str) -> JsonObject:
        """The run (MLflow JSON with ``info`` and ``data``: latest metrics, params, tags)."""
        result = self._request_json("GET", "runs/get", params={"run_id": run_id}, what=f"read run {run_id}")
        run: JsonObject = result["run"]
        return run

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        max_results: int = 1000,
        page_token: str | None = None,
        order_by: Sequence[str] = (),
    ) -> RunsPage:
        """One page of runs matching an MLflow filter (e.g. ``"tags.`tracker.id` = 'abc'"``).

        Pass the returned ``next_page_token`` back as ``page_token`` for the next page; it is None on the
        last one.
        """
        body: JsonObject = {
            "experiment_ids": [str(e) for e in experiment_ids],
            "filter": filter_string,
            "max_results": int(max_results),
        }
        if page_token:
            body["page_token"] = page_token
        if order_by:
            body["order_by"] = list(order_by)
        result = self._request_json("POST", "runs/search", body=body, what="search runs")
        return RunsPage(list(result.get("runs", [])), result.get("next_page_token") or None)

    # ---- logging ----------------------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> list[ItemFailure]:
        """Write metrics, params and tags to a run, in as many requests as the server's limits need.

        A request refused as invalid is split in halves until the refused items are found; everything
        else is still written. Once a key has been refused, its other items in this call are sent
        together in one request and, if that is refused too, counted in the same failure. Replaying a
        call is safe: identical metric points are stored once, identical params are accepted.

        Parameters
        ----------
        run_id : str
            The run to write to.
        metrics : iterable of Metric
            Metric points; their timestamps should be fixed when the value was logged.
        params : mapping of str to str
            Params; MLflow keeps the first value of a key and refuses a different one.
        tags : mapping of str to str
            Tags; a later value replaces an earlier one.

        Returns
        -------
        list of ItemFailure
            One entry per refused (kind, key), in the order they were found; empty when all was written.

        Raises
        ------
        UsageError
            The run refuses every write (for example it was deleted).
        CommError
            The server could not be reached or failed, after retries.
        """
        state = BatchState()
        items: list[Item] = []
        for key, value in (params or {}).items():
            items.append(key_value_item("param", key, value))
        for key, value in (tags or {}).items():
            items.append(key_value_item("tag", key, value))
        for metric in metrics:
            item = metric_item(metric)
            if isinstance(item, ItemFailure):
                record_failure(state, item.kind, item.key, item.message, 1)
            else:
                items.append(item)
        room = self.batch_limits.body_bytes - len(dump_json(batch_body(run_id, []))) - 1
        sendable = []
        for item in items:
            if item.size > room:
                message = f"not sent: {item.size} bytes is more than one request may carry"
                record_failure(state, item.kind, item.key, message, 1)
            else:
                sendable.append(item)
        for chunk in pack_batches(run_id, sendable, self.batch_limits):
            self._deliver(run_id, chunk, state)
        return list(state.failures.values())

    def _deliver(self, run_id: str, chunk: list[Item], state: BatchState) -> None:
        # Items of keys already refused go apart, one request per key, so a key that fails at every
        # step costs one request instead of a bisection over all its points.
        fresh = [item for item in chunk if item.ident not in state.failures]
        by_key: dict[tuple[ItemKind, str], list[Item]] = {}
        for item in chunk:
            if item.ident in state.failures:
                by_key.setdefault(item.ident, []).append(item)
        for (kind, key), group in by_key.items():
            message = self._post_batch(run_id, group, state)
            if message is not None:
                record_failure(state, kind, key, message, len(group))
        if not fresh:
            return
        message = self._post_batch(run_id, fresh, state)
        if message is None:
            return
        if len(fresh) == 1:
            record_failure(state, fresh[0].kind, fresh[0].key, message, 1)
            return
        middle = len(fresh) // 2
        self._deliver(run_id, fresh[:middle], state)
        self._deliver(run_id, fresh[middle:], state)

    def _post_batch(self, run_id: str, items: Sequence[Item], state: BatchState) -> str | None:
        """Send one batch; None when written, the server's message when refused as invalid."""
        what = f"log a batch to run {run_id}"
        result = self._call(
            "POST",
            "runs/log-batch",
            body=batch_body(run_id, items),
            what=what,
            tolerate=("INVALID_PARAMETER_VALUE",),
        )
        if not isinstance(result, Refusal):
            return None
        if not state.run_accepts_writes:
            # Tell a refused item from a run that refuses everything (deleted, ...): an empty batch
            # passes the run checks only. This raises when the run itself is the problem.
            self._request_json("POST", "runs/log-batch", body={"run_id": run_id}, what=what)
            state.run_accepts_writes = True
        return result.message

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Set one tag on a run (replacing its value)."""
        self._request_json(
            "POST",
            "runs/set-tag",
            body={"run_id": run_id, "key": key, "value": value},
            what=f"set tag {key!r}",
        )

    def delete_tag(self, run_id: str, key: str, missing_ok: bool = True) -> None:
        """Delete a tag from a run; with ``missing_ok`` a tag that is not there is not an error."""
        what = f"delete tag {key!r} of run {run_id}"
        result = self._call(
            "POST",
            "runs/delete-tag",
            body={"run_id": run_id, "key": key},
            what=what,
            tolerate=("RESOURCE_DOES_NOT_EXIST",) if missing_ok else (),
        )
        if isinstance(result, Refusal):
            # The same code means "no such run": make sure the run exists (this raises otherwise).
            self.get_run(run_id)

    def get_metric_history(self, run_id: str, key: str, page_size: int = MAX_HISTORY_PAGE) -> list[Metric]:
        """Every point of metric ``key`` in a run, following page tokens."""
        points: list[Metric] = []
        page_token: str | None = None
        while True:
            params: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": int(page_size)}
            if page_token:
                params["page_token"] = page_token
            result = self._request_json(
                "GET", "metrics/get-history", params=params, what=f"read the history of metric {key!r}"
            )
            for raw in result.get("metrics", []):
                # Non-finite values come back as the strings "NaN", "Infinity", "-Infinity".
                points.append(
                    Metric(raw["key"], float(raw["value"]), int(raw["timestamp"]), int(raw.get("step", 0)))
                )
            page_token = result.get("next_page_token") or None
            if not page_token:
                return points

    # ---- artifacts and links ----------------------------------------------------------------------

    def upload_artifact(self, artifact_uri: str, relative_path: str, data: ArtifactData) -> None:
        """Upload one file into a run's artifacts.

        Parameters
        ----------
        artifact_uri : str
            The run's ``info.artifact_uri`` (``mlflow-artifacts:/<exp>/<run>/artifacts`` or
            ``mlflow-artifacts://host/...``), which the server resolves under its artifacts destination.
        relative_path : str
            Where to put the file under the run's artifacts, ``/``-separated (``code/notebook.ipynb``).
        data : bytes, os.PathLike or binary file object
            The content; files are streamed, not read into memory.
        """
        if isinstance(data, str):
            raise UsageError(
                "upload_artifact: pass bytes, a pathlib.Path or a binary file object; a str is ambiguous."
            )
        url = self._artifact_url(artifact_uri, relative_path)
        headers = {"Content-Type": mimetypes.guess_type(relative_path)[0] or "application/octet-stream"}
        what = f"upload artifact {relative_path!r}"
        if isinstance(data, (bytes, bytearray, memoryview)):
            self._put(url, bytes(data), headers, what)
        elif isinstance(data, os.PathLike):
            with open(data, "rb") as handle:
                self._put(url, handle, headers, what)
        else:
            self._put(url, data, headers, what)

    def list_artifacts(self, run_id: str, path: str = "") -> list[JsonObject]:
        """The files and folders directly under ``path`` in a run's artifacts (``path``, ``is_dir``,
        ``file_size``)."""
        params = {"run_id": run_id, **({"path": path} if path else {})}
        result = self._request_json(
            "GET", "artifacts/list", params=params, what=f"list artifacts of {run_id}"
        )
        return list(result.get("files", []))

    def download_artifact(self, artifact_uri: str, relative_path: str, target: os.PathLike[str] | str) -> int:
        """Download one file of a run's artifacts to ``target`` (streamed; whole or not at all). Returns its
        size; a missing file is a ``UsageError``."""
        url = self._artifact_url(artifact_uri, relative_path)
        what = f"download artifact {relative_path!r}"
        sent = self.send("GET", url, what=what, stream=True)
        response = sent.response
        if response.status_code == 404:
            response.close()
            raise UsageError(f"the server has no artifact file {relative_path!r} under {artifact_uri}.")
        if not response.ok:
            raise self._error(sent, what=what, method="GET", url=url)
        tmp = f"{os.fspath(target)}.{os.getpid()}.part"
        size = 0
        try:
            with response, open(tmp, "wb") as fh:
                for chunk in response.iter_content(1 << 20):
                    fh.write(chunk)
                    size += len(chunk)
            os.replace(tmp, target)
        except requests.RequestException as exc:
            raise comm_error_from_exception(
                exc, what=what, method="GET", url=url, attempts=sent.attempts, timeout=self.timeout
            ) from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return size

    def _put(self, url: str, data: bytes | IO[bytes], headers: dict[str, str], what: str) -> None:
        sent = self.send("PUT", url, what=what, data=data, headers=headers)
        if not sent.response.ok:
            raise self._error(sent, what=what, method="PUT", url=url)

    def _artifact_url(self, artifact_uri: str, relative_path: str) -> str:
        segments = relative_path.split("/")
        if not relative_path or relative_path.startswith("/") or any(s in ("", ".", "..") for s in segments):
            raise UsageError(
                f"upload_artifact: relative_path must be a relative '/'-separated path without '.' or '..' "
                f"parts, got {relative_path!r}."
            )
        base = urlsplit(self._base_url)
        parts = urlsplit(artifact_uri)
        if parts.scheme == "mlflow-artifacts":
            # As MLflow's own client: a host in the URI wins, the scheme and path prefix come from the base.
            netloc, root = parts.netloc or base.netloc, parts.path
        elif parts.scheme in ("http", "https") and ARTIFACTS_PREFIX in parts.path:
            netloc, root = parts.netloc, parts.path.split(ARTIFACTS_PREFIX, 1)[1]
        else:
            raise CommError(
                f"The run's artifacts live at {artifact_uri!r}, which this client cannot write to over HTTP "
                f"({self._base_url}). Start the MLflow server with artifact serving (the default, with "
                "--artifacts-destination) so new experiments get mlflow-artifacts:/ locations.",
                url=self._base_url,
            )
        path = "/".join(
            p for p in (base.path.rstrip("/") + ARTIFACTS_PREFIX, root.strip("/"), relative_path) if p
        )
        return urlunsplit((base.scheme, netloc, quote(path, safe="/"), "", ""))

    def run_page_url(self, experiment_id: str, run_id: str) -> str:
        """The address of the run's page in the MLflow UI, in its model-training view: MLflow 3's UI picks
        the view from ``workflowType`` in the address, else from the user's last choice (GenAI by default),
        whatever the experiment's kind tag says; older UIs ignore the parameter."""
        experiment = quote(str(experiment_id), safe="")
        page = f"{self._base_url}/#/experiments/{experiment}/runs/{quote(run_id, safe='')}"
        return f"{page}?workflowType=machine_learning"
