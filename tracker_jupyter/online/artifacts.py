"""Artifact versions on the MLflow server: uploaded with the run that logged them, found again by tags.

The mapping (what MLflow's UI and client show):

- the files of version N of ``name`` are artifacts of the producing run at ``artifacts/<name>/v<N>/``,
  beside ``artifacts/<name>/v<N>/manifest.json`` (the version record: every file's path, sha256 and
  size, the type, metadata, aliases);
- the producing run gets the tag ``tracker.artifact.<name>`` = its versions (``"v0 v2"``) and
  ``tracker.alias.<name>.<alias>`` = the version an alias names, so a version can be found on the server
  from another machine;
- a version of type ``model`` is also a version of the MLflow registered model ``<name>`` (its source the
  run's ``artifacts/<name>/v<N>``, tagged ``tracker.version`` and ``tracker.digest``) with the aliases as
  MLflow model aliases (``latest`` is MLflow's own notion, so it is not set);
- the using run gets ``tracker.used_artifacts`` (the versions, as JSON) and each version as an MLflow
  dataset input, which the UI lists with the run.

Everything is idempotent, with progress in the run's ``sync.json``: an interrupted upload resumes with the
files not sent yet, and a model version is looked up by its run and digest before one is created.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter.core.report import log
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.online.mapping import tag_json
from tracker_jupyter.store.artifacts import ArtifactStore, check_artifact_name, hash_file

if TYPE_CHECKING:
    from tracker_jupyter.online.rest.client import MlflowRest

ARTIFACT_DIR = "artifacts"
MANIFEST = "manifest.json"
TAG_ARTIFACT = "tracker.artifact."  # + name: the versions this run logged
TAG_ALIAS = "tracker.alias."  # + name + "." + alias: the version it names
TAG_USED = "tracker.used_artifacts"
TAG_VERSION = "tracker.version"
TAG_DIGEST = "tracker.digest"
MODEL_TYPE = "model"


def version_dir(name: str, number: int) -> str:
    return f"{ARTIFACT_DIR}/{name}/v{number}"


class ArtifactSync:
    """The artifact part of one run's sync: what it logged and used, from the store to the server."""

    def __init__(self, client: MlflowRest, state: dict[str, Any], store: ArtifactStore,
                 save: Callable[[], None]) -> None:  # fmt: skip
        self.client = client
        self.state = state
        self.store = store
        self._save = save

    def sync(self, run_id: str, artifact_uri: str, meta: dict[str, Any]) -> None:
        logged = meta.get("logged_artifacts") or []
        done: dict[str, Any] = self.state.setdefault("artifacts", {})
        for item in logged:
            key = f"{item['project']}/{item['name']}:v{item['version']}"
            if done.get(key, {}).get("complete"):
                continue
            record = self.store.version(str(item["project"]), str(item["name"]), int(item["version"]))
            if record is None:
                log("artifact %s is no longer in the store; it is not uploaded.", key)
                done[key] = {"complete": True, "missing": True}
                self._save()
                continue
            self._upload(key, record, artifact_uri, done.setdefault(key, {}))
            if record["type"] == MODEL_TYPE:
                self._register(key, record, run_id, artifact_uri, done[key])
            done[key]["complete"] = True
            self._save()
        self._sync_tags(run_id, logged)
        self._sync_used(run_id, meta.get("used_artifacts") or [])

    def _upload(self, key: str, record: dict[str, Any], artifact_uri: str, progress: dict[str, Any]) -> None:
        base = version_dir(str(record["name"]), int(record["version"]))
        sent: list[str] = progress.setdefault("files", [])
        already = set(sent)
        for path, entry in record["entries"].items():
            if entry.get("ref") is not None or path in already:
                continue
            self.client.upload_artifact(
                artifact_uri, f"{base}/{path}", self.store.object_path(entry["digest"])
            )
            sent.append(path)
            self._save()
        manifest = {k: v for k, v in record.items() if k != "aliases"}
        self.client.upload_artifact(
            artifact_uri, f"{base}/{MANIFEST}", json.dumps(manifest, indent=1).encode()
        )

    def _register(self, key: str, record: dict[str, Any], run_id: str, artifact_uri: str,
                  progress: dict[str, Any]) -> None:  # fmt: skip
        """The version as a version of the registered model of the same name (once, even on replays)."""
        name = str(record["name"])
        if not progress.get("model_version"):
            self.client.create_registered_model(name, description=None)
            found = [
                v for v in self.client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
                if any(t.get("key") == TAG_DIGEST and t.get("value") == record["digest"] for t in v.get("tags", []))
            ]  # fmt: skip
            if found:
                version = found[0]
            else:
                version = self.client.create_model_version(
                    name, f"{artifact_uri.rstrip('/')}/{version_dir(name, int(record['version']))}", run_id,
                    tags={TAG_VERSION: f"v{record['version']}", TAG_DIGEST: str(record["digest"])},
                    description=record.get("description"),
                )  # fmt: skip
            progress["model_version"] = str(version["version"])
            self._save()
        self._model_aliases(record, progress)

    def _model_aliases(self, record: dict[str, Any], progress: dict[str, Any]) -> None:
        """The user aliases of the version, as aliases of its model version (MLflow moves an alias set
        on another version)."""
        name, number = str(record["name"]), int(record["version"])
        current = self.store.aliases(str(record["project"]), name)
        wanted = sorted(alias for alias, n in current.items() if n == number)
        if progress.get("aliases") == wanted:
            return
        for alias in wanted:
            self.client.set_model_alias(name, alias, str(progress["model_version"]))
        progress["aliases"] = wanted
        self._save()

    def _sync_tags(self, run_id: str, logged: list[dict[str, Any]]) -> None:
        tags: dict[str, str] = {}
        by_name: dict[tuple[str, str], list[int]] = {}
        for item in logged:
            by_name.setdefault((str(item["project"]), str(item["name"])), []).append(int(item["version"]))
        for (project, name), numbers in by_name.items():
            tags[TAG_ARTIFACT + name] = " ".join(f"v{n}" for n in sorted(set(numbers)))
            for alias, n in self.store.aliases(project, name).items():
                if n in numbers:
                    tags[f"{TAG_ALIAS}{name}.{alias}"] = f"v{n}"
        sent: dict[str, str] = self.state.setdefault("artifact_tags", {})
        new = {k: v for k, v in tags.items() if sent.get(k) != v}
        for key in [k for k in sent if k not in tags]:  # an alias moved to a version another run logged
            self.client.delete_tag(run_id, key)
            del sent[key]
        if new:
            self.client.log_batch(run_id, tags=new)
            sent.update(new)
        self._save()

    def _sync_used(self, run_id: str, used: list[dict[str, Any]]) -> None:
        names = [f"{u['project']}/{u['name']}:v{u['version']}" for u in used]
        if not names or self.state.get("used_sent") == names:
            return
        self.client.log_batch(run_id, tags={TAG_USED: tag_json(names)})
        datasets = [
            {
                "tags": [{"key": "mlflow.data.context", "value": str(u.get("type") or "input")}],
                "dataset": {
                    "name": f"{u['name']}:v{u['version']}",
                    "digest": str(u.get("digest", ""))[:36],
                    "source_type": "tracker_artifact",
                    "source": json.dumps({"artifact": name}),
                },
            }
            for u, name in zip(used, names, strict=True)
            if name not in (self.state.get("used_sent") or [])
        ]
        try:
            self.client.log_inputs(run_id, datasets)
        except UsageError as exc:  # an older server without dataset inputs: the tag says it all the same
            log(
                "the server did not take the run's artifact inputs (%s); the tag %s lists them.",
                exc,
                TAG_USED,
            )
        self.state["used_sent"] = names
        self._save()


# ------------------------------------------------------------------------------------------------ finding


def _quoted(value: str) -> str:
    return value.replace("'", "\\'")


def find_version(
    client: MlflowRest, experiment_id: str, name: str, alias: str
) -> tuple[dict[str, Any], int] | None:
    """The server run holding version ``alias`` (``latest``, ``v<N>`` or a user alias) of ``name``, and
    the version's number; None when no run there logged it."""
    check_artifact_name(name)
    if alias == "latest" or (alias.startswith("v") and alias[1:].isdigit()):
        runs = _all_runs(client, experiment_id, f"tags.`{TAG_ARTIFACT}{name}` LIKE '%'")
        best: tuple[dict[str, Any], int] | None = None
        for run in runs:
            for token in _tag(run, TAG_ARTIFACT + name).split():
                number = int(token[1:]) if token[1:].isdigit() else -1
                if (alias == "latest" and (best is None or number > best[1])) or alias == token:
                    best = (run, number)
        return best
    runs = _all_runs(client, experiment_id, f"tags.`{TAG_ALIAS}{name}.{_quoted(alias)}` LIKE '%'",
                     order_by=["attributes.start_time DESC"])  # fmt: skip
    for run in runs:
        token = _tag(run, f"{TAG_ALIAS}{name}.{alias}")
        if token[1:].isdigit():
            return run, int(token[1:])
    return None


def _all_runs(client: MlflowRest, experiment_id: str, filter_string: str,
              order_by: list[str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, page_token=token, order_by=order_by or ())
        found += page.runs
        token = page.next_page_token
        if not token:
            return found


def _tag(run: dict[str, Any], key: str) -> str:
    for tag in run.get("data", {}).get("tags", []):
        if tag.get("key") == key:
            return str(tag.get("value", ""))
    return ""


def download_version(client: MlflowRest, run: dict[str, Any], name: str, number: int,
                     store: ArtifactStore) -> dict[str, Any]:  # fmt: skip
    """Fetch version ``number`` of ``name`` from the server run ``run`` into the store's objects (each file
    checked against its digest); the version's record."""
    artifact_uri = str(run["info"]["artifact_uri"])
    base = version_dir(name, number)
    with tempfile.TemporaryDirectory(prefix="tracker-fetch-") as tmp:
        manifest_file = Path(tmp) / MANIFEST
        client.download_artifact(artifact_uri, f"{base}/{MANIFEST}", manifest_file)
        record = json.loads(manifest_file.read_text(encoding="utf-8"))
        for path, entry in record["entries"].items():
            if entry.get("ref") is not None or store.has_object(entry["digest"], entry.get("size")):
                continue
            target = Path(tmp) / "file"
            client.download_artifact(artifact_uri, f"{base}/{path}", target)
            if hash_file(target) != entry["digest"]:
                raise UsageError(
                    f"artifact {name}:v{number}: {path} downloaded from the server has another content than "
                    "its manifest says; the server's copy is damaged."
                )
            store.put_object(target)
            target.unlink()
    record["remote"] = {"run_id": run["info"]["run_id"], "artifact_uri": artifact_uri}
    return dict(record)
