"""``init()``'s first step: every argument checked and every value resolved once, into an ``InitRequest``.

Resolution order for every value that has a setting: the explicit argument, then the field of
``settings``, then the ``TRACKER_*`` environment variable, then the default. Each value that can be
refused keeps where it came from (``sources``), so that the refusal names the argument, the settings
field or the environment variable.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker_jupyter import store
from tracker_jupyter.core import host
from tracker_jupyter.core.config import Config, config_items
from tracker_jupyter.core.holder import holder
from tracker_jupyter.core.report import Once
from tracker_jupyter.core.run import check_tags
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.settings import Settings, resolve, resolve_from
from tracker_jupyter.store.capture import git_root
from tracker_jupyter.store.opening import StepRef

MODES = ("online", "offline", "disabled")
RESUME = ("allow", "never", "must", "auto")
REINIT = ("default", "return_previous", "finish_previous", "create_new")
ANONYMOUS = ("never", "allow", "must")
MAX_ID_LENGTH = 64
MAX_PROJECT_LENGTH = 128
_STEP_REF = re.compile(r"^(?P<id>[^/\\#?%:]+)\?_step=(?P<step>\d+)$")


@dataclass(frozen=True)
class InitRequest:
    """What ``init()`` was asked for, with every value resolved (see the module docstring)."""

    settings: Settings
    mode: str  # online | offline | disabled
    reinit: str  # finish_previous | return_previous | create_new
    resume: str | None  # allow | never | must | auto, or None
    rewind: StepRef | None
    fork: StepRef | None
    anonymous: str | None
    force: bool
    silent: bool
    run_id: str | None
    name: str | None
    notes: str | None
    group: str | None
    job_type: str | None
    entity: str | None
    project: str | None  # as given or set; the default is the location's
    tags: tuple[str, ...] | None
    config: dict[str, Any]
    allow_val_change: bool
    magic: dict[str, Any] | None
    sync_tensorboard: bool | None
    monitor_gym: bool | None
    save_code: bool  # save_code, unless disable_code
    dir: str | None
    shell: Any
    interactive: bool  # IPython, terminal or kernel: re-running init() finishes the previous run
    notebook: bool  # a Jupyter kernel of any frontend
    console: str = "auto"  # auto | wrap | off: what the run prints, kept in files/output.log
    sources: dict[str, str] = field(default_factory=dict)  # value -> where it came from, for messages


@dataclass(frozen=True)
class RunLocation:
    """Where a stored run lives and which program it belongs to (not resolved for a disabled run)."""

    root: Path
    project: str
    notebook_file: str | None
    program: str | None
    program_key: str  # 'the same program on this machine', for resume='auto'


def parse_step_ref(argument: str, value: Any) -> StepRef:
    if not isinstance(value, str):
        raise UsageError(f"{argument} must be a string like 'abc123?_step=200', got {type(value).__name__}.")
    match = _STEP_REF.match(value.strip())
    if match is None:
        raise UsageError(
            f"{argument}={value!r} is not of the form '{{run_id}}?_step={{step}}', e.g. 'abc123?_step=200'."
        )
    return StepRef(match["id"], int(match["step"]))


def check_choice(argument: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise UsageError(f"{argument}={value!r} is not allowed; use one of {', '.join(map(repr, allowed))}.")


def check_str(argument: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{argument} must be a string, got {type(value).__name__} {value!r}.")


def _check_bool(argument: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise UsageError(f"{argument} must be True or False, got {value!r}.")


def _normalize_resume(value: Any, where: str = "resume") -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return "auto"
    if isinstance(value, str):
        check_choice(where, value, RESUME)
        return value
    raise UsageError(f"{where} must be a bool or one of {', '.join(map(repr, RESUME))}, got {value!r}.")


def _normalize_reinit(value: Any) -> str:
    if value is None:
        return "default"
    if value is True:
        return "finish_previous"
    if value is False:
        return "return_previous"
    if isinstance(value, str):
        check_choice("reinit", value, REINIT)
        return value
    raise UsageError(f"reinit must be a bool or one of {', '.join(map(repr, REINIT))}, got {value!r}.")


def _load_yaml_config(path: str) -> dict[str, Any]:
    """A YAML config file; the ``{key: {value: ..., desc: ...}}`` form is unwrapped to ``{key: ...}``."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise UsageError(
            f"config={path!r}: no such YAML file (relative paths start at {os.getcwd()})."
        ) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"config={path!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config={path!r} must hold a mapping of keys to values, not {type(data).__name__}.")
    data.pop("wandb_version", None)
    if data and all(
        isinstance(v, dict) and "value" in v and set(v) <= {"value", "desc"} for v in data.values()
    ):
        data = {k: v["value"] for k, v in data.items()}
    return data


def initial_config(config: Any, include: Any, exclude: Any) -> dict[str, Any]:
    if include is not None and exclude is not None:
        raise UsageError(
            "config_include_keys and config_exclude_keys cannot both be given; pass one of them."
        )
    for argument, keys in (("config_include_keys", include), ("config_exclude_keys", exclude)):
        if keys is not None and (isinstance(keys, str) or not all(isinstance(k, str) for k in keys)):
            raise UsageError(f"{argument} must be a list of strings, got {keys!r}.")
    if isinstance(config, (str, os.PathLike)):
        items = _load_yaml_config(os.fspath(config))
    else:
        items = config_items(config)
    if include is not None:
        items = {k: v for k, v in items.items() if k in set(include)}
    if exclude is not None:
        items = {k: v for k, v in items.items() if k not in set(exclude)}
    checked = Config(allow_val_change=True)
    checked.update(items)  # keys and values refused here, before init() changes anything
    return checked.snapshot()


def default_project() -> str:
    root = git_root()
    if root is not None and root.name:
        return root.name
    program = host.program_path()
    if program:
        return Path(program).stem
    return "uncategorized"


def program_key(settings_program: str | None, notebook: str | None) -> str:
    """What identifies 'the same program on this machine' for resume='auto'."""
    import hashlib

    program = settings_program or notebook or host.program_path() or f"cwd:{os.getcwd()}"
    return hashlib.sha1(f"{host.machine_info()['host']}|{program}".encode()).hexdigest()[:16]


def resolve_request(
    *,
    entity: Any, project: Any, dir: Any, id: Any, name: Any, notes: Any, tags: Any, config: Any,
    config_exclude_keys: Any, config_include_keys: Any, allow_val_change: Any, group: Any, job_type: Any,
    mode: Any, force: Any, anonymous: Any, reinit: Any, resume: Any, resume_from: Any, fork_from: Any,
    save_code: Any, tensorboard: Any, sync_tensorboard: Any, monitor_gym: Any, settings: Any, magic: Any,
) -> InitRequest:  # fmt: skip
    """Check ``init()``'s arguments alone and resolve every value; refuse what can never work."""
    for argument, value in (
        ("entity", entity), ("project", project), ("id", id), ("name", name), ("notes", notes),
        ("group", group), ("job_type", job_type), ("mode", mode), ("anonymous", anonymous),
    ):  # fmt: skip
        check_str(argument, value)
    for argument, flag in (
        ("allow_val_change", allow_val_change), ("force", force), ("save_code", save_code),
        ("tensorboard", tensorboard), ("sync_tensorboard", sync_tensorboard), ("monitor_gym", monitor_gym),
    ):  # fmt: skip
        _check_bool(argument, flag)
    if dir is not None and not isinstance(dir, (str, os.PathLike)):
        raise UsageError(f"dir must be a path (a str or os.PathLike), got {dir!r} ({type(dir).__name__}).")
    settings = Settings.coerce(settings)
    reinit_mode = _normalize_reinit(reinit)
    rewind = parse_step_ref("resume_from", resume_from) if resume_from is not None else None
    fork = parse_step_ref("fork_from", fork_from) if fork_from is not None else None
    sources: dict[str, str] = {}

    mode, sources["mode"] = resolve_from("mode", mode, settings)
    if mode == "dryrun":
        mode = "offline"
    if mode is not None:
        check_choice(sources["mode"], mode, (*MODES, "dryrun"))
    resume_mode = _resolve_resume(resume, rewind, fork, settings)
    anonymous, sources["anonymous"] = resolve_from("anonymous", anonymous, settings)
    if anonymous is not None:
        check_choice(sources["anonymous"], anonymous, ANONYMOUS)
    force = bool(resolve("force", force, settings))
    silent = bool(resolve("silent", None, settings))
    console = _resolve_console(settings)
    run_id = resolve("run_id", id, settings)
    if run_id is not None:
        store.check_name("id", run_id, max_len=MAX_ID_LENGTH)
    if fork is not None and run_id == fork.run_id:
        raise UsageError(
            f"id={run_id!r} is the run fork_from copies; a fork is a new run and needs a different id "
            "(or none, to get a random one)."
        )
    magic_parts = None
    if magic not in (None, False):
        from tracker_jupyter.integrations.magic import parse as parse_magic

        magic_parts = parse_magic(magic)  # a malformed value is refused before anything is created
    shell = host.get_shell()
    notebook = host.in_notebook(shell)
    interactive = host.in_interactive(shell)
    tags_value = tags if tags is not None else resolve("run_tags", None, settings)
    checked_tags = check_tags(tags_value) if tags_value is not None else None
    config_items_ = initial_config(config, config_include_keys, config_exclude_keys)
    trial = holder.sweep_trial if holder.sweep_trial is not None and "run" not in holder.sweep_trial else None
    if trial is not None:  # a sweep agent's trial: its parameters win, as in the reference
        config_items_ = {**config_items_, **trial["config"]}
        group = group if group is not None else trial["sweep"]
        project = project if project is not None else trial["project"]
        dir = dir if dir is not None else trial["dir"]
    if mode is None:
        mode = _default_mode(settings, force)
    if reinit_mode == "default":
        reinit_mode = "finish_previous" if interactive else "return_previous"
    return InitRequest(
        settings=settings, mode=mode, reinit=reinit_mode, resume=resume_mode, rewind=rewind, fork=fork,
        anonymous=anonymous, force=force, silent=silent, run_id=run_id,
        name=resolve("run_name", name, settings), notes=resolve("run_notes", notes, settings),
        group=resolve("run_group", group, settings), job_type=resolve("run_job_type", job_type, settings),
        entity=resolve("entity", entity, settings), project=resolve("project", project, settings),
        tags=checked_tags, config=config_items_,
        allow_val_change=notebook if allow_val_change is None else allow_val_change,  # the reference's default
        magic=magic_parts, sync_tensorboard=sync_tensorboard if sync_tensorboard is not None else tensorboard,
        monitor_gym=monitor_gym,
        save_code=bool(resolve("save_code", save_code, settings)) and not resolve("disable_code", None, settings),
        dir=os.fspath(dir) if dir is not None else None, shell=shell, interactive=interactive,
        notebook=notebook, sources=sources, console=console,
    )  # fmt: skip


CONSOLE = ("auto", "wrap", "off")
CONSOLE_AS_WRAP = ("redirect", "wrap_raw", "wrap_emu")  # the reference's other ways: all mean wrap here


def _resolve_console(settings: Settings) -> str:
    value, source = resolve_from("console", None, settings)
    check_choice(source, value, (*CONSOLE, *CONSOLE_AS_WRAP))
    if value in CONSOLE_AS_WRAP:
        if _said_console(value):
            print(
                f"tracker: console={value!r} is taken as 'wrap' (sys.stdout and sys.stderr).", file=sys.stderr
            )
        return "wrap"
    return str(value)


_said_console = Once()


def _resolve_resume(
    resume: Any, rewind: StepRef | None, fork: StepRef | None, settings: Settings
) -> str | None:
    if resume is None and (rewind is not None or fork is not None):
        resume_mode = None  # an explicit resume_from/fork_from wins over TRACKER_RESUME or settings.resume
    else:
        resume_mode = _normalize_resume(*resolve_from("resume", resume, settings))
    given = [n for n, v in (("resume", resume_mode), ("resume_from", rewind), ("fork_from", fork)) if v]
    if len(given) > 1:
        raise UsageError(
            f"{' and '.join(given)} cannot be combined; pass only one of resume, resume_from, fork_from."
        )
    return resume_mode


def _default_mode(settings: Settings, force: bool) -> str:
    """Online when a server is configured, else offline (``force`` needs a server)."""
    if resolve("base_url", None, settings):
        return "online"
    if force:
        raise UsageError(
            "force=True needs a tracking server, and none is configured: set TRACKER_BASE_URL "
            "(or settings={'base_url': ...}), or drop force to log offline."
        )
    return "offline"


def locate(request: InitRequest) -> RunLocation:
    """Where the run is stored: the store root, the project (default: git root, script, ``uncategorized``)
    and the program or notebook it belongs to."""
    settings = request.settings
    root = Path(resolve("root_dir", request.dir, settings)).expanduser()
    project: str = request.project or default_project()
    store.check_name("project", project, max_len=MAX_PROJECT_LENGTH)
    notebook_file = (
        host.notebook_path(request.shell, resolve("notebook_name", None, settings))
        if request.interactive
        else None
    )
    program = resolve("program", None, settings) or notebook_file or host.program_path()
    key = program_key(resolve("program", None, settings), notebook_file)
    return RunLocation(root, project, notebook_file, program, key)
