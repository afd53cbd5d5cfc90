"""``Settings``: advanced options for ``init()``, and their ``TRACKER_*`` environment variables.

Resolution order for every value: an explicit ``init()`` argument, then a field set on the ``settings``
passed to ``init()`` (a ``Settings`` or a dict), then the environment variable, then the default.
A field left at ``None`` is unset. The environment is read at ``init()`` time, not at import.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from typing import Any

from tracker_jupyter.exceptions import UsageError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclasses.dataclass
class Settings:
    """Options beyond ``init()``'s arguments. Every field is optional; ``None`` means unset.

    Each field reads the environment variable named beside it when unset.
    """

    mode: str | None = None  # TRACKER_MODE: online | offline | disabled (dryrun = offline)
    project: str | None = None  # TRACKER_PROJECT
    entity: str | None = None  # TRACKER_ENTITY
    root_dir: str | None = None  # TRACKER_DIR: the store root (default ./tracker)
    run_id: str | None = None  # TRACKER_RUN_ID
    run_name: str | None = None  # TRACKER_NAME
    run_notes: str | None = None  # TRACKER_NOTES
    run_tags: tuple[str, ...] | None = None  # TRACKER_TAGS: comma-separated
    run_group: str | None = None  # TRACKER_RUN_GROUP
    run_job_type: str | None = None  # TRACKER_JOB_TYPE
    resume: str | bool | None = None  # TRACKER_RESUME: allow | never | must | auto
    anonymous: str | None = None  # TRACKER_ANONYMOUS: never | allow | must
    force: bool | None = None  # TRACKER_FORCE
    save_code: bool | None = None  # TRACKER_SAVE_CODE
    disable_code: bool | None = None  # TRACKER_DISABLE_CODE: never save code, whatever save_code says
    disable_git: bool | None = None  # TRACKER_DISABLE_GIT: do not record git commit/remote/diff
    silent: bool | None = None  # TRACKER_SILENT: no init/finish lines
    show_widget: bool | None = None  # TRACKER_WIDGET: the live widget in notebooks (default on)
    widget_fps: float | None = None  # TRACKER_WIDGET_FPS: live widget redraws per second (default 4)
    flush_interval: float | None = None  # TRACKER_FLUSH_INTERVAL: seconds between disk writes (default 0.5)
    max_pending_rows: int | None = None  # TRACKER_MAX_PENDING_ROWS: rows queued before log() waits
    base_url: str | None = None  # TRACKER_BASE_URL, else MLFLOW_TRACKING_URI when it is http(s)
    api_key: str | None = dataclasses.field(
        default=None, repr=False
    )  # TRACKER_API_KEY, MLFLOW_TRACKING_TOKEN
    username: str | None = None  # TRACKER_USERNAME, else MLFLOW_TRACKING_USERNAME
    password: str | None = dataclasses.field(
        default=None, repr=False
    )  # TRACKER_PASSWORD, MLFLOW_TRACKING_PASSWORD
    sync_timeout: float | None = (
        None  # TRACKER_SYNC_TIMEOUT: seconds finish() waits for the server (default 30)
    )
    program: str | None = None  # TRACKER_PROGRAM: the program path recorded with the run
    notebook_name: str | None = None  # TRACKER_NOTEBOOK_NAME: the notebook path, when it cannot be detected

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                setattr(self, field.name, _checked(field.name, value))

    @classmethod
    def coerce(cls, value: Settings | Mapping[str, Any] | None) -> Settings:
        """A ``Settings`` from ``init(settings=...)``: a Settings, a dict of field names, or None."""
        if value is None:
            return cls()
        if isinstance(value, Settings):
            return value
        if isinstance(value, Mapping):
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = [k for k in value if k not in names]
            if unknown:
                key = str(unknown[0])
                close = difflib.get_close_matches(key, sorted(names), n=1)
                hint = (
                    f" Did you mean {close[0]!r}?"
                    if close
                    else f" Known settings: {', '.join(sorted(names))}."
                )
                raise UsageError(f"settings has no field {key!r}.{hint}")
            return cls(**value)
        raise UsageError(
            f"settings must be a tracker_jupyter.Settings or a dict, got {type(value).__name__}."
        )


# field -> (environment variable(s), kind). The first variable that is set wins.
ENV: dict[str, tuple[tuple[str, ...], str]] = {
    "mode": (("TRACKER_MODE",), "str"),
    "project": (("TRACKER_PROJECT",), "str"),
    "entity": (("TRACKER_ENTITY",), "str"),
    "root_dir": (("TRACKER_DIR",), "str"),
    "run_id": (("TRACKER_RUN_ID",), "str"),
    "run_name": (("TRACKER_NAME",), "str"),
    "run_notes": (("TRACKER_NOTES",), "str"),
    "run_tags": (("TRACKER_TAGS",), "tags"),
    "run_group": (("TRACKER_RUN_GROUP",), "str"),
    "run_job_type": (("TRACKER_JOB_TYPE",), "str"),
    "resume": (("TRACKER_RESUME",), "resume"),
    "anonymous": (("TRACKER_ANONYMOUS",), "str"),
    "force": (("TRACKER_FORCE",), "bool"),
    "save_code": (("TRACKER_SAVE_CODE",), "bool"),
    "disable_code": (("TRACKER_DISABLE_CODE",), "bool"),
    "disable_git": (("TRACKER_DISABLE_GIT",), "bool"),
    "silent": (("TRACKER_SILENT",), "bool"),
    "show_widget": (("TRACKER_WIDGET",), "bool"),
    "widget_fps": (("TRACKER_WIDGET_FPS",), "float"),
    "flush_interval": (("TRACKER_FLUSH_INTERVAL",), "float"),
    "max_pending_rows": (("TRACKER_MAX_PENDING_ROWS",), "int"),
    "base_url": (("TRACKER_BASE_URL",), "url"),
    "api_key": (("TRACKER_API_KEY", "MLFLOW_TRACKING_TOKEN"), "str"),
    "username": (("TRACKER_USERNAME", "MLFLOW_TRACKING_USERNAME"), "str"),
    "password": (("TRACKER_PASSWORD", "MLFLOW_TRACKING_PASSWORD"), "str"),
    "sync_timeout": (("TRACKER_SYNC_TIMEOUT",), "float"),
    "program": (("TRACKER_PROGRAM",), "str"),
    "notebook_name": (("TRACKER_NOTEBOOK_NAME",), "str"),
}

DEFAULTS: dict[str, Any] = {
    "root_dir": "tracker",
    "save_code": False,
    "disable_code": False,
    "disable_git": False,
    "silent": False,
    "show_widget": True,
    "widget_fps": 4.0,
    "flush_interval": 0.5,
    "max_pending_rows": 20_000,
    "sync_timeout": 30.0,
    "force": False,
}


def bool_text(text: str) -> bool | None:
    """The bool ``text`` spells (true/false, 1/0, yes/no, on/off; empty is false), or None."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def parse_bool(text: str, where: str) -> bool:
    value = bool_text(text)
    if value is not None:
        return value
    raise UsageError(f"{where}={text!r} is not a boolean; use true/false (or 1/0, yes/no, on/off).")


# fields that must be above zero (or at least zero), wherever they come from
_POSITIVE = {"widget_fps", "flush_interval", "max_pending_rows"}
_NON_NEGATIVE = {"sync_timeout"}


def _in_range(name: str, number: float, where: str) -> None:
    if (name in _POSITIVE and not number > 0) or (name in _NON_NEGATIVE and not number >= 0):
        bound = "above 0" if name in _POSITIVE else "0 or more"
        raise UsageError(f"{where}={number!r}: {name} must be {bound}.")


def _parse_text(name: str, text: str, where: str) -> Any:
    """Setting ``name`` from text (an environment variable, or a string given for a bool, number or tags
    field in ``settings``), parsed and checked; ``where`` names the source in errors."""
    kind = ENV[name][1]
    if kind == "bool":
        return parse_bool(text, where)
    if kind in ("float", "int"):
        try:
            number = float(text) if kind == "float" else int(text)
        except ValueError:
            raise UsageError(f"{where}={text!r} is not a number.") from None
        _in_range(name, number, where)
        return number
    if kind == "resume" and text.strip().lower() in (*_TRUE, *_FALSE):
        return parse_bool(text, where)
    if kind == "tags":
        return tuple(t.strip() for t in text.split(",") if t.strip())
    if kind == "url":
        return text.rstrip("/") or None
    return text


def _checked(name: str, value: Any) -> Any:
    """A settings field's value, checked against its kind (strings of numbers and booleans are parsed)."""
    kind = ENV[name][1]
    where = f"settings {name}"
    if isinstance(value, str) and kind in ("bool", "float", "int", "tags"):
        return _parse_text(name, value, where)
    if kind == "bool":
        if not isinstance(value, bool):
            raise UsageError(f"{where}={value!r} is not a boolean; use True or False.")
        return value
    if kind in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{where}={value!r} is not a number.")
        if kind == "int" and value != int(value):
            raise UsageError(f"{where}={value!r} is not a whole number.")
        number = float(value) if kind == "float" else int(value)
        _in_range(name, number, where)
        return number
    if kind == "tags":
        if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
            raise UsageError(f"{where}={value!r} must be a list of strings (or one comma-separated string).")
        return tuple(value)
    if kind == "resume" and isinstance(value, bool):
        return value
    if not isinstance(value, (str, os.PathLike)) or (name != "root_dir" and not isinstance(value, str)):
        raise UsageError(f"{where}={value!r} must be a string, got {type(value).__name__}.")
    return os.fspath(value)


def _from_env(name: str, environ: Mapping[str, str] | None) -> tuple[Any, str] | None:
    """Setting ``name`` from the environment, parsed, and the variable it came from; None when unset."""
    env = os.environ if environ is None else environ
    variables, kind = ENV[name]
    for var in variables:
        if var in env:
            return _parse_text(name, env[var], var), var
    if kind == "url":  # MLflow users keep their MLFLOW_TRACKING_URI when it names a server
        uri = env.get("MLFLOW_TRACKING_URI", "")
        if uri.startswith(("http://", "https://")):
            return uri.rstrip("/"), "MLFLOW_TRACKING_URI"
    return None


def from_env(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The value of setting ``name`` from the environment, parsed, or None when no variable is set."""
    found = _from_env(name, environ)
    return found[0] if found is not None else None


def resolve_from(
    name: str, explicit: Any, settings: Settings, environ: Mapping[str, str] | None = None
) -> tuple[Any, str]:
    """``resolve``, and where the value came from as an error message should name it: the argument, the
    settings field, or the environment variable."""
    if explicit is not None:
        return explicit, name
    value = getattr(settings, name)
    if value is not None:
        return value, f"settings {name}"
    found = _from_env(name, environ)
    if found is not None and found[0] is not None:
        return found
    return DEFAULTS.get(name), name


def resolve(name: str, explicit: Any, settings: Settings, environ: Mapping[str, str] | None = None) -> Any:
    """Explicit argument > settings field > environment variable > default."""
    return resolve_from(name, explicit, settings, environ)[0]
