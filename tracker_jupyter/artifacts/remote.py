"""``use_artifact`` of a version the store lacks: found on the run's tracking server and cached.

The server side (where versions are uploaded, and the tags that find them) is ``online.artifacts``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracker_jupyter.core.report import log
from tracker_jupyter.exceptions import CommError
from tracker_jupyter.online.artifacts import download_version, find_version
from tracker_jupyter.online.mapping import place
from tracker_jupyter.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run


def fetch(run: Run, store: ArtifactStore, project: str, name: str, alias: str) -> dict[str, Any] | None:
    """Version ``alias`` of ``project/name`` from the server into the store (objects and, when its number
    is free there, the version record); None when the server has no such version or cannot be reached
    (said once in the log: the caller's error then names the store)."""
    connect = run.parts.server
    if connect is None:
        return None
    client = connect()
    try:
        with client:
            workspace, experiment_name = place(client, project, run.entity)
            client.workspace = workspace
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                return None
            found = find_version(client, str(experiment["experiment_id"]), name, alias)
            if found is None:
                return None
            server_run, number = found
            record = download_version(client, server_run, name, number, store)
    except CommError as exc:
        log("could not look for artifact %s/%s:%s on the server: %s", project, name, alias, exc)
        return None
    record["project"] = project
    return store.adopt(record)
