"""What a run does with artifacts: ``log_artifact``, ``use_artifact``, ``log_model``, ``use_model`` and the
links. ``init()`` plugs this module into ``run.parts.artifacts``; ``Run``'s methods of these names call it.

Lineage is kept twice, each half where it is cheapest to read: the run's metadata lists what it logged
and used (``logged_artifacts``, ``used_artifacts``), and each version records the run that logged it and
appends every run that used it (``used_by.jsonl``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter.artifacts.artifact import Artifact, ArtifactManifestEntry, checked_aliases
from tracker_jupyter.artifacts.stores import store_of
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.artifacts import ArtifactStore, Entry, check_artifact_name

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

REGISTRY_PROJECT = "model-registry"  # where link_model() puts registered models, as the reference names it


def _usable(run: Run, what: str) -> None:
    if run.finished:
        raise UsageError(f"run {run.id} is finished: {what} needs an active run (tracker_jupyter.init()).")


def parse_path(path: str, default_project: str) -> tuple[str | None, str, str, str]:
    """``[entity/][project/]name[:alias]`` -> (entity, project, name, alias; ``latest`` when absent)."""
    if not isinstance(path, str) or not path:
        raise UsageError(f"an artifact is named 'name', 'name:alias' or 'project/name:v3', got {path!r}.")
    head, _, alias = path.partition(":")
    parts = head.strip("/").split("/")
    if len(parts) > 3 or not all(parts):
        raise UsageError(f"artifact path {path!r}: expected [entity/][project/]name[:alias].")
    name = check_artifact_name(parts[-1])
    project = parts[-2] if len(parts) >= 2 else default_project
    entity = parts[0] if len(parts) == 3 else None
    return entity, project, name, alias or "latest"


# ------------------------------------------------------------------------------------------------ logging


def log_artifact(
    run: Run,
    artifact_or_path: Artifact | str | os.PathLike[str],
    name: str | None = None,
    type: str | None = None,
    aliases: list[str] | None = None,
    tags: list[str] | None = None,
) -> Artifact:
    """See ``Run.log_artifact``."""
    _usable(run, "log_artifact()")
    artifact = _as_artifact(run, artifact_or_path, name, type, "log_artifact")
    wanted = checked_aliases(aliases, "log_artifact(aliases=...)")
    if tags is not None:
        artifact.tags = tags
    if run.disabled:  # a disabled run keeps nothing: the draft comes back as it was
        return artifact
    return commit(run, artifact, [*artifact.aliases, *wanted])


def commit(run: Run | None, artifact: Artifact, aliases: list[str], *, project: str | None = None,
           extra: dict[str, Any] | None = None) -> Artifact:  # fmt: skip
    """Store the draft's files and record it as a version of ``project/name``; the artifact becomes it."""
    store = store_of(run)
    project = project or (run.project if run is not None else "uncategorized")
    entries: dict[str, Entry] = {}
    if artifact.incremental and artifact.is_draft():
        base = store.resolve(project, artifact.collection_name)
        if base is not None:
            removed = artifact._removed
            entries = {p: e for p, e in base["entries"].items()
                       if p not in removed and not any(p.startswith(r.rstrip("/") + "/") for r in removed)}  # fmt: skip
    for path, entry in artifact._entries.items():
        entries[path] = _stored_entry(store, entry)
    record, _ = store.commit(
        project, artifact.collection_name,
        type=artifact.type, entries=entries, description=artifact.description, metadata=artifact.metadata,
        aliases=aliases, logged_by=run.path if run is not None else None,
        extra={"tags": artifact.tags, **(extra or {})},
    )  # fmt: skip
    staging = artifact._staging
    artifact._store, artifact._project = store, project
    artifact._entity = run.entity if run is not None else None
    artifact._final = True
    artifact._load(record)
    artifact._staging = None
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    if run is not None:
        _remember(run, "logged_artifacts", record)
    return artifact


def _stored_entry(store: ArtifactStore, entry: ArtifactManifestEntry) -> Entry:
    if entry.ref is not None:
        return entry._to_json()
    stored_in = entry._stored_in
    if stored_in is not None and entry._digest is not None:
        if stored_in is store or store.has_object(entry._digest, entry.size):
            return entry._to_json()
        digest, size = store.put_object(stored_in.object_path(entry._digest))
    elif entry.local_path is not None:
        source = Path(entry.local_path)
        if not source.is_file():
            raise UsageError(
                f"artifact file {entry.path!r}: {source} is gone; it was added with policy='immutable', "
                "which reads the file when the artifact is logged."
            )
        digest, size = store.put_object(source)
    else:
        raise UsageError(f"artifact file {entry.path!r} has no content to store.")
    entry._digest, entry.size = digest, size
    return entry._to_json()


def _remember(run: Run, field: str, record: dict[str, Any]) -> None:
    listed = list(run.meta.get(field) or [])
    item = {"project": record["project"], "name": record["name"], "version": int(record["version"]),
            "type": record["type"], "digest": record["digest"]}  # fmt: skip
    if item not in listed:
        run.update_meta(**{field: [*listed, item]})
        run.sink.flush()  # readers of the store (Api, another process, the syncer) see the lineage now


def _as_artifact(run: Run, value: Any, name: str | None, type: str | None, method: str) -> Artifact:
    if isinstance(value, Artifact):
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(
            f"{method}() takes an Artifact or a path to a file or directory, got {type_name(value)}."
        )
    raw = os.fspath(value)
    if "://" in raw:
        artifact = Artifact(
            name or _default_name(run, raw.rstrip("/").rsplit("/", 1)[-1]), type or "unspecified"
        )
        artifact.add_reference(raw)
        return artifact
    path = Path(raw)
    if not path.exists():
        raise UsageError(f"{method}(artifact_or_path={raw!r}): no such file or directory.")
    artifact = Artifact(name or _default_name(run, path.resolve().name), type or "unspecified")
    if path.is_dir():
        artifact.add_dir(path)
    else:
        artifact.add_file(path)
    return artifact


def _default_name(run: Run, basename: str) -> str:
    """``run-<id>-<file name>``, as the reference names artifacts logged from a path."""
    import re

    return check_artifact_name(re.sub(r"[^A-Za-z0-9_.-]", "_", f"run-{run.id}-{basename}")[:128])


def type_name(value: Any) -> str:
    return type(value).__name__


# ------------------------------------------------------------------------------------------------ using


def use_artifact(
    run: Run,
    artifact_or_name: Artifact | str,
    type: str | None = None,
    aliases: list[str] | None = None,
    use_as: str | None = None,
) -> Artifact:
    """See ``Run.use_artifact``."""
    _usable(run, "use_artifact()")
    wanted = checked_aliases(aliases, "use_artifact(aliases=...)")
    if isinstance(artifact_or_name, Artifact):
        artifact = artifact_or_name
        if artifact.is_draft():
            if run.disabled:
                return artifact
            commit(run, artifact, artifact.aliases)
    elif isinstance(artifact_or_name, str):
        artifact = find(run, artifact_or_name)
    else:
        raise UsageError(
            f"use_artifact() takes an Artifact or a name such as 'dataset:latest', got {type_name(artifact_or_name)}."
        )
    if type is not None and artifact.type != type:
        raise UsageError(
            f"use_artifact({artifact.name!r}, type={type!r}): the artifact has type {artifact.type!r}."
        )
    if run.disabled:
        return artifact
    if wanted and artifact._store is not None:
        artifact.aliases = [*artifact.aliases, *wanted]
        artifact.save()
    record = artifact._record
    assert record is not None and artifact._store is not None
    artifact._store.record_use(
        str(artifact.project), artifact.collection_name, int(record["version"]), run.path
    )
    _remember(run, "used_artifacts", record)
    return artifact


def find(run: Run | None, path: str, *, default_project: str | None = None,
         store: ArtifactStore | None = None) -> Artifact:  # fmt: skip
    """The version ``path`` names, from the store; from the server when an online run's store lacks it."""
    project_default = default_project or (run.project if run is not None else "uncategorized")
    entity, project, name, alias = parse_path(path, project_default)
    store = store or store_of(run)
    record = store.resolve(project, name, alias)
    if record is None and run is not None and run.mode == "online":
        from tracker_jupyter.artifacts import remote

        record = remote.fetch(run, store, project, name, alias)
    if record is None:
        versions = store.version_numbers(project, name)
        known = [f"{n}:{t}" for p, n, t in store.collections(project)][:8]
        if versions:
            why = f"it has versions v0..v{versions[-1]} and aliases {sorted(store.aliases(project, name))}"
        else:
            why = "no artifact of that name is logged there" + (
                f" (there are: {', '.join(known)})" if known else ""
            )
        raise UsageError(f"artifact {project}/{name}:{alias} not found in the store at {store.root}: {why}.")
    return Artifact._from_record(record, store, entity=entity or (run.entity if run is not None else None))


# ------------------------------------------------------------------------------------------------ models


def log_model(run: Run, path: str | os.PathLike[str], name: str | None = None,
              aliases: list[str] | None = None) -> Artifact:  # fmt: skip
    """See ``Run.log_model``."""
    _usable(run, "log_model()")
    if not isinstance(path, (str, os.PathLike)) or not Path(path).exists():
        raise UsageError(f"log_model(path={path!r}): no such file or directory.")
    artifact = _as_artifact(run, path, name, "model", "log_model")
    if artifact.type != "model":
        raise UsageError(f"log_model() logs artifacts of type 'model', got {artifact.type!r}.")
    return log_artifact(run, artifact, aliases=aliases)


def use_model(run: Run, name: str) -> str:
    """See ``Run.use_model``."""
    _usable(run, "use_model()")
    artifact = use_artifact(run, name)
    if artifact.type != "model":
        raise UsageError(
            f"use_model({name!r}): the artifact has type {artifact.type!r}; use_model() takes models "
            "(logged with log_model()), use_artifact() takes the rest."
        )
    root = artifact.download()
    files = os.listdir(root)
    return (
        os.path.join(root, files[0])
        if len(files) == 1 and os.path.isfile(os.path.join(root, files[0]))
        else root
    )


def link_artifact(run: Run, artifact: Artifact, target_path: str,
                  aliases: list[str] | None = None) -> Artifact:  # fmt: skip
    """See ``Run.link_artifact``."""
    _usable(run, "link_artifact()")
    if not isinstance(artifact, Artifact):
        raise UsageError(f"link_artifact() takes an Artifact, got {type_name(artifact)}.")
    if artifact.is_draft():
        commit(run, artifact, artifact.aliases)
    if run.disabled:
        return artifact
    _, project, name, alias = parse_path(target_path, run.project)
    if alias != "latest":
        raise UsageError(
            f"link_artifact(target_path={target_path!r}): give aliases with aliases=..., not ':'."
        )
    linked = artifact.new_draft()  # its entries point at the stored content: nothing is copied
    linked._name = name
    return commit(
        run, linked, checked_aliases(aliases, "link_artifact(aliases=...)"), project=project,
        extra={"linked_from": artifact.qualified_name},
    )  # fmt: skip


def link_model(run: Run, path: str | os.PathLike[str], registered_model_name: str, name: str | None = None,
               aliases: list[str] | None = None) -> Artifact:  # fmt: skip
    """See ``Run.link_model``."""
    model = log_model(run, path, name)
    target = (
        registered_model_name
        if "/" in registered_model_name
        else f"{REGISTRY_PROJECT}/{registered_model_name}"
    )
    return link_artifact(run, model, target, aliases)
