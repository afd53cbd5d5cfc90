"""tracker_jupyter: a Jupyter-first experiment tracker.

``run = tracker_jupyter.init(project=..., config=...)``, then ``run.log({...})`` and ``run.finish()``.
Everything is written to a local store first (``./tracker`` by default); with a tracking server
configured, the same records are synced to an MLflow Tracking Server in the background.

Importing this package is cheap: the parts that need IPython, ipywidgets, requests or nbformat are
imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracker_jupyter._init import init
from tracker_jupyter._version import __version__ as __version__
from tracker_jupyter.core.holder import holder as _holder
from tracker_jupyter.exceptions import AuthenticationError, CommError, ConfigError, Error, UsageError

__all__ = [
    "Api",
    "Artifact",
    "Audio",
    "AuthenticationError",
    "CommError",
    "ConfigError",
    "Error",
    "Histogram",
    "Html",
    "Image",
    "Object3D",
    "Plotly",
    "Run",
    "Settings",
    "Table",
    "UsageError",
    "Video",
    "agent",
    "config",
    "define_metric",
    "finish",
    "init",
    "link_model",
    "load_ipython_extension",
    "log",
    "log_artifact",
    "log_model",
    "login",
    "plot",
    "run",
    "save",
    "summary",
    "sweep",
    "unload_ipython_extension",
    "unwatch",
    "use_artifact",
    "use_model",
    "watch",
]

if TYPE_CHECKING:
    from tracker_jupyter.api import Api
    from tracker_jupyter.artifacts import Artifact
    from tracker_jupyter.core.run import Config, Run, Summary
    from tracker_jupyter.media import Audio, Histogram, Html, Image, Object3D, Plotly, Table, Video
    from tracker_jupyter.settings import Settings

    run: Run | None
    config: Config
    summary: Summary


def _current(what: str) -> Run:
    run = _holder.run
    if run is None:
        raise UsageError(f"tracker_jupyter.{what} needs an active run: call tracker_jupyter.init() first.")
    return run


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``log()`` on the current run (see ``Run.log``)."""
    _current("log()").log(data, step=step, commit=commit)


def define_metric(name: str, *args: Any, **kwargs: Any) -> Any:
    """``define_metric()`` on the current run (see ``Run.define_metric``)."""
    return _current("define_metric()").define_metric(name, *args, **kwargs)


def watch(models: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """``watch()`` on the current run (see ``Run.watch``)."""
    return _current("watch()").watch(models, *args, **kwargs)


def unwatch(models: Any = None) -> None:
    """``unwatch()`` on the current run; does nothing when there is none."""
    if _holder.run is not None:
        _holder.run.unwatch(models)


def sweep(sweep: Any, entity: str | None = None, project: str | None = None, **kwargs: Any) -> str:
    """Create a sweep that runs offline (see ``tracker_jupyter.sweeps``); returns its id."""
    from tracker_jupyter import sweeps

    return sweeps.sweep(sweep, entity, project, **kwargs)


def agent(sweep_id: str, function: Any = None, entity: str | None = None, project: str | None = None,
          count: int | None = None, **kwargs: Any) -> int:  # fmt: skip
    """Run trials of a sweep: each calls ``function``, whose ``init()`` gets the trial's config."""
    from tracker_jupyter import sweeps

    return sweeps.agent(sweep_id, function, entity, project, count, **kwargs)


def log_artifact(artifact_or_path: Any, name: str | None = None, type: str | None = None,
                 aliases: list[str] | None = None, tags: list[str] | None = None) -> Any:  # fmt: skip
    """``log_artifact()`` on the current run (see ``Run.log_artifact``)."""
    return _current("log_artifact()").log_artifact(artifact_or_path, name, type, aliases, tags)


def use_artifact(artifact_or_name: Any, type: str | None = None, aliases: list[str] | None = None,
                 use_as: str | None = None) -> Any:  # fmt: skip
    """``use_artifact()`` on the current run (see ``Run.use_artifact``)."""
    return _current("use_artifact()").use_artifact(artifact_or_name, type, aliases, use_as)


def log_model(path: Any, name: str | None = None, aliases: list[str] | None = None) -> Any:
    """``log_model()`` on the current run (see ``Run.log_model``)."""
    return _current("log_model()").log_model(path, name, aliases)


def use_model(name: str) -> str:
    """``use_model()`` on the current run (see ``Run.use_model``)."""
    return _current("use_model()").use_model(name)


def link_model(path: Any, registered_model_name: str, name: str | None = None,
               aliases: list[str] | None = None) -> Any:  # fmt: skip
    """``link_model()`` on the current run (see ``Run.link_model``)."""
    return _current("link_model()").link_model(path, registered_model_name, name, aliases)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run; does nothing when there is none."""
    if _holder.run is not None:
        _holder.run.finish(exit_code=exit_code, quiet=quiet)


def save(glob_str: str | None = None, base_path: str | None = None, policy: str = "live") -> list[str]:
    """``save()`` on the current run (see ``Run.save``)."""
    return _current("save()").save(glob_str, base_path, policy)


def login(*args: Any, **kwargs: Any) -> bool:
    """Log in to a tracking server; with none configured, say so and return False (see
    ``tracker_jupyter.online.credentials.login``)."""
    from tracker_jupyter.online.credentials import login as _login

    return _login(*args, **kwargs)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext tracker_jupyter``: the magics, and notebook defaults for runs."""
    from tracker_jupyter.ipython.extension import load_ipython_extension as _load

    _load(ipython, start_run=init)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo everything ``load_ipython_extension`` did."""
    from tracker_jupyter.ipython.extension import unload_ipython_extension as _unload

    _unload(ipython)


class _NoRun:
    """What ``tracker_jupyter.config`` / ``.summary`` are before init(): any use says to call init()."""

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise UsageError(
            f"tracker_jupyter.{self._what} needs an active run: call tracker_jupyter.init() first."
        )

    __getitem__ = __setitem__ = __contains__ = __iter__ = __len__ = _fail
    __setattr__ = _fail

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return self._fail()

    def __repr__(self) -> str:
        return f"<tracker_jupyter.{self._what}: no active run; call tracker_jupyter.init()>"

    def __bool__(self) -> bool:
        return False


_LAZY = {
    "Api": ("api", "Api"),
    "Artifact": ("artifacts", "Artifact"),
    "Audio": ("media", "Audio"),
    "Html": ("media", "Html"),
    "Object3D": ("media", "Object3D"),
    "Plotly": ("media", "Plotly"),
    "Histogram": ("media", "Histogram"),
    "Image": ("media", "Image"),
    "Run": ("core.run", "Run"),
    "Settings": ("settings", "Settings"),
    "Table": ("media", "Table"),
    "Video": ("media", "Video"),
}


def __getattr__(name: str) -> Any:
    if name == "run":
        return _holder.run
    if name in ("config", "summary"):
        run = _holder.run
        return getattr(run, name) if run is not None else _NoRun(name)
    if name == "plot":  # the module of charts: tracker_jupyter.plot.line(...)
        import importlib

        return importlib.import_module(".media.plot", __name__)
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'tracker_jupyter' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
