"""How a run maps onto MLflow, both ways: the one place that knows MLflow's names for our things.

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
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from tracker_jupyter.core.report import Once, log

if TYPE_CHECKING:
    from tracker_jupyter.online.rest.client import Metric, MlflowRest

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000

# tags of ours on an MLflow run
TAG_ID = "tracker.id"
TAG_UID = "tracker.uid"  # unique to one run of one store: how a run is found again, never two of them
TAG_TAGS = "tracker.tags"
TAG_TAG = "tracker.tag."  # + a tag: "true", so MLflow's search finds runs by one tag (tags.`tracker.tag.x`)
_TAG_KEY = re.compile(r"^[A-Za-z0-9_\-. /:]{1,200}$")
TAG_GROUP = "tracker.group"
TAG_JOB_TYPE = "tracker.job_type"
TAG_ENTITY = "tracker.entity"
TAG_CONFIG = "tracker.config"
TAG_SUMMARY = "tracker.summary"
TAG_FORK_OF = "tracker.fork_of"
TAG_REWINDS = "tracker.rewinds"
# MLflow's own tags
TAG_RUN_NAME = "mlflow.runName"
TAG_NOTE = "mlflow.note.content"
TAG_USER = "mlflow.user"
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"  # which view MLflow's UI opens an experiment in
EXPERIMENT_KIND_TRAINING = "custom_model_development"  # its "Model training" view (else GenAI's)
TAG_LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"  # the run's tables, for MLflow's UI and load_table
TABLE_SUFFIX = ".table.json"

STATUS = {"finished": "FINISHED", "failed": "FAILED", "crashed": "KILLED", "running": "RUNNING"}
STATES = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished", "FAILED": "failed",
          "KILLED": "crashed"}  # fmt: skip


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


def mlflow_table(text: str) -> bytes:
    """A stored table file as MLflow's ``log_table`` writes one: the same ``{"columns", "data"}``, with NaN
    and infinities as null (JSON has no such numbers) and image cells in MLflow's image cell shape."""
    table = json.loads(text)

    def cell(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict) and value.get("_type") == "image" and value.get("path"):
            return {"type": "image", "filepath": value["path"], "compressed_filepath": value["path"]}
        if isinstance(value, list):
            return [cell(item) for item in value]
        return value

    data = [[cell(value) for value in row] for row in table.get("data", [])]
    return json.dumps({"columns": table.get("columns", []), "data": data}, separators=(",", ":")).encode()


def logged_tables(paths: list[str]) -> str:
    """The ``mlflow.loggedArtifacts`` tag for these table artifacts, as MLflow writes it (``load_table``
    finds runs by matching its exact text)."""
    return json.dumps([{"path": path, "type": "table"} for path in paths])


def tag_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, allow_nan=True)
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 3] + "..."


def run_filter(meta: Mapping[str, Any]) -> str:
    """The ``runs/search`` filter that finds this run's MLflow run: by its unique key, or by its id for a
    run recorded before runs had one."""
    if meta.get("uid"):
        return f"tags.`{TAG_UID}` = '{meta['uid']}'"
    return f"tags.`{TAG_ID}` = '{meta['id']}'"


def json_tag(text: str | None) -> Any:
    """A JSON tag's value (``tracker.config``, ``tracker.summary``); None when cut at the tag length limit."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def run_tags(meta: Mapping[str, Any]) -> dict[str, str]:
    """The MLflow tags of a run: our identity, MLflow's source and git tags, lineage."""
    tags = {TAG_ID: str(meta["id"]), TAG_RUN_NAME: str(meta.get("name") or meta["id"])}
    if meta.get("uid"):
        tags[TAG_UID] = str(meta["uid"])
    optional = {
        TAG_NOTE: meta.get("notes"),
        TAG_USER: meta.get("user"),
        "mlflow.source.name": meta.get("notebook") or meta.get("program"),
        "mlflow.source.type": "NOTEBOOK" if meta.get("notebook") else "LOCAL",
        TAG_GROUP: meta.get("group"),
        TAG_JOB_TYPE: meta.get("job_type"),
        TAG_TAGS: ",".join(meta.get("tags") or []),
        TAG_ENTITY: meta.get("entity"),
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
        optional[TAG_FORK_OF] = f"{meta['fork']['run_id']}?_step={meta['fork']['step']}"
    if meta.get("rewinds"):
        optional[TAG_REWINDS] = ",".join(str(r["step"]) for r in meta["rewinds"])
    tags.update({k: str(v)[:MAX_TAG_VALUE] for k, v in optional.items() if v not in (None, "")})
    # one key per tag as well (the characters MLflow allows in a key; the others are in tracker.tags only)
    tags.update({TAG_TAG + tag: "true" for tag in meta.get("tags") or [] if _TAG_KEY.match(tag)})
    return tags


def from_server(run: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a run record read from an MLflow run (``runs/search`` shape), the way back of the
    mapping: ``tracker.id`` (else the MLflow run id) is the id, the status gives the state (KILLED reads
    as crashed), the ``tracker.config`` tag the config (else the params), the ``tracker.summary`` tag the
    summary (else the latest metric values)."""
    info = run.get("info", {})
    data = run.get("data", {})
    tags = {t["key"]: t.get("value", "") for t in data.get("tags", [])}
    params = {p["key"]: p.get("value", "") for p in data.get("params", [])}
    metrics = {m["key"]: m.get("value") for m in data.get("metrics", [])}
    mlflow_run_id = info.get("run_id") or info.get("run_uuid", "")
    status = str(info.get("status", ""))
    config = json_tag(tags.get(TAG_CONFIG))
    summary = json_tag(tags.get(TAG_SUMMARY))
    return {
        "mlflow_run_id": mlflow_run_id,
        "experiment_id": str(info.get("experiment_id", "")),
        "id": tags.get(TAG_ID) or mlflow_run_id,
        "name": info.get("run_name") or tags.get(TAG_RUN_NAME),
        "entity": tags.get(TAG_ENTITY),
        "notes": tags.get(TAG_NOTE),
        "group": tags.get(TAG_GROUP),
        "job_type": tags.get(TAG_JOB_TYPE),
        "tags": tuple(t for t in tags.get(TAG_TAGS, "").split(",") if t),
        "state": STATES.get(status, status.lower()),
        "start_time": info["start_time"] / 1000 if info.get("start_time") else None,
        "end_time": info["end_time"] / 1000 if info.get("end_time") else None,
        "config": config if isinstance(config, dict) else params,
        "summary": summary if isinstance(summary, dict) else metrics,
    }


def experiment_name(project: str, entity: str | None) -> str:
    """The MLflow experiment of a project: ``project``, or ``entity/project`` when an entity is given."""
    return f"{entity}/{project}" if entity else project


_told_no_workspace = Once()  # (server, entity) said once per process


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
    if exists is False and _told_no_workspace((client.base_url, entity)):
        log(
            "%s has no workspace %r; using the experiment %r of its default workspace (ask an admin to "
            "create the workspace to keep the team's runs there).",
            client.base_url, entity, experiment_name(project, entity),
        )  # fmt: skip
    return None, experiment_name(project, entity)
