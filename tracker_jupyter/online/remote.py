"""Runs read back from the MLflow Tracking Server, shaped like the local store's ``RunRecord``.

The runs dashboard shows a project's runs from the local store and, when a server is configured, the
runs of the project's experiment there that this machine does not have (a teammate's, another machine's).
A synced run is matched to its local copy by the ``tracker.id`` tag, so it is listed once.

How a server run maps back is ``mapping.from_server``'s; ``scan_history(keys=[...])`` reads a metric's
history with ``metrics/get-history``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tracker_jupyter.online.mapping import from_server, place
from tracker_jupyter.settings import Settings, resolve

if TYPE_CHECKING:
    from tracker_jupyter.online.rest.client import MlflowRest

__all__ = ["ServerRunRecord", "server_run", "server_runs"]

MAX_RUNS = 1000  # runs read per project: the newest first


class ServerRunRecord:
    """One run of the tracking server, with the fields of a local ``RunRecord`` (``store.RecordFields``)."""

    source = "server"

    def __init__(self, run: dict[str, Any], client: MlflowRest, project: str) -> None:
        fields = from_server(run)
        self._client = client
        self.mlflow_run_id: str = fields["mlflow_run_id"]
        self.id: str = fields["id"]
        self.name: str | None = fields["name"]
        self.project = project
        self.entity: str | None = fields["entity"]
        self.notes: str | None = fields["notes"]
        self.group: str | None = fields["group"]
        self.job_type: str | None = fields["job_type"]
        self.tags: tuple[str, ...] = fields["tags"]
        self.state: str = fields["state"]
        self.start_time: float | None = fields["start_time"]
        self.end_time: float | None = fields["end_time"]
        self.config: dict[str, Any] = fields["config"]
        self.summary: dict[str, Any] = fields["summary"]
        self.url = client.run_page_url(fields["experiment_id"], self.mlflow_run_id)
        self._metrics = {m["key"] for m in run.get("data", {}).get("metrics", [])}
        self._artifact_uri = str(run.get("info", {}).get("artifact_uri", ""))

    def scan_history(self, keys: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Rows ``{"_step", "_timestamp", key}`` of each metric in ``keys`` (by step), read from the server."""
        for key in keys or list(self.summary):
            points = sorted(self._client.get_metric_history(self.mlflow_run_id, key), key=lambda m: m.step)
            for point in points:
                yield {"_step": point.step, "_timestamp": point.timestamp, key: point.value}

    def metric_keys(self) -> list[str]:
        """Every metric the server holds for the run (its latest values' keys), system metrics included."""
        return sorted(self._metrics)

    def files(self, path: str = "") -> list[str]:
        """The paths of the run's artifact files on the server (``files/...``, ``code/...``)."""
        found: list[str] = []
        for entry in self._client.list_artifacts(self.mlflow_run_id, path):
            if entry.get("is_dir"):
                found += self.files(str(entry["path"]))
            else:
                found.append(str(entry["path"]))
        return found

    def download(self, relative: str, target: Any) -> None:
        """Download the run's artifact file ``relative`` to ``target``."""
        self._client.download_artifact(self._artifact_uri, relative, target)

    def __repr__(self) -> str:
        return f"<ServerRunRecord {self.project}/{self.id} {self.state}>"


def _experiment(
    project: str, entity: str | None, settings: Settings | None
) -> tuple[MlflowRest, dict[str, Any]] | None:
    """A client for the configured server and the project's experiment there (None when there is no
    server, or no such experiment)."""
    from tracker_jupyter.online.credentials import credentials_for, proxies, server_url
    from tracker_jupyter.online.live import live_client

    settings = settings or Settings()
    base_url = resolve("base_url", None, settings)
    if not base_url:
        return None
    url, from_url = server_url(base_url)
    client = live_client(url, credentials_for(url, settings, None, from_url), proxies=proxies(settings))
    client.workspace, name = place(client, project, entity)
    experiment = client.get_experiment_by_name(name)
    return None if experiment is None else (client, experiment)


def server_run(
    project: str, run_id: str, *, entity: str | None = None, settings: Settings | None = None
) -> ServerRunRecord | None:
    """The run ``run_id`` (our id, or its MLflow run id) of ``project`` on the configured server."""
    found = _experiment(project, entity, settings)
    if found is None:
        return None
    client, experiment = found
    quoted = run_id.replace("'", "")
    for wanted in (f"tags.`tracker.id` = '{quoted}'", f"attributes.run_id = '{quoted}'"):
        page = client.search_runs([experiment["experiment_id"]], wanted, max_results=1)
        if page.runs:
            return ServerRunRecord(page.runs[0], client, project)
    return None


def server_runs(
    project: str, *, entity: str | None = None, settings: Settings | None = None
) -> list[ServerRunRecord]:
    """The runs of ``project`` on the configured tracking server, newest first; [] when none is configured.

    Raises ``CommError`` / ``AuthenticationError`` when the server cannot be read.
    """
    found_experiment = _experiment(project, entity, settings)
    if found_experiment is None:
        return []
    client, experiment = found_experiment
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
