"""Runs read back from the MLflow Tracking Server, shaped like the local store's ``RunRecord``.

The runs dashboard shows a project's runs from the local store and, when a server is configured, the
runs of the project's experiment there that this machine does not have (a teammate's, another machine's).
A synced run is matched to its local copy by the ``tracker.id`` tag, so it is listed once.

How a server run maps back: ``tracker.id`` (else the MLflow run id) is the id, the status gives the state
(KILLED reads as crashed), ``tracker.tags`` / ``tracker.group`` / ``tracker.job_type`` /
``mlflow.note.content`` the identity, the ``tracker.config`` tag the config (else the params), the
``tracker.summary`` tag the summary (else the latest metric values), and ``scan_history(keys=[...])``
reads a metric's history with ``metrics/get-history``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tracker_jupyter.settings import Settings, resolve

if TYPE_CHECKING:
    from tracker_jupyter.online.rest.client import MlflowRest

__all__ = ["ServerRunRecord", "server_runs"]

MAX_RUNS = 1000  # runs read per project: the newest first
_STATES = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished", "FAILED": "failed",
           "KILLED": "crashed"}  # fmt: skip


def _json_tag(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:  # a value cut at the server's tag length limit
        return None


class ServerRunRecord:
    """One run of the tracking server, with the attributes the runs dashboard reads from a ``RunRecord``."""

    source = "server"

    def __init__(self, run: dict[str, Any], client: MlflowRest, project: str) -> None:
        info = run.get("info", {})
        data = run.get("data", {})
        tags = {t["key"]: t.get("value", "") for t in data.get("tags", [])}
        params = {p["key"]: p.get("value", "") for p in data.get("params", [])}
        metrics = {m["key"]: m.get("value") for m in data.get("metrics", [])}
        self._client = client
        self.mlflow_run_id: str = info.get("run_id") or info.get("run_uuid", "")
        self.id: str = tags.get("tracker.id") or self.mlflow_run_id
        self.name: str | None = info.get("run_name") or tags.get("mlflow.runName")
        self.project = project
        self.entity = tags.get("tracker.entity")
        self.notes = tags.get("mlflow.note.content")
        self.group = tags.get("tracker.group")
        self.job_type = tags.get("tracker.job_type")
        self.tags = tuple(t for t in tags.get("tracker.tags", "").split(",") if t)
        status = str(info.get("status", ""))
        self.state = _STATES.get(status, status.lower())
        self.start_time = info["start_time"] / 1000 if info.get("start_time") else None
        self.end_time = info["end_time"] / 1000 if info.get("end_time") else None
        config = _json_tag(tags.get("tracker.config"))
        self.config: dict[str, Any] = config if isinstance(config, dict) else params
        summary = _json_tag(tags.get("tracker.summary"))
        self.summary: dict[str, Any] = summary if isinstance(summary, dict) else metrics
        self.url = client.run_page_url(str(info.get("experiment_id", "")), self.mlflow_run_id)

    def scan_history(self, keys: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Rows ``{"_step", "_timestamp", key}`` of each metric in ``keys`` (by step), read from the server."""
        for key in keys or list(self.summary):
            points = sorted(self._client.get_metric_history(self.mlflow_run_id, key), key=lambda m: m.step)
            for point in points:
                yield {"_step": point.step, "_timestamp": point.timestamp, key: point.value}

    def __repr__(self) -> str:
        return f"<ServerRunRecord {self.project}/{self.id} {self.state}>"


def server_runs(
    project: str, *, entity: str | None = None, settings: Settings | None = None
) -> list[ServerRunRecord]:
    """The runs of ``project`` on the configured tracking server, newest first; [] when none is configured.

    Raises ``CommError`` / ``AuthenticationError`` when the server cannot be read.
    """
    from tracker_jupyter.online.sync import credentials_for, live_client, place, server_url

    settings = settings or Settings()
    base_url = resolve("base_url", None, settings)
    if not base_url:
        return []
    url, from_url = server_url(base_url)
    client = live_client(url, credentials_for(url, settings, None, from_url))
    client.workspace, name = place(client, project, entity)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return []
    found: list[ServerRunRecord] = []
    token = None
    while len(found) < MAX_RUNS:
        page = client.search_runs(
            [experiment["experiment_id"]], max_results=min(1000, MAX_RUNS - len(found)), page_token=token,
            order_by=["attributes.start_time DESC"],
        )  # fmt: skip
        found += [ServerRunRecord(run, client, project) for run in page.runs]
        token = page.next_page_token
        if not token:
            break
    return found
