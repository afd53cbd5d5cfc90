"""Reading runs back: ``tracker_jupyter.Api``, in the reference's shapes, over the local store.

``Api().runs("entity/project", filters={"config.lr": 0.01}, order="-summary_metrics.acc")`` and
``Api().run("project/id").history(samples=500)`` are the reference's calls; the store root is the
``dir=`` keyword (or ``TRACKER_DIR``), and ``Api(store_root)`` still works as a first argument that is a
path rather than the reference's ``overrides`` dict.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tracker_jupyter.artifacts.artifact import Artifact
from tracker_jupyter.artifacts.runs import find, parse_path
from tracker_jupyter.artifacts.stores import store_at
from tracker_jupyter.core.report import Once
from tracker_jupyter.exceptions import CommError, UsageError
from tracker_jupyter.media import Histogram, Table
from tracker_jupyter.online.remote import ServerRunRecord, server_run, server_runs
from tracker_jupyter.settings import Settings, resolve
from tracker_jupyter.store.records import RunRecord, find_run, list_runs, projects

__all__ = ["Api", "ApiRun", "ApiServerRun", "RunRecord"]
_said_server = Once()

OVERRIDES = ("entity", "project", "base_url")
_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex")


class StoredSummary(dict):  # type: ignore[type-arg]
    """A stored run's summary: a dict, with the reference's ``_json_dict`` (the same values, plain)."""

    @property
    def _json_dict(self) -> dict[str, Any]:
        return dict(self)


class ApiRun(RunRecord):
    """A stored run as ``Api`` gives it: a ``RunRecord`` with the reference's reading methods."""

    def history(
        self,
        samples: int = 500,
        keys: list[str] | None = None,
        x_axis: str = "_step",
        pandas: bool = True,
        stream: str = "default",
    ) -> Any:
        """Sampled history: at most ``samples`` rows, evenly spaced, the first and last always kept;
        with ``keys``, only rows that have all of them, reduced to those and ``x_axis``. A pandas DataFrame
        (``pandas=False``: a list of dicts). ``scan_history()`` gives every row. ``stream="system"`` (or
        the reference's ``"events"``) reads the system metrics samples instead."""
        wanted = _check_history(samples, keys, x_axis, stream)
        if stream == "default":
            rows = list(self.scan_history(keys=wanted))
        else:
            rows = [r for r in self.system_samples() if wanted is None or all(k in r for k in wanted)]
        return _sampled(rows, samples, wanted, pandas)

    @property
    def display_name(self) -> str | None:
        return self.name

    @property
    def url(self) -> str:
        """The run on the tracking server when it was synced there, else its directory as a file URL."""
        return str(self.meta.get("url") or self.dir.resolve().as_uri())

    @property
    def summary(self) -> StoredSummary:  # type: ignore[override]
        return StoredSummary(super().summary)

    @property
    def summary_metrics(self) -> dict[str, Any]:
        return dict(self.summary)

    def files(self) -> list[Path]:
        """The run's files: everything under ``files/`` and ``code/``."""
        found = []
        for folder in ("files", "code"):
            base = self.dir / folder
            if base.is_dir():
                found += sorted(path for path in base.rglob("*") if path.is_file())
        return found

    def file(self, name: str) -> Path:
        """One file of the run, by its path relative to ``files/`` (or to the run directory)."""
        for candidate in (self.dir / "files" / name, self.dir / name):
            if candidate.is_file() and self.dir.resolve() in candidate.resolve().parents:
                return candidate
        raise UsageError(f"run {self.project}/{self.id} has no file {name!r}.")

    def value(self, stored: Any) -> Any:
        """A value from the history or summary as its object: a table reference as a ``Table``, a histogram
        as a ``Histogram``, a media reference as the ``Path`` of its file, a media list as a list of those;
        anything else as it is."""
        if not isinstance(stored, dict):
            return stored
        kind = stored.get("_type")
        if kind in ("table-file", "incremental-table-file") and stored.get("path"):
            table = Table.from_file(self.dir / stored["path"])
            for earlier in reversed(stored.get("previous_increments_paths") or []):
                table.data[:0] = Table.from_file(self.dir / earlier).data
            return table
        if kind == "histogram":
            return Histogram(np_histogram=(stored["values"], stored["bins"]))
        if kind == "media-list":
            return [self.value(item) for item in stored.get("items", [])]
        if isinstance(kind, str) and stored.get("path"):
            return self.dir / stored["path"]
        return stored

    def table(self, key: str, step: int | None = None) -> Table:
        """The table logged under ``key`` at ``step`` (the last one logged when None)."""
        found = None
        for row in self.scan_history(keys=[key]):
            if step is None or row["_step"] == step:
                found = row[key]
        if not isinstance(found, dict) or "table" not in str(found.get("_type")):
            where = "" if step is None else f" at step {step}"
            raise UsageError(f"run {self.project}/{self.id} has no table logged as {key!r}{where}.")
        table = self.value(found)
        assert isinstance(table, Table)
        return table

    def logged_artifacts(self, per_page: int = 100) -> list[Artifact]:
        """The artifact versions this run logged, in the order it logged them."""
        return self._artifacts("logged_artifacts")

    def used_artifacts(self, per_page: int = 100) -> list[Artifact]:
        """The artifact versions this run used, in the order it used them."""
        return self._artifacts("used_artifacts")

    def _artifacts(self, field: str) -> list[Artifact]:
        store = store_at(self.dir.parent.parent)
        found = []
        for item in self.meta.get(field) or []:
            record = store.version(str(item["project"]), str(item["name"]), int(item["version"]))
            if record is not None:
                found.append(_readable(Artifact._from_record(record, store, entity=self.entity)))
        return found

    def _document(self) -> dict[str, Any]:
        return _document(self)


def _check_history(samples: Any, keys: Any, x_axis: str, stream: str) -> list[str] | None:
    if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
        raise UsageError(f"history(keys=...) must be a list of metric names, got {keys!r}.")
    if stream not in ("default", "system", "events"):
        raise UsageError(f"history(stream=...) must be 'default' or 'system', got {stream!r}.")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UsageError(f"history(samples=...) must be a positive int, got {samples!r}.")
    return None if keys is None else list(dict.fromkeys([*keys, x_axis]))


def _sampled(rows: list[dict[str, Any]], samples: int, wanted: list[str] | None, pandas: bool) -> Any:
    """At most ``samples`` rows, evenly spaced with the first and last kept, reduced to ``wanted``."""
    if len(rows) > samples:
        stride = (len(rows) - 1) / max(samples - 1, 1)
        rows = [rows[round(i * stride)] for i in range(samples)]
    if wanted is not None:
        rows = [{k: row[k] for k in ("_step", *wanted) if k in row} for row in rows]
    if not pandas:
        return rows
    import pandas as pd

    return pd.DataFrame(rows)


class ApiServerRun(ServerRunRecord):
    """A run on the tracking server that the local store does not have, in ``ApiRun``'s shape: its
    config, summary and tags as synced, its history read with MLflow's ``metrics/get-history``."""

    def __init__(self, record: ServerRunRecord) -> None:
        self.__dict__.update(record.__dict__)
        self.summary = StoredSummary(record.summary)  # type: ignore[assignment]
        self.meta: dict[str, Any] = {}

    display_name = property(lambda self: self.name)
    summary_metrics = property(lambda self: dict(self.summary))
    path = property(lambda self: "/".join([*([self.entity] if self.entity else []), self.project, self.id]))

    def scan_history(self, keys: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Rows by step with every metric in ``keys`` (default: the summary's numbers) the server holds."""
        if keys is None:
            keys = [k for k in self.metric_keys() if not k.startswith("system/")]
        merged: dict[int, dict[str, Any]] = {}
        for point in super().scan_history([k for k in keys if k != "_step"]):
            merged.setdefault(point["_step"], {"_step": point["_step"]}).update(point)
        rows = (merged[step] for step in sorted(merged))
        yield from (row for row in rows if all(k in row for k in keys))

    def history(self, samples: int = 500, keys: list[str] | None = None, x_axis: str = "_step",
                pandas: bool = True, stream: str = "default") -> Any:  # fmt: skip
        """As ``ApiRun.history``, read from the server (``stream="system"``: its ``system/`` metrics)."""
        wanted = _check_history(samples, keys, x_axis, stream)
        names = wanted
        if names is None and stream != "default":
            names = [k for k in self.metric_keys() if k.startswith("system/")]
        return _sampled(list(self.scan_history(keys=names)), samples, wanted, pandas)

    def file(self, name: str) -> Path:
        """One of the run's files, downloaded (``files/<name>`` or a path under the run's artifacts)."""
        import tempfile

        for relative in (f"files/{name}", name):
            if relative in self.files(relative.rsplit("/", 1)[0] if "/" in relative else ""):
                target = Path(tempfile.mkdtemp(prefix="tracker-server-file-")) / Path(relative).name
                self.download(relative, target)
                return target
        raise UsageError(f"run {self.project}/{self.id} on the server has no file {name!r}.")

    def _document(self) -> dict[str, Any]:
        return _document(self)


def _document(record: Any) -> dict[str, Any]:
    """The run's fields as ``filters`` and ``order`` name them (the reference's names)."""
    start = record.start_time
    created = None
    if isinstance(start, (int, float)):
        import datetime

        created = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = record.end_time
    duration = end - start if isinstance(start, (int, float)) and isinstance(end, (int, float)) else None
    return {
        "name": record.id, "id": record.id, "displayName": record.name, "display_name": record.name,
        "state": record.state, "tags": list(record.tags), "group": record.group, "jobType": record.job_type,
        "job_type": record.job_type, "entity": record.entity, "project": record.project, "createdAt": created,
        "created_at": created, "duration": duration, "config": record.config, "summary_metrics": dict(record.summary),
    }  # fmt: skip


class Api:
    """Read runs from a local store, in the reference's shapes.

    Parameters
    ----------
    overrides
        The reference's defaults: ``{"entity": ..., "project": ...}`` (what ``runs()`` and ``run()`` use
        when the path leaves them out) and ``"base_url"``. A path here is taken as ``dir``.
    timeout
        Seconds for calls to a tracking server (the reference's argument; the local store needs none).
    api_key
        Accepted for the reference's signature: credentials come from ``login()`` and the settings.
    dir
        The store root (what was passed to ``init(dir=...)``); default ``TRACKER_DIR`` or ``./tracker``.
    """

    def __init__(
        self,
        overrides: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        api_key: str | None = None,
        *,
        dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(overrides, (str, os.PathLike)):  # Api(store_root): our first form
            dir, overrides = dir or overrides, None
        overrides = dict(overrides or {})
        unknown = [key for key in overrides if key not in OVERRIDES]
        if unknown:
            raise UsageError(f"Api(overrides=...) takes {', '.join(OVERRIDES)}; not {unknown[0]!r}.")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise UsageError(f"Api(timeout=...) must be a positive number of seconds, got {timeout!r}.")
        self.overrides = overrides
        self.timeout = timeout
        self.root = Path(resolve("root_dir", os.fspath(dir) if dir is not None else None, Settings()))

    @property
    def default_entity(self) -> str | None:
        return self.overrides.get("entity")

    def projects(self, entity: str | None = None) -> list[str]:
        return projects(self.root)

    def runs(
        self,
        path: str | None = None,
        filters: Mapping[str, Any] | None = None,
        order: str = "+created_at",
        per_page: int = 50,
        include_sweeps: bool = False,
        lazy: bool = True,
        *,
        project: str | None = None,
    ) -> list[Any]:
        """Runs of a project (``"project"`` or ``"entity/project"``; default: the overrides' project, else
        every project), matching ``filters`` (MongoDB-style: ``{"config.lr": 0.01}``, ``{"state":
        "finished"}``, ``$and``/``$or``/``$nor``, ``$gt``/``$gte``/``$lt``/``$lte``/``$eq``/``$ne``,
        ``$in``/``$nin``, ``$exists``, ``$regex``), sorted by ``order`` (``created_at``, ``config.<key>``,
        ``summary_metrics.<key>``; ``+`` ascending, the default, ``-`` descending)."""
        entity, name = _project_path(path or project or self.overrides.get("project"), self.default_entity)
        records: list[Any] = [ApiRun(record.dir) for record in list_runs(self.root, name)]
        if entity is not None:
            records = [r for r in records if r.entity in (None, entity)]
        if name is not None:
            stored = {r.id for r in records}
            records += [
                ApiServerRun(r)
                for r in self._server(server_runs, name, entity=entity) or []
                if r.id not in stored
            ]
        if filters:
            records = [r for r in records if _matches(r._document(), filters)]
        return _ordered(records, order)

    def run(self, path: str) -> ApiRun | ApiServerRun:
        """One run by ``id``, ``project/id``, ``entity/project/id``, ``entity/project/runs/id`` or the path
        of its directory."""
        if isinstance(path, str):
            parts = path.strip("/").split("/")
            if len(parts) == 4 and parts[2] == "runs":
                path = "/".join([parts[0], parts[1], parts[3]])
            elif (
                len(parts) == 1 and self.overrides.get("project") and not (Path(path) / "run.json").is_file()
            ):
                path = f"{self.overrides['project']}/{path}"
        try:
            return ApiRun(find_run(self.root, path).dir)
        except UsageError:
            parts = str(path).strip("/").split("/")
            if len(parts) < 2 or Path(path).is_dir():
                raise
            found = self._server(
                server_run, parts[-2], parts[-1], entity=parts[0] if len(parts) == 3 else None
            )
            if found is None:
                raise
            return ApiServerRun(found)

    def _server(self, read: Any, *args: Any, entity: str | None = None) -> Any:
        """What ``read`` gets from the configured tracking server (None without one, offline, or when it
        cannot be read: said once, and the local store's runs still come back)."""
        settings = (
            Settings(base_url=self.overrides["base_url"]) if self.overrides.get("base_url") else Settings()
        )
        if not resolve("base_url", None, settings) or resolve("mode", None, settings) in (
            "offline",
            "dryrun",
            "disabled",
        ):
            return None
        try:
            return read(*args, entity=entity or self.default_entity, settings=settings)
        except CommError as exc:
            if _said_server(str(exc)):
                warnings.warn(f"Api: the tracking server could not be read ({exc}); local runs only.", UserWarning,
                              stacklevel=3)  # fmt: skip
            return None

    # ----- artifacts
    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """The artifact version ``"[entity/]project/name:alias"`` (``:latest`` when no alias or version
        is given; the overrides' project when the path has none)."""
        found = find(None, name, default_project=self._default_project(name), store=self._store())
        if type is not None and found.type != type:
            raise UsageError(f"Api.artifact({name!r}, type={type!r}): the artifact has type {found.type!r}.")
        return _readable(found)

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        try:
            self.artifact(name, type)
        except UsageError:
            return False
        return True

    def artifacts(self, type_name: str, name: str, per_page: int = 50, tags: Any = None) -> list[Artifact]:
        """Every version of the artifact ``"[project/]name"`` of type ``type_name``, oldest first."""
        _, project, collection, _ = parse_path(name, self._default_project(name))
        store = self._store()
        kind = store.collection_type(project, collection)
        if kind is None:
            raise UsageError(
                f"Api.artifacts(): no artifact {project}/{collection} in the store at {self.root}."
            )
        if kind != type_name:
            raise UsageError(f"Api.artifacts({type_name!r}, {name!r}): the artifact has type {kind!r}.")
        versions = [store.version(project, collection, n) for n in store.version_numbers(project, collection)]
        return [_readable(Artifact._from_record(v, store)) for v in versions if v is not None]

    artifact_versions = artifacts

    def artifact_collections(
        self, project_name: str | None = None, type_name: str | None = None
    ) -> list[str]:
        """The artifact names of a project (of one type when ``type_name`` is given)."""
        project = project_name or self.overrides.get("project")
        return [name for _, name, kind in self._store().collections(project)
                if type_name is None or kind == type_name]  # fmt: skip

    def artifact_types(self, project: str | None = None) -> list[str]:
        return sorted(
            {kind for _, _, kind in self._store().collections(project or self.overrides.get("project"))}
        )

    def _store(self) -> Any:
        return store_at(self.root)

    def _default_project(self, path: str) -> str:
        project = self.overrides.get("project")
        if project is None and "/" not in path.partition(":")[0]:
            raise UsageError(
                f"Api: artifact {path!r} names no project; write 'project/{path}' or pass "
                "Api(overrides={'project': ...})."
            )
        return str(project or "uncategorized")


def _readable(artifact: Artifact) -> Artifact:
    """An artifact read through ``Api``: its runs come back as ``ApiRun``."""
    artifact._open_run = ApiRun
    return artifact


def _project_path(path: str | None, entity: str | None) -> tuple[str | None, str | None]:
    if path is None:
        return entity, None
    parts = [part for part in str(path).strip("/").split("/") if part]
    if not 1 <= len(parts) <= 2:
        raise UsageError(f"Api.runs() takes 'project' or 'entity/project', got {path!r}.")
    return (parts[0] if len(parts) == 2 else entity), parts[-1]


def _field(document: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted field name: ``config.optimizer.lr`` reads nested dicts, and a key
    with dots or slashes in it (``summary_metrics.val/acc``) is found whole."""
    value: Any = document
    parts = name.split(".")
    index = 0
    while index < len(parts):
        if not isinstance(value, Mapping):
            return False, None
        for end in range(len(parts), index, -1):  # the longest key that exists
            key = ".".join(parts[index:end])
            if key in value:
                value, index = value[key], end
                break
        else:
            return False, None
    if isinstance(value, Mapping) and "value" in value and len(value) == 1:
        value = value["value"]  # the reference's config.<key>.value
    return True, value


def _matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    for key, condition in query.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(condition, list):
                raise UsageError(f"filters: {key} takes a list of filters, got {condition!r}.")
            results = [_matches(document, part) for part in condition]
            if (
                (key == "$and" and not all(results))
                or (key == "$or" and not any(results))
                or (key == "$nor" and any(results))
            ):
                return False
        elif key.startswith("$"):
            raise UsageError(f"filters: unknown operator {key!r} at the top level.")
        elif not _condition(document, key, condition):
            return False
    return True


def _condition(document: Mapping[str, Any], name: str, condition: Any) -> bool:
    found, value = _field(document, name)
    if not (isinstance(condition, Mapping) and condition and all(str(k).startswith("$") for k in condition)):
        return found and _equal(value, condition)
    for operator, operand in condition.items():
        if operator not in _OPERATORS:
            raise UsageError(f"filters: {operator!r} on {name!r} is not one of {', '.join(_OPERATORS)}.")
        if operator == "$exists":
            if bool(operand) != found:
                return False
            continue
        if not found:
            return operator in ("$ne", "$nin") and all(op in ("$ne", "$nin") for op in condition)
        if not _compare(operator, value, operand):
            return False
    return True


def _equal(value: Any, operand: Any) -> bool:
    if isinstance(value, list) and not isinstance(operand, list):
        return operand in value  # a list field matches any of its elements, as in MongoDB
    return bool(value == operand)


def _compare(operator: str, value: Any, operand: Any) -> bool:
    if operator == "$eq":
        return _equal(value, operand)
    if operator == "$ne":
        return not _equal(value, operand)
    if operator in ("$in", "$nin"):
        if not isinstance(operand, (list, tuple, set)):
            raise UsageError(f"filters: {operator} takes a list, got {operand!r}.")
        hit = any(_equal(value, item) for item in operand)
        return hit if operator == "$in" else not hit
    if operator == "$regex":
        return isinstance(value, str) and re.search(str(operand), value) is not None
    try:
        return bool(
            {
                "$gt": value > operand,
                "$gte": value >= operand,
                "$lt": value < operand,
                "$lte": value <= operand,
            }[operator]
        )
    except TypeError:
        return False  # a string against a number: no match, as in MongoDB


def _ordered(records: list[ApiRun], order: str) -> list[ApiRun]:
    if not isinstance(order, str) or not order.strip("+-"):
        raise UsageError(f"Api.runs(order=...) names a field, as '-created_at', got {order!r}.")
    descending = order.startswith("-")
    name = order.lstrip("+-")
    name = {"created_at": "created_at", "createdAt": "created_at", "heartbeat_at": "created_at"}.get(
        name, name
    )

    def key(record: ApiRun) -> tuple[bool, Any]:
        if name == "created_at":
            return True, record.start_time or 0
        found, value = _field(record._document(), name)  # reads the run's config and summary: once a run
        return found and isinstance(value, (int, float, str)), value

    keyed = [(key(record), record) for record in records]
    present = [(value, record) for (found, value), record in keyed if found]
    missing = [record for (found, _), record in keyed if not found]
    try:
        present.sort(key=lambda pair: pair[0], reverse=descending)
    except TypeError:  # numbers and strings mixed: by their text
        present.sort(key=lambda pair: str(pair[0]), reverse=descending)
    return [record for _, record in present] + missing  # runs without the field last, either way
