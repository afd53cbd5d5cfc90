"""``Settings``: advanced options for ``init()``, and their ``TRACKER_*`` environment variables.

Resolution order for every value: an explicit ``init()`` argument, then a field set on the ``settings``
passed to ``init()`` (a ``Settings`` or a dict), then the environment variable, then the default.
A field left at ``None`` is unset. The environment is read at ``init()`` time, not at import.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Mapping
from typing import Any

from tracker_jupyter.exceptions import UsageError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
KINDS = ("str", "bool", "float", "int", "tags", "resume", "url")


def _setting(
    *variables: str,
    kind: str = "str",
    default: Any = None,
    help: str,
    bound: str | None = None,
    secret: bool = False,
) -> Any:
    """One setting, declared once: its environment variables (the first set wins), its kind, its default,
    its bound ("positive" or "non-negative") and its help; everything else is derived from these."""
    assert kind in KINDS and bound in (None, "positive", "non-negative")
    spec = {"env": variables, "kind": kind, "default": default, "help": help, "bound": bound}
    return dataclasses.field(default=None, repr=not secret, metadata=spec)


@dataclasses.dataclass(init=False)
class Settings:
    """Options beyond ``init()``'s arguments. Every field is optional; ``None`` means unset.

    Each field reads its environment variable when unset (``settings.describe(name)`` says which). The
    reference's setting names are taken too (``Settings(start_method="thread")``): those with a meaning
    here set ours (``REFERENCE_NAMES``), the others are accepted with one notice that they have no effect.
    """

    mode: str | None = _setting("TRACKER_MODE", help="online | offline | disabled (dryrun = offline)")
    project: str | None = _setting("TRACKER_PROJECT", help="the run's project")
    entity: str | None = _setting("TRACKER_ENTITY", help="the team or user the run belongs to")
    root_dir: str | None = _setting("TRACKER_DIR", default="tracker", help="the store root")
    run_id: str | None = _setting("TRACKER_RUN_ID", help="the run's id")
    run_name: str | None = _setting("TRACKER_NAME", help="the run's display name")
    run_notes: str | None = _setting("TRACKER_NOTES", help="the run's notes")
    run_tags: tuple[str, ...] | None = _setting("TRACKER_TAGS", kind="tags", help="tags, comma-separated")
    run_group: str | None = _setting("TRACKER_RUN_GROUP", help="the run's group")
    run_job_type: str | None = _setting("TRACKER_JOB_TYPE", help="the run's job type")
    resume: str | bool | None = _setting("TRACKER_RESUME", kind="resume", help="allow | never | must | auto")
    anonymous: str | None = _setting("TRACKER_ANONYMOUS", help="never | allow | must")
    force: bool | None = _setting(
        "TRACKER_FORCE", kind="bool", default=False, help="a failing tracking server is an error"
    )
    save_code: bool | None = _setting(
        "TRACKER_SAVE_CODE", kind="bool", default=False, help="save the program or notebook with the run"
    )
    disable_code: bool | None = _setting(
        "TRACKER_DISABLE_CODE", kind="bool", default=False, help="never save code, whatever save_code says"
    )
    disable_git: bool | None = _setting(
        "TRACKER_DISABLE_GIT", kind="bool", default=False, help="do not record git commit/remote/diff"
    )
    silent: bool | None = _setting("TRACKER_SILENT", kind="bool", default=False, help="no init/finish lines")
    show_widget: bool | None = _setting(
        "TRACKER_WIDGET", kind="bool", default=True, help="the live widget below the cell in notebooks"
    )
    widget_follow: bool | None = _setting(
        "TRACKER_WIDGET_FOLLOW",
        kind="bool",
        default=True,
        help="a live view below each later cell that logs to the run, too",
    )
    widget_fps: float | None = _setting(
        "TRACKER_WIDGET_FPS",
        kind="float",
        default=4.0,
        bound="positive",
        help="live widget redraws per second",
    )
    flush_interval: float | None = _setting(
        "TRACKER_FLUSH_INTERVAL",
        kind="float",
        default=0.5,
        bound="positive",
        help="seconds between rewrites of the metadata, config and summary files",
    )
    # rows waiting for the writer before log() pauses for it: bounds memory in a tight loop (about 10 MB)
    max_pending_rows: int | None = _setting(
        "TRACKER_MAX_PENDING_ROWS",
        kind="int",
        default=20_000,
        bound="positive",
        help="rows held in memory while the disk refuses them",
    )
    base_url: str | None = _setting(
        "TRACKER_BASE_URL",
        kind="url",
        help="the MLflow Tracking Server (else an http(s) MLFLOW_TRACKING_URI)",
    )
    api_key: str | None = _setting(
        "TRACKER_API_KEY", "MLFLOW_TRACKING_TOKEN", help="bearer token", secret=True
    )
    username: str | None = _setting("TRACKER_USERNAME", "MLFLOW_TRACKING_USERNAME", help="basic-auth user")
    password: str | None = _setting(
        "TRACKER_PASSWORD", "MLFLOW_TRACKING_PASSWORD", help="basic-auth password", secret=True
    )
    sync_timeout: float | None = _setting(
        "TRACKER_SYNC_TIMEOUT", kind="float", default=30.0, bound="non-negative",
        help="seconds finish() waits for the server",
    )  # fmt: skip
    sync_background: bool | None = _setting(
        "TRACKER_SYNC_BACKGROUND", kind="bool", default=True,
        help="what finish() could not send in sync_timeout, a background uploader sends after the run",
    )  # fmt: skip
    sync_concurrency: int | None = _setting(
        "TRACKER_SYNC_CONCURRENCY", kind="int", default=4, bound="positive",
        help="requests in flight at once to the server (tracker sync, the background uploader)",
    )  # fmt: skip
    init_timeout: float | None = _setting(
        "TRACKER_INIT_TIMEOUT", kind="float", default=5.0, bound="positive",
        help="seconds each call init() and login() make to the server may take",
    )  # fmt: skip
    https_proxy: str | None = _setting(
        "TRACKER_HTTPS_PROXY", help="proxy for an https server (else HTTPS_PROXY, as requests reads it)"
    )
    http_proxy: str | None = _setting(
        "TRACKER_HTTP_PROXY", help="proxy for an http server (else HTTP_PROXY, as requests reads it)"
    )
    mask_secrets: bool | None = _setting(
        "TRACKER_MASK_SECRETS", kind="bool", default=True,
        help="store and upload secret-looking config values and command-line flags as ***",
    )  # fmt: skip
    system_metrics: bool | None = _setting(
        "TRACKER_SYSTEM_METRICS", kind="bool", default=True,
        help="sample CPU, memory, disk, network and GPU use in the background",
    )  # fmt: skip
    system_metrics_interval: float | None = _setting(
        "TRACKER_SYSTEM_METRICS_INTERVAL", kind="float", default=10.0, bound="positive",
        help="seconds between system metric samples",
    )  # fmt: skip
    console: str | None = _setting(
        "TRACKER_CONSOLE", default="auto",
        help="auto | wrap | off: keep what the run prints in files/output.log",
    )  # fmt: skip
    console_max_bytes: int | None = _setting(
        "TRACKER_CONSOLE_MAX_BYTES", kind="int", default=50 << 20, bound="positive",
        help="bytes of output.log kept; then one note says the rest is not",
    )  # fmt: skip
    program: str | None = _setting("TRACKER_PROGRAM", help="the program path recorded with the run")
    notebook_name: str | None = _setting(
        "TRACKER_NOTEBOOK_NAME", help="the notebook path, when it cannot be detected"
    )

    def __init__(self, **values: Any) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, None)
        for name, value in _ours(values).items():
            setattr(self, name, value)
        self.__post_init__()

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
            return cls(**{str(key): item for key, item in value.items()})
        raise UsageError(
            f"settings must be a tracker_jupyter.Settings or a dict, got {type(value).__name__}."
        )


# The reference's settings with a meaning here, by its name: ours
REFERENCE_NAMES = {
    "quiet": "silent",
    "finish_timeout": "sync_timeout",
    "login_timeout": "init_timeout",
    "host": "base_url",
    "_stats_sampling_interval": "system_metrics_interval",
    "x_stats_sampling_interval": "system_metrics_interval",
}
# The reference's switches that say the opposite of ours
REFERENCE_NEGATED = {"_disable_stats": "system_metrics", "x_disable_stats": "system_metrics"}
# The reference's other public settings: accepted, with one notice that they have no effect here. Its
# private and experimental ones (a leading "_" or "x_") are accepted the same way.
REFERENCE_WITHOUT_EFFECT = frozenset(
    [
        "allow_media_symlink",
        "allow_offline_artifacts",
        "allow_val_change",
        "app_url_override",
        "azure_account_url_to_access_key",
        "capture_loggers",
        "code_dir",
        "config_paths",
        "console_chunk_max_bytes",
        "console_chunk_max_seconds",
        "console_multipart",
        "credentials_file",
        "disable_git_fork_point",
        "disable_job_creation",
        "docker",
        "email",
        "fork_from",
        "git_commit",
        "git_remote",
        "git_remote_url",
        "git_root",
        "heartbeat_seconds",
        "identity_token_file",
        "ignore_globs",
        "insecure_disable_ssl",
        "job_name",
        "job_source",
        "label_disable",
        "launch",
        "launch_config_path",
        "max_end_of_run_history_metrics",
        "max_end_of_run_summary_metrics",
        "organization",
        "program_abspath",
        "program_relpath",
        "reinit",
        "relogin",
        "resume_from",
        "resumed",
        "sagemaker_disable",
        "settings_system",
        "show_colors",
        "show_emoji",
        "show_errors",
        "show_info",
        "show_warnings",
        "start_method",
        "stop_fn",
        "stop_on_fatal_error",
        "strict",
        "summary_timeout",
        "summary_warnings",
        "sweep_id",
        "sweep_param_path",
        "symlink",
        "sync_tensorboard",
        "table_raise_on_max_row_limit_exceeded",
        "use_dot_wandb",
    ]
)
_noticed: set[str] = set()


def _ours(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` under our field names: the reference's names mapped, those without effect noticed once
    and dropped, anything else a UsageError with the nearest of our names."""
    names = {field.name for field in dataclasses.fields(Settings)}
    ours: dict[str, Any] = {}
    for key, value in values.items():
        if key in names:
            ours[key] = value
        elif key in REFERENCE_NAMES:
            ours.setdefault(REFERENCE_NAMES[key], value)
        elif key in REFERENCE_NEGATED:
            name = REFERENCE_NEGATED[key]
            ours.setdefault(name, not _checked(name, value))
        elif key in REFERENCE_WITHOUT_EFFECT or key.startswith(("_", "x_")):
            if key not in _noticed:
                _noticed.add(key)
                print(f"tracker: the setting {key!r} has no effect here; it is ignored.", file=sys.stderr)
        else:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = (
                f" Did you mean {close[0]!r}?" if close else f" Known settings: {', '.join(sorted(names))}."
            )
            raise UsageError(f"settings has no field {key!r}.{hint}")
    return ours


FIELDS = {field.name: field.metadata for field in dataclasses.fields(Settings)}
# field -> (environment variable(s), kind), and field -> default: views of the declarations above
ENV: dict[str, tuple[tuple[str, ...], str]] = {
    name: (spec["env"], spec["kind"]) for name, spec in FIELDS.items()
}
DEFAULTS: dict[str, Any] = {
    name: spec["default"] for name, spec in FIELDS.items() if spec["default"] is not None
}


def describe(name: str) -> str:
    """The help of setting ``name``, with its variables and default, as the magics' traits show it."""
    spec = FIELDS[name]
    default = "" if spec["default"] is None else f"; default {spec['default']}"
    return f"{spec['help']} (else {' / '.join(spec['env'])}{default})"


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


def _in_range(name: str, number: float, where: str) -> None:
    """Numbers must be above zero (or at least zero) as declared, wherever they come from."""
    bound = FIELDS[name]["bound"]
    if (bound == "positive" and not number > 0) or (bound == "non-negative" and not number >= 0):
        raise UsageError(
            f"{where}={number!r}: {name} must be {'above 0' if bound == 'positive' else '0 or more'}."
        )


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
