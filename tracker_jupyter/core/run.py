"""``Run``: a run's state and lifecycle. No I/O happens here.

A ``Run`` hands committed rows to its ``Sink`` (the store's writer, or the null sink of a disabled run) and
tells it when metadata, config or summary changed; the sink decides when to write, and stores the files
of logged media and ``run.save()``. What other parts need of a run is declared here: read-only ``meta``,
``run_dir``, ``sink`` and ``options``, ``update_meta`` to record facts, ``parts`` for what they attach,
and the ``on_finish`` / ``on_closed`` hooks. Nothing outside sets a run's private attributes.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from time import time_ns as _time_ns
from types import MappingProxyType
from typing import Any, Protocol

from tracker_jupyter.core.config import Config, Summary
from tracker_jupyter.core.metrics import Metric, MetricDefinitions, make_metric
from tracker_jupyter.core.oneshot import one_shot, pending
from tracker_jupyter.core.report import Once
from tracker_jupyter.core.rows import SCALARS as _SCALARS
from tracker_jupyter.core.rows import check_keys, check_step, normalize_row
from tracker_jupyter.core.sink import Sink
from tracker_jupyter.exceptions import UsageError

MAX_TAG_LENGTH = 64


@dataclass(frozen=True)
class RunOptions:
    """How ``init()`` resolved the run's options, for the parts that act on them."""

    settings: Any = None  # the run's tracker_jupyter.Settings
    silent: bool = False  # no init/finish lines
    force: bool = False  # a failing tracking server is an error, not a fallback
    anonymous: str | None = None  # never | allow | must
    save_code: bool = False  # record the session history and copy the program or notebook
    store_root: Path | None = None  # the store root init() resolved (a disabled run reads artifacts there)


@dataclass
class RunParts:
    """What other layers attach to a run, declared here so none of them bolts attributes onto it."""

    dashboard: Any = None  # the live display (display.widget), one per run
    sync_status: Callable[[], Mapping[str, Any]] | None = None  # the live syncer's progress
    quiet_lines: bool = False  # a display says what the init/finish lines would: print neither
    watch: Callable[..., Any] | None = None  # integrations.watch.watch, plugged in by init()
    unwatch: Callable[..., Any] | None = None
    artifacts: Any = None  # the artifacts.runs module: log_artifact, use_artifact, ... (plugged by init())
    server: Callable[[], Any] | None = None  # a new client for the run's tracking server (online runs)


class Presenter(Protocol):
    """How a run shows itself in a frontend (``display.presenter`` draws it; plugged in by ``init()``)."""

    def show(self, run: Run) -> None: ...
    def bundle(self, run: Run) -> dict[str, str]: ...


def _meta_field(key: str, doc: str) -> Any:
    return property(lambda self: self._meta.get(key), doc=doc)


class Run:
    """A run: log metrics, keep config and summary, finish.

    Created by ``tracker_jupyter.init()``; use it as a context manager to finish it on exit (exit code 1
    when the block raised).
    """

    def __init__(
        self,
        *,
        meta: dict[str, Any],
        config: Config,
        summary: Summary,
        sink: Sink,
        step: int = 0,
        options: RunOptions | None = None,
        run_dir: Path | None = None,
        presenter: Presenter | None = None,
    ) -> None:
        self._meta = meta
        self.config = config
        self.summary = summary
        self._sink = sink
        self._step = step
        self._row: dict[str, Any] = {}
        self._row_time = 0
        self._finished = False
        self._finish_quiet: bool | None = None
        self._warned = Once()
        self._options = options or RunOptions()
        self._run_dir = run_dir
        self._presenter = presenter
        self._on_finish: list[Callable[[Run], None]] = []
        self._on_closed: list[Callable[[Run], None]] = []
        self._finish_started: float | None = None
        self._summary_data = summary._data  # log() updates it in place: the hot path's one dict.update
        self._summarize: Callable[[dict[str, Any]], None] = self._summary_data.update
        self._metrics: MetricDefinitions | None = None
        self._plain = True  # False once a metric's step is synced into rows: every row then takes _log_at
        self.parts = RunParts()
        self.exit_code: int | None = None

    def _set_summarize(self, summarize: Callable[[dict[str, Any]], None]) -> None:
        """Replace how a logged row reaches the summary, keeping a pending ``_on_next_log`` callback."""
        callback = pending(self._summarize)
        self._summarize = summarize
        if callback is not None:
            self._on_next_log(callback)

    def _on_next_log(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once, in the thread of the next ``log()``, after its row is taken (the
        dashboard shows itself below a later cell that logs). It rides on the summary update every
        ``log()`` makes, so nothing is paid when none is pending; a failing callback is only reported."""
        if pending(self._summarize) is None:
            restore = functools.partial(setattr, self, "_summarize")
            self._summarize = one_shot(self._summarize, callback, restore)

    # ----- what other parts read
    @property
    def meta(self) -> Mapping[str, Any]:
        """The run's metadata (``run.json``), read-only: record facts with ``update_meta``."""
        return MappingProxyType(self._meta)

    def update_meta(self, **fields: Any) -> None:
        """Record ``fields`` in the run's metadata; the sink writes them."""
        self._meta.update(fields)
        self._sink.mark_meta()

    @property
    def run_dir(self) -> Path | None:
        """The run's directory in the store; None for a disabled run."""
        return self._run_dir

    @property
    def sink(self) -> Sink:
        """Where the run's records go; ``sink.subscribe(listener)`` follows the rows it has written."""
        return self._sink

    @property
    def options(self) -> RunOptions:
        return self._options

    @property
    def settings(self) -> Any:
        """The ``tracker_jupyter.Settings`` the run was started with."""
        return self._options.settings

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def finish_quiet(self) -> bool:
        """Whether finish prints nothing: ``finish(quiet=...)`` when given, else the ``silent`` option."""
        return self._options.silent if self._finish_quiet is None else self._finish_quiet

    # ----- identity and metadata
    @property
    def id(self) -> str:
        return str(self._meta["id"])

    @property
    def name(self) -> str:
        return str(self._meta["name"])

    @name.setter
    def name(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"run name must be a non-empty string, got {value!r}.")
        self.update_meta(name=value)

    @property
    def notes(self) -> str | None:
        return self._meta.get("notes")

    @notes.setter
    def notes(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise UsageError(f"notes must be a string, got {type(value).__name__}.")
        self.update_meta(notes=value)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._meta.get("tags") or ())

    @tags.setter
    def tags(self, value: Any) -> None:
        self.update_meta(tags=list(check_tags(value)))

    group = _meta_field("group", "The run's group.")
    job_type = _meta_field("job_type", "The kind of job, e.g. train or eval.")
    entity = _meta_field("entity", "The team or user the run belongs to.")
    url = _meta_field("url", "The run's page on the tracking server; None for an offline or disabled run.")

    @property
    def project(self) -> str:
        return str(self._meta["project"])

    @property
    def mode(self) -> str:
        return str(self._meta["mode"])

    @property
    def offline(self) -> bool:
        return self.mode == "offline"

    @property
    def disabled(self) -> bool:
        return self.mode == "disabled"

    @property
    def resumed(self) -> bool:
        return bool(self._meta.get("resumed"))

    @property
    def start_time(self) -> float:
        return float(self._meta["start_time"])

    @property
    def path(self) -> str:
        """``entity/project/id`` (``project/id`` without an entity), what ``Api().run()`` accepts."""
        parts = [self.entity] if self.entity else []
        return "/".join([*parts, self.project, self.id])

    @property
    def dir(self) -> str:
        """The directory for files of this run (``files/`` inside the run's store directory; a scratch
        directory for a disabled run, for code that writes files there)."""
        return self._sink.files_dir()

    @property
    def step(self) -> int:
        """The step the next committed row gets."""
        return self._step

    @property
    def state(self) -> str:
        if not self._finished:
            return "running"
        return "finished" if not self.exit_code else "failed"

    # ----- logging
    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        """Log a row of metrics.

        Parameters
        ----------
        data
            Metric name to value: numbers (numpy and torch scalars too), bools, strings, None, lists,
            and nested dicts, which are flattened with '/' (``{"train": {"loss": 1}}`` is ``train/loss``).
            NaN and infinities are stored as such.
        step
            Log at this step. Without it, each committed call gets the next step. A step lower than the
            current one is dropped with a one-time warning.
        commit
            ``False`` accumulates ``data`` into the current step without committing it. Without ``step``
            the default is to commit; with ``step`` the row is committed when a later step is logged,
            ``commit=True`` is passed, or the run finishes.
        """
        if self._finished:
            raise UsageError(
                f"run {self.id} is finished; log() needs an active run. Start a new one with "
                "tracker_jupyter.init()."
            )
        if type(data) is not dict:
            if not isinstance(data, Mapping):
                raise UsageError(f"log() takes a dict of metric name to value, got {type(data).__name__}.")
            data = dict(data)
        if step is None and commit is None and self._plain and not self._row:  # one row, committed now
            step = self._step
            # a copy (the caller's dict may change after we return): encoded and on the kernel's side of
            # the file when append_plain returns, or refused, unchanged, when it needs normalizing
            row = {**data, "_step": step, "_timestamp": _time_ns() // 1_000_000}
            if not self._sink.append_plain(row):
                data = normalize_row(data, self, self._warn_once)  # a UsageError leaves the run as it was
                self._sink.append({**data, "_step": step, "_timestamp": row["_timestamp"]})
            self._summarize(data)
            self._step = step + 1
            return
        self._log_at(data, step, commit)

    def _log_at(self, data: dict[str, Any], step: int | None, commit: bool | None) -> None:
        """``log()`` with ``step=`` or ``commit=``, or while a row is accumulating."""
        for value in data.values():
            if type(value) not in _SCALARS:
                data = normalize_row(data, self, self._warn_once, depth=1)
                break
        else:
            check_keys(data)
        if self._metrics is not None and not self._plain:
            data = self._metrics.with_steps(data)
        if step is not None:
            if type(step) is not int or step < 0:
                step = check_step(step)
            if step < self._step:
                self._warn_once(
                    "step",
                    f"log(step={step}) is lower than the run's current step {self._step}; that row is "
                    "dropped. Steps must not decrease: omit step= or pass increasing values.",
                    4,
                )
                return
            if step > self._step:
                if self._row:
                    self._commit()
                self._step = step
        elif commit is None:
            commit = True
        now = _time_ns() // 1_000_000
        self._summarize(data)
        if commit and not self._row:
            data = dict(data)  # the caller's dict may change after we return
        else:
            self._row.update(data)
            self._row_time = now
            if not commit:
                return
            data = self._row
            self._row = {}
        data["_step"] = self._step
        data["_timestamp"] = now
        self._append(data)
        self._step += 1

    def _commit(self) -> None:
        row = self._row
        self._row = {}
        row["_step"] = self._step
        row["_timestamp"] = self._row_time
        self._append(row)
        self._step += 1

    def _append(self, row: dict[str, Any]) -> None:
        if not self._sink.append_plain(row):
            self._sink.append(row)

    def watch(
        self,
        models: Any,
        criterion: Any = None,
        log: str | None = "gradients",
        log_freq: int = 1000,
        idx: int | None = None,
        log_graph: bool = False,
    ) -> list[dict[str, Any]]:
        """Log histograms of a torch model's gradients and/or parameters every ``log_freq`` passes, under
        ``gradients/<name>`` and ``parameters/<name>`` (see ``tracker_jupyter.integrations.watch``).

        ``log`` is ``"gradients"``, ``"parameters"``, ``"all"`` or None; ``idx`` the graph index of the
        first model (the second and later get ``graph_<i>`` in front of their names); ``log_graph`` keeps
        the model's structure in the metadata (``models``). Unhooked by ``unwatch`` or at finish."""
        if self.parts.watch is None:
            raise UsageError("watch() needs a run started with tracker_jupyter.init().")
        return self.parts.watch(self, models, criterion, log, log_freq, idx, log_graph)  # type: ignore[no-any-return]

    def unwatch(self, models: Any = None) -> None:
        """Remove the hooks ``watch`` added to ``models`` (all of them when None)."""
        if self.parts.unwatch is not None:
            self.parts.unwatch(models)

    def define_metric(
        self,
        name: str,
        step_metric: str | Metric | None = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> Metric:
        """Say how metric ``name`` (or a glob: ``"val/*"``) is summarized and charted.

        Parameters
        ----------
        name
            A logged key, or a prefix ending in ``*``.
        step_metric
            The key to chart it against (``"epoch"``) instead of ``_step``.
        step_sync
            Add the step metric's latest value to rows that log ``name`` without it (default: True when
            ``step_metric`` is given).
        hidden
            Keep it out of the dashboard's charts.
        summary
            Comma-separated modes: ``min``, ``max``, ``mean``, ``first``, ``last``, ``best`` (the summary
            value becomes a dict of them: ``{"max": 0.8}``), ``copy`` (the last value, the default) or
            ``none`` (no summary value).
        goal
            ``"minimize"`` or ``"maximize"``: which value ``best`` keeps (default minimize).
        overwrite
            Replace an earlier definition of ``name`` instead of merging into it.

        See ``tracker_jupyter.core.metrics`` for the matching rules; the definitions are kept in the
        run's metadata (``metrics``) for the dashboard and readers.
        """
        if self._finished:
            raise UsageError(f"run {self.id} is finished; define_metric() needs an active run.")
        if overwrite is not None and not isinstance(overwrite, bool):
            raise UsageError(f"define_metric(overwrite=...) must be True or False, got {overwrite!r}.")
        metric = make_metric(name, step_metric, step_sync, hidden, summary, goal)
        if self._metrics is None:
            self._metrics = MetricDefinitions()
            summarize = self._metrics.summarize
            data = self._summary_data
            self._set_summarize(lambda row: summarize(data, row))
        metric = self._metrics.define(metric, bool(overwrite))
        if self._metrics.syncs_steps and self._plain:
            self._plain = False
            self._metrics.remember(self._summary_data)
        self.update_meta(metrics=[defined.to_json() for defined in self._metrics.all()])
        return metric

    def put_file(self, relative: str, content: bytes | str | Path) -> Path | None:
        """Store a file of this run (a logged image, a TensorBoard event file) at ``relative``, a path
        inside the run directory; returns where it is, or None when the run keeps no files (disabled)."""
        return self._sink.put_file(relative, content)

    def _warn_once(self, kind: str, message: str, stacklevel: int = 3) -> None:
        """One ``UserWarning`` per kind of problem; ``stacklevel`` points at the user's ``log()`` call."""
        if self._warned(kind):
            warnings.warn(message, UserWarning, stacklevel=stacklevel)

    # ----- files
    def save(
        self, glob_str: str | None = None, base_path: str | None = None, policy: str = "live"
    ) -> list[str]:
        """Persist the run's name, notes and tags; with ``glob_str``, also copy matching files into the run.

        Files are copied into ``run.dir`` keeping their path relative to ``base_path`` (default: the
        directory part of ``glob_str`` before any wildcard); a file already inside ``run.dir`` is taken as
        it is. ``policy`` says when an online run uploads it: ``"live"`` (now, and again whenever it
        changes), ``"now"`` (once, now) or ``"end"`` (at finish). Every file is uploaded at finish in any
        case. Returns the paths in the run.
        """
        if policy not in ("live", "now", "end"):
            raise UsageError(f"save(policy=...) must be 'live', 'now' or 'end', got {policy!r}.")
        self._sink.mark_meta()
        if glob_str is None:
            self._sink.flush()
            return []
        return self._sink.save_files(glob_str, base_path, policy)

    # ----- artifacts
    def _artifacts(self) -> Any:
        if self.parts.artifacts is None:
            raise UsageError("artifacts need a run made by tracker_jupyter.init().")
        return self.parts.artifacts

    def log_artifact(
        self,
        artifact_or_path: Any,
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Any:
        """Log an ``Artifact`` (or the file or directory at a path) as a new version of its name.

        Content identical to an existing version's makes no new version: that version is returned, with
        ``aliases`` moved to it. ``latest`` always names the newest version. A path is logged as
        ``name`` (default ``run-<id>-<file name>``) of ``type`` (default ``"unspecified"``). Returns the
        logged ``Artifact`` (``artifact.version`` is ``"v<N>"``).
        """
        return self._artifacts().log_artifact(self, artifact_or_path, name, type, aliases, tags)

    def use_artifact(
        self,
        artifact_or_name: Any,
        type: str | None = None,
        aliases: list[str] | None = None,
        use_as: str | None = None,
    ) -> Any:
        """Record that this run uses an artifact version and return it: ``"name"`` (the latest),
        ``"name:v3"``, ``"name:alias"``, ``"project/name:alias"``, or an ``Artifact`` (a draft is logged
        first). ``type`` must match when given; ``aliases`` are added to the version. An online run looks
        for a version its store lacks on the tracking server and caches it."""
        return self._artifacts().use_artifact(self, artifact_or_name, type, aliases, use_as)

    def log_model(self, path: Any, name: str | None = None, aliases: list[str] | None = None) -> Any:
        """Log the model file or directory at ``path`` as an artifact of type ``model`` (default name
        ``run-<id>-<file name>``); online it also becomes a version of the MLflow registered model."""
        return self._artifacts().log_model(self, path, name, aliases)

    def use_model(self, name: str) -> str:
        """Use the model artifact ``name`` (``"name:alias"``), download it and return its path: the file
        when the model is one file, else the directory."""
        return self._artifacts().use_model(self, name)  # type: ignore[no-any-return]

    def link_artifact(self, artifact: Any, target_path: str, aliases: list[str] | None = None) -> Any:
        """Make ``artifact`` also a version of the collection ``target_path`` (``"project/name"``), with
        ``aliases``; the files are shared, not copied."""
        return self._artifacts().link_artifact(self, artifact, target_path, aliases)

    def link_model(
        self, path: Any, registered_model_name: str, name: str | None = None, aliases: list[str] | None = None
    ) -> Any:
        """Log the model at ``path`` and link it to ``model-registry/<registered_model_name>``."""
        return self._artifacts().link_model(self, path, registered_model_name, name, aliases)

    # ----- lifecycle
    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Finish the run: commit the pending row, flush, record the state. Calling it again does nothing.

        Parameters
        ----------
        exit_code
            0 or None: the run is ``finished``; anything else: ``failed``.
        quiet
            Print nothing at finish (same as the ``silent`` setting).
        """
        if self._finished:
            return
        self._finish_started = time.monotonic()
        self._finish_quiet = quiet
        if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
            raise UsageError(f"finish(exit_code=...) must be an int, got {exit_code!r}.")
        if self._row:
            self._commit()
        self._finished = True
        self.exit_code = exit_code or 0
        self._meta["state"] = "finished" if not exit_code else "failed"
        self._meta["exit_code"] = self.exit_code
        self._meta["end_time"] = time.time()
        self._meta["last_step"] = self._step - 1
        for callback in reversed(self._on_finish):
            try:
                callback(self)
            except Exception as exc:
                warnings.warn(f"tracker: a finish hook failed: {exc!r}", RuntimeWarning, stacklevel=2)
        self._sink.close()
        for callback in self._on_closed:
            try:
                callback(self)
            except Exception as exc:  # same rule as the finish hooks
                warnings.warn(f"tracker: a finish hook failed: {exc!r}", RuntimeWarning, stacklevel=2)

    @property
    def finish_started(self) -> float | None:
        """``time.monotonic()`` when finish() began (None before): hooks share one budget from there."""
        return self._finish_started

    def on_finish(self, callback: Callable[[Run], None]) -> None:
        """Call ``callback(run)`` when the run finishes, before its data is closed (last added runs first)."""
        self._on_finish.append(callback)

    def on_closed(self, callback: Callable[[Run], None]) -> None:
        """Call ``callback(run)`` after finish() wrote and closed everything (for uploads of the final data)."""
        self._on_closed.append(callback)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish(exit_code=1 if exc_type is not None else 0)

    def __repr__(self) -> str:
        return f"<Run {self.path} name={self.name!r} state={self.state} step={self._step}>"

    # ----- display: drawn by the presenter init() plugged in (display.presenter), imported when asked
    def display(self) -> None:
        """Show the run below the current cell: its live widget while it runs, its snapshot once finished."""
        if self._presenter is None:
            print(repr(self))
            return
        self._presenter.show(self)

    _ipython_display_ = display  # a run as a cell's last expression shows itself the same way

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if self._presenter is None:
            return {"text/plain": repr(self)}
        return self._presenter.bundle(self)


def check_tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        raise UsageError(f"tags must be a list or tuple of strings, not a single string; use [{value!r}].")
    try:
        tags = tuple(value)
    except TypeError:
        raise UsageError(f"tags must be a list or tuple of strings, got {type(value).__name__}.") from None
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise UsageError(f"each tag must be a non-empty string, got {tag!r}.")
        if len(tag) > MAX_TAG_LENGTH:
            raise UsageError(
                f"tag {tag[:20]!r}... is {len(tag)} characters; tags are at most {MAX_TAG_LENGTH}."
            )
    return tuple(dict.fromkeys(tags))  # drop duplicates, keep order
