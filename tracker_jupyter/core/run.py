"""``Run``, ``Config`` and ``Summary``: a run's state and lifecycle. No I/O happens here.

A ``Run`` hands committed rows to a sink (the store's writer, or nothing when disabled) and tells the
sink when metadata, config or summary changed; the sink decides when to write. Displays, the session
recorder and the syncer attach through ``Run.on_finish`` and the sink's ``subscribe``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tracker_jupyter.core.values import dumps, to_json
from tracker_jupyter.exceptions import ConfigError, UsageError

MAX_CONFIG_VALUE_BYTES = 10 * 1024 * 1024
MAX_TAG_LENGTH = 64

_SCALARS = frozenset((float, int, str, bool, type(None)))


class _NullSink:
    """The sink of a disabled run: accepts everything, keeps nothing."""

    meta: dict[str, Any]

    def __init__(self) -> None:
        self.meta = {}
        self.enqueue: Callable[[dict[str, Any]], None] = lambda row: None
        self.pending: Callable[[], int] = lambda: 0
        self.max_pending_rows = 1 << 62
        self.rows_written = 0
        self.error = None

    def mark_meta(self) -> None: ...
    def mark_config(self) -> None: ...
    def mark_summary(self) -> None: ...
    def subscribe(self, listener: Any) -> None: ...
    def unsubscribe(self, listener: Any) -> None: ...
    def wait_for_room(self) -> None: ...
    def flush(self) -> None: ...
    def close(self, *, fsync: bool = True) -> None: ...


# ----------------------------------------------------------------------------------------- values


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


class Config:
    """The run's inputs (hyperparameters): a dict with attribute access.

    Keys are strings without '.', values JSON-compatible (anything else is stored as its repr, with a
    warning) and under 10 MB. Changing the value of an existing key raises ``ConfigError`` unless
    ``allow_val_change`` was given to ``init()`` (the default in a notebook) or to ``update()``.
    """

    def __init__(
        self, *, allow_val_change: bool = False, on_change: Callable[[], None] | None = None
    ) -> None:
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_allow_val_change", allow_val_change)
        object.__setattr__(self, "_on_change", on_change or (lambda: None))
        # called with (key, value) when a set key gets another value: the run records the first one
        object.__setattr__(self, "_on_replace", lambda key, old: None)
        object.__setattr__(self, "_warned", set())

    # ----- mapping protocol
    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._items[key]
        self._on_change()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self._items == other._items
        return isinstance(other, Mapping) and self._items == dict(other)

    __hash__ = None  # type: ignore[assignment]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._items[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}; it has {sorted(self._items)}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        else:
            self.update({key: value})

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __repr__(self) -> str:
        return f"Config({self._items!r})"

    def keys(self):
        return self._items.keys()

    def values(self):
        return self._items.values()

    def items(self):
        return self._items.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        """A plain (deep enough) copy: nested dicts and lists are copied too."""
        import copy

        return copy.deepcopy(self._items)

    def snapshot(self) -> dict[str, Any]:
        """A shallow copy taken in one step (safe while another thread sets keys)."""
        return dict(self._items)

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><td>{escape(str(k))}</td><td>{escape(repr(v))}</td></tr>" for k, v in self._items.items()
        )
        return f"<table>{rows}</table>"

    # ----- writes
    def update(self, data: Mapping[str, Any] | Any, allow_val_change: bool | None = None) -> None:
        """Set several keys at once; nothing is changed when any key or value is refused."""
        items = config_items(data)
        allow = self._allow_val_change if allow_val_change is None else allow_val_change
        clean: dict[str, Any] = {}
        for key, value in items.items():
            check_config_key(key)
            value = self._clean_value(key, value)
            if not allow and key in self._items and not _same(self._items[key], value):
                raise ConfigError(
                    f"config key {key!r} is already {self._items[key]!r}; refusing to change it to "
                    f"{value!r}. To change it, pass allow_val_change=True: "
                    f"run.config.update({{{key!r}: ...}}, allow_val_change=True) or "
                    "init(..., allow_val_change=True). For values that change during training, use log()."
                )
            clean[key] = value
        if clean:
            for key, value in clean.items():
                if key in self._items and not _same(self._items[key], value):
                    self._on_replace(key, self._items[key])
            self._items.update(clean)
            self._on_change()

    def setdefaults(self, data: Mapping[str, Any]) -> None:
        """Set the keys of ``data`` that are not set yet."""
        self.update({k: v for k, v in config_items(data).items() if k not in self._items})

    def _clean_value(self, key: str, value: Any) -> Any:
        value = to_json(value, self._stored_as_repr, key)
        _check_nested_keys(key, value)
        if not isinstance(value, (bool, int, float, type(None))):
            size = len(dumps(value).encode())
            if size > MAX_CONFIG_VALUE_BYTES:
                raise UsageError(
                    f"config value {key!r} is {size / 1e6:.1f} MB as JSON; values must be under 10 MB. "
                    "Save large objects as files with run.save() and put their path in the config."
                )
        return value

    def _stored_as_repr(self, value: Any, where: str) -> str:
        """What ``to_json`` cannot convert is kept as its repr, with one warning per message."""
        message = (
            f"config value {where} of type {type(value).__name__} is not JSON-serializable; "
            f"stored as its repr {repr(value)[:60]!r}"
        )
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, UserWarning, stacklevel=5)
        return repr(value)


def _check_nested_keys(path: str, value: Any) -> None:
    """Keys inside a nested config value follow the top-level rules (params join them with '.')."""
    if isinstance(value, dict):
        for key, inner in value.items():
            try:
                check_config_key(key)
            except UsageError as exc:
                raise UsageError(f"in config[{path!r}]: {exc}") from None
            _check_nested_keys(f"{path}.{key}", inner)


def check_config_key(key: Any) -> None:
    if not isinstance(key, str):
        raise UsageError(f"config keys must be strings, got {key!r} ({type(key).__name__}).")
    if "." in key:
        raise UsageError(
            f"config key {key!r} contains '.', which is not allowed (it would be ambiguous with nesting). "
            f"Use a nested dict or another separator, e.g. {key.replace('.', '_')!r}."
        )
    if not key:
        raise UsageError("config keys must not be empty.")


def config_items(data: Any) -> dict[str, Any]:
    """The key/value pairs of a dict, an argparse.Namespace or absl flags."""
    if data is None:
        return {}
    if isinstance(data, Config):
        return dict(data.items())
    if isinstance(data, Mapping):
        return dict(data)
    flag_values = getattr(data, "flag_values_dict", None)  # absl.flags.FLAGS
    if callable(flag_values):
        return dict(flag_values())
    import argparse

    if isinstance(data, argparse.Namespace):
        return dict(vars(data))
    raise UsageError(
        f"config must be a dict, an argparse.Namespace, absl flags or a path to a YAML file; "
        f"got {type(data).__name__}."
    )


class Summary:
    """The run's final numbers: the last logged value of each key unless set explicitly.

    ``run.summary["best_acc"] = 0.93`` sets a value; logging the key again replaces it with the new last
    value, as with any other key.
    """

    def __init__(
        self, data: dict[str, Any] | None = None, on_change: Callable[[], None] | None = None
    ) -> None:
        self._data: dict[str, Any] = dict(data or {})
        self._on_change = on_change or (lambda: None)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise UsageError(f"summary keys must be strings, got {key!r}.")
        self._data[key] = value
        self._on_change()

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._on_change()

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"summary has no key {key!r}") from None

    def __repr__(self) -> str:
        return f"Summary({self._data!r})"

    def keys(self):
        return self._data.keys()

    def items(self):
        return self._data.items()

    def values(self):
        return self._data.values()

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def update(self, data: Mapping[str, Any]) -> None:
        for key in data:
            if not isinstance(key, str):
                raise UsageError(f"summary keys must be strings, got {key!r}.")
        self._data.update(data)
        self._on_change()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)


# ------------------------------------------------------------------------------------------------ Run


def _flatten(prefix: str, value: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, inner in value.items():
        if not isinstance(key, str):
            raise UsageError(f"log() keys must be strings; {prefix!r} has the key {key!r}.")
        name = f"{prefix}/{key}"
        if isinstance(inner, Mapping):
            _flatten(name, inner, out)
        else:
            out[name] = inner


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
        sink: Any,
        step: int = 0,
        settings: Any = None,
        run_dir: Any = None,
    ) -> None:
        self._meta = meta
        self.config = config
        self.summary = summary
        self._sink = sink
        self._enqueue = sink.enqueue
        self._pending_len = sink.pending
        self._max_pending = sink.max_pending_rows
        self._step = step
        self._row: dict[str, Any] = {}
        self._row_time = 0
        self._finished = False
        self._warned: set[str] = set()
        self.settings = settings
        self._run_dir = run_dir
        self._scratch_dir: str | None = None
        self._on_finish: list[Callable[[Run], None]] = []
        self._on_closed: list[Callable[[Run], None]] = []
        self._summary_data = summary._data
        self.exit_code: int | None = None

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
        self._set_meta("name", value)

    @property
    def notes(self) -> str | None:
        return self._meta.get("notes")

    @notes.setter
    def notes(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise UsageError(f"notes must be a string, got {type(value).__name__}.")
        self._set_meta("notes", value)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._meta.get("tags") or ())

    @tags.setter
    def tags(self, value: Any) -> None:
        self._set_meta("tags", list(check_tags(value)))

    @property
    def group(self) -> str | None:
        return self._meta.get("group")

    @property
    def job_type(self) -> str | None:
        return self._meta.get("job_type")

    @property
    def project(self) -> str:
        return str(self._meta["project"])

    @property
    def entity(self) -> str | None:
        return self._meta.get("entity")

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
        """The directory for files of this run (``files/`` inside the run's store directory)."""
        if self._run_dir is None:  # disabled: a scratch directory for code that writes files there
            if self._scratch_dir is None:
                import tempfile

                self._scratch_dir = tempfile.mkdtemp(prefix="tracker-disabled-")
            return self._scratch_dir
        return str(self._run_dir / "files")

    @property
    def url(self) -> str | None:
        """The run's page on the tracking server; None for an offline or disabled run."""
        return self._meta.get("url")

    @property
    def step(self) -> int:
        """The step the next committed row gets."""
        return self._step

    @property
    def state(self) -> str:
        if not self._finished:
            return "running"
        return "finished" if not self.exit_code else "failed"

    def _set_meta(self, key: str, value: Any) -> None:
        self._meta[key] = value
        self._sink.mark_meta()

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
        for key, value in data.items():
            if type(key) is not str:
                raise UsageError(
                    f"log() keys must be strings; got {key!r} ({type(key).__name__}). Use e.g. str({key!r})."
                )
            if type(value) not in _SCALARS:
                data = self._normalize(data)
                break
        if step is not None:
            if type(step) is not int or step < 0:
                step = self._check_step(step)
            if step < self._step:
                self._warn_once(
                    "step",
                    f"log(step={step}) is lower than the run's current step {self._step}; that row is "
                    "dropped. Steps must not decrease: omit step= or pass increasing values.",
                )
                return
            if step > self._step:
                if self._row:
                    self._commit()
                self._step = step
        elif commit is None:
            commit = True
        now = time.time_ns() // 1_000_000
        self._summary_data.update(data)
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
        self._enqueue(data)
        self._step += 1
        if self._pending_len() > self._max_pending:
            self._sink.wait_for_room()

    def _commit(self) -> None:
        row = self._row
        self._row = {}
        row["_step"] = self._step
        row["_timestamp"] = self._row_time
        self._enqueue(row)
        self._step += 1

    def _check_step(self, step: Any) -> int:
        if isinstance(step, bool) or (not isinstance(step, (int, float)) and not hasattr(step, "__index__")):
            raise UsageError(f"log(step=...) must be a non-negative integer, got {step!r}.")
        if isinstance(step, float):
            if not step.is_integer():
                raise UsageError(f"log(step=...) must be a whole number, got {step!r}.")
            step = int(step)
        step = int(step.__index__()) if not isinstance(step, int) else step
        if step < 0:
            raise UsageError(f"log(step=...) must be a non-negative integer, got {step}.")
        return step

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        """The slow path of log(): nested dicts, numpy/torch values, media, anything else."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, Mapping):
                _flatten(key, value, out)
            else:
                out[key] = value
        for key, value in out.items():
            if type(value) in _SCALARS:
                continue
            out[key] = self._normalize_value(key, value)
        return out

    def _normalize_value(self, key: str, value: Any) -> Any:
        if isinstance(value, (int, float, str)) and not hasattr(value, "item"):
            return value
        to_history = getattr(value, "_to_history", None)
        if callable(to_history):  # media objects know how to store themselves
            return to_history(self, key)
        item = getattr(value, "item", None)
        if callable(item):  # numpy and torch scalars, and one-element arrays/tensors
            numel = getattr(value, "numel", None)  # torch: .size is a method, .numel() the count
            if (numel() if callable(numel) else getattr(value, "size", 1)) == 1:
                return item()
        tolist = getattr(value, "tolist", None)
        if callable(tolist):
            return tolist()
        if isinstance(value, (list, tuple)):
            return list(value)
        self._warn_once(
            f"value:{key}",
            f"log() value for {key!r} of type {type(value).__name__} is not a number, string, list or dict; "
            "stored as its repr.",
        )
        return repr(value)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, UserWarning, stacklevel=3)

    # ----- files
    def save(
        self, glob_str: str | None = None, base_path: str | None = None, policy: str = "live"
    ) -> list[str]:
        """Persist the run's name, notes and tags; with ``glob_str``, also copy matching files into the run.

        Files are copied into ``run.dir`` keeping their path relative to ``base_path`` (default: the
        directory part of ``glob_str`` before any wildcard). Returns the paths written.
        """
        if policy not in ("live", "now", "end"):
            raise UsageError(f"save(policy=...) must be 'live', 'now' or 'end', got {policy!r}.")
        self._sink.mark_meta()
        if glob_str is None:
            self._sink.flush()
            return []
        if self._run_dir is None and self.disabled:
            return []
        return _copy_files(glob_str, base_path, self.dir)

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
        self._quiet_finish = quiet
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

    # ----- display: the widget lives in widget.py, imported only when a frontend asks for it
    def display(self) -> None:
        """Show the run below the current cell: its live widget while it runs, its snapshot once finished."""
        from tracker_jupyter.display import widget

        widget.show(self)

    _ipython_display_ = display  # a run as a cell's last expression shows itself the same way

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from tracker_jupyter.display import widget

        return widget.snapshot_bundle(self)


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


def _copy_files(glob_str: str, base_path: str | None, dest: str) -> list[str]:
    import glob
    import os
    import shutil

    if base_path is None:
        head = glob_str.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        base_path = os.path.dirname(head) or "."
    written = []
    matches = glob.glob(glob_str, recursive=True)
    if not matches:
        warnings.warn(f"run.save({glob_str!r}) matched no files.", UserWarning, stacklevel=3)
    for src in matches:
        if not os.path.isfile(src):
            continue
        rel = os.path.relpath(src, base_path)
        if rel.startswith(".."):
            rel = os.path.basename(src)
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
        written.append(target)
    return written
