"""``init()``: argument checks and resolution, reinit/resume/rewind/fork, and wiring a Run to its sinks."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from tracker_jupyter import store
from tracker_jupyter.core import host
from tracker_jupyter.core.holder import holder, install_exit_handlers
from tracker_jupyter.core.names import new_run_id, new_run_name
from tracker_jupyter.core.run import Config, Run, Summary, _NullSink, check_tags, config_items
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.settings import Settings, resolve, resolve_from

MODES = ("online", "offline", "disabled")
RESUME = ("allow", "never", "must", "auto")
REINIT = ("default", "return_previous", "finish_previous", "create_new")
ANONYMOUS = ("never", "allow", "must")
MAX_ID_LENGTH = 64
MAX_PROJECT_LENGTH = 128
_STEP_REF = re.compile(r"^(?P<id>[^/\\#?%:]+)\?_step=(?P<step>\d+)$")


class StepRef(NamedTuple):
    """A parsed ``"{run_id}?_step={step}"`` (resume_from, fork_from)."""

    run_id: str
    step: int


def parse_step_ref(argument: str, value: Any) -> StepRef:
    if not isinstance(value, str):
        raise UsageError(f"{argument} must be a string like 'abc123?_step=200', got {type(value).__name__}.")
    match = _STEP_REF.match(value.strip())
    if match is None:
        raise UsageError(
            f"{argument}={value!r} is not of the form '{{run_id}}?_step={{step}}', e.g. 'abc123?_step=200'."
        )
    return StepRef(match["id"], int(match["step"]))


def _check_choice(argument: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise UsageError(f"{argument}={value!r} is not allowed; use one of {', '.join(map(repr, allowed))}.")


def _check_str(argument: str, value: Any) -> None:
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
        _check_choice(where, value, RESUME)
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
        _check_choice("reinit", value, REINIT)
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


def _initial_config(config: Any, include: Any, exclude: Any) -> dict[str, Any]:
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


def _default_project() -> str:
    root = host.git_root()
    if root is not None and root.name:
        return root.name
    program = host.program_path()
    if program:
        return Path(program).stem
    return "uncategorized"


def _program_key(settings_program: str | None, notebook: str | None) -> str:
    """What identifies 'the same program on this machine' for resume='auto'."""
    import hashlib

    program = settings_program or notebook or host.program_path() or f"cwd:{os.getcwd()}"
    return hashlib.sha1(f"{host.machine_info()['host']}|{program}".encode()).hexdigest()[:16]


def _say(message: str, silent: bool) -> None:
    if not silent:
        print(f"tracker: {message}", file=sys.stderr)


def init(
    entity: str | None = None,
    project: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    id: str | None = None,
    name: str | None = None,
    notes: str | None = None,
    tags: Sequence[str] | None = None,
    config: Any = None,
    config_exclude_keys: list[str] | None = None,
    config_include_keys: list[str] | None = None,
    allow_val_change: bool | None = None,
    group: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    force: bool | None = None,
    anonymous: str | None = None,
    reinit: bool | str | None = None,
    resume: bool | str | None = None,
    resume_from: str | None = None,
    fork_from: str | None = None,
    save_code: bool | None = None,
    tensorboard: bool | None = None,
    sync_tensorboard: bool | None = None,
    monitor_gym: bool | None = None,
    settings: Settings | dict[str, Any] | None = None,
    magic: bool | dict[str, Any] | str | None = None,
) -> Run:
    """Start a run (or resume, rewind or fork one) and return it.

    Every value resolves as: this argument, else the field of ``settings``, else the ``TRACKER_*``
    environment variable, else the default. Bad values raise ``UsageError`` naming the argument, the value
    and what is allowed, and leave nothing behind.

    Parameters
    ----------
    entity
        Team or user the run belongs to; recorded, part of ``run.path``; online, the experiment becomes
        ``entity/project``.
    project
        The run's project. Default: the git root's name, else the script's name, else ``"uncategorized"``.
    dir
        The store root (default ``TRACKER_DIR`` or ``./tracker``); the run lives in ``<dir>/<project>/<id>``.
    id
        Unique id within the project (default: 8 random lowercase alphanumerics); ``/ \\ # ? % :`` refused.
    name, notes
        Display name (default: a random ``adjective-noun-N``) and a longer description.
    tags
        A list of strings; on resume they replace the run's tags.
    config
        A dict, ``argparse.Namespace``, absl flags, or a path to a YAML file. Keys must not contain '.'.
    config_exclude_keys, config_include_keys
        Keys of ``config`` to drop, or the only ones to keep (not both).
    allow_val_change
        Allow changing a config value once set (default: True in a notebook, False elsewhere).
    group, job_type
        Organize runs into experiments and kinds of job.
    mode
        ``"online"`` (sync to the tracking server), ``"offline"`` (``"dryrun"``) or ``"disabled"``.
        Default: online when a server is configured (``TRACKER_BASE_URL``), else offline.
    force
        Make a missing or failing tracking server an error instead of a fallback to offline.
    anonymous
        ``"never"``, ``"allow"`` or ``"must"``: whether credentials are required, used or withheld online.
    reinit
        With a run active: ``"finish_previous"`` (True), ``"return_previous"`` (False), ``"create_new"``;
        ``"default"`` (None) finishes it in IPython/notebooks and returns it in scripts.
    resume
        ``"allow"``, ``"never"``, ``"must"``, ``"auto"`` (True), or None/False for always a new run.
    resume_from
        ``"{run_id}?_step={step}"``: continue that run as if nothing after ``step`` had been logged.
    fork_from
        ``"{run_id}?_step={step}"``: a new run starting from a copy of that run's history up to ``step``.
    save_code
        Save the program or notebook, the session history and the git diff with the run.
    tensorboard, sync_tensorboard
        Mirror TensorBoard scalars into the run (``tensorboard`` is the older name).
    monitor_gym
        Log videos recorded by gymnasium's ``RecordVideo``.
    settings
        A ``Settings`` or a dict of its fields: advanced options and their environment variables.
    magic
        Auto-instrumentation: True, or a dict / JSON string / YAML path selecting ``args``, ``absl``,
        ``keras``.

    Returns
    -------
    Run
        The run; also ``tracker_jupyter.run`` unless ``reinit="create_new"`` left another run current.

    Raises
    ------
    UsageError
        An argument is invalid, or a resume/rewind/fork target does not exist or is in use.
    ConfigError
        A resumed run's config key would change without ``allow_val_change``.
    CommError, AuthenticationError
        Online with ``force=True``: the server cannot be reached, or refuses the credentials.
    """
    # ---- 1. arguments alone: refuse what can never work, before touching anything
    for argument, value in (
        ("entity", entity), ("project", project), ("id", id), ("name", name), ("notes", notes),
        ("group", group), ("job_type", job_type), ("mode", mode), ("anonymous", anonymous),
    ):  # fmt: skip
        _check_str(argument, value)
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

    # ---- 2. resolve: explicit > settings > environment > default
    mode, mode_from = resolve_from("mode", mode, settings)
    if mode == "dryrun":
        mode = "offline"
    if mode is not None:
        _check_choice(mode_from, mode, (*MODES, "dryrun"))
    if resume is None and (rewind is not None or fork is not None):
        resume_mode = None  # an explicit resume_from/fork_from wins over TRACKER_RESUME or settings.resume
    else:
        resume_mode = _normalize_resume(*resolve_from("resume", resume, settings))
    given = [n for n, v in (("resume", resume_mode), ("resume_from", rewind), ("fork_from", fork)) if v]
    if len(given) > 1:
        raise UsageError(
            f"{' and '.join(given)} cannot be combined; pass only one of resume, resume_from, fork_from."
        )
    anonymous, anonymous_from = resolve_from("anonymous", anonymous, settings)
    if anonymous is not None:
        _check_choice(anonymous_from, anonymous, ANONYMOUS)
    force = bool(resolve("force", force, settings))
    silent = bool(resolve("silent", None, settings))
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
    if tensorboard is not None and sync_tensorboard is None:
        sync_tensorboard = tensorboard  # the older name of the same switch
    shell = host.get_shell()
    interactive = host.in_interactive(shell)
    notebook = host.in_notebook(shell)

    tags_value = tags if tags is not None else resolve("run_tags", None, settings)
    tags = check_tags(tags_value) if tags_value is not None else None
    if allow_val_change is None:
        allow_val_change = notebook  # the reference: True in notebooks, False in scripts
    initial_config = _initial_config(config, config_include_keys, config_exclude_keys)

    if mode is None:
        mode = "online" if resolve("base_url", None, settings) else "offline"
        if not resolve("base_url", None, settings) and force:
            raise UsageError(
                "force=True needs a tracking server, and none is configured: set TRACKER_BASE_URL "
                "(or settings={'base_url': ...}), or drop force to log offline."
            )

    # ---- 3. a run already active in this process
    if reinit_mode == "default":
        reinit_mode = "finish_previous" if interactive else "return_previous"
    previous = holder.run
    if previous is not None and reinit_mode == "return_previous":
        if resume_mode == "must":
            raise UsageError(
                f"resume='must' asked for run {run_id!r}, but run {previous.id} is active and reinit keeps it. "
                "Finish it first (tracker_jupyter.finish()) or pass reinit='finish_previous'."
            )
        _say(
            f"run {previous.name} ({previous.id}) is still active; returning it (pass reinit= to change).",
            silent,
        )
        return previous
    if mode != "disabled":
        root = Path(resolve("root_dir", os.fspath(dir) if dir is not None else None, settings)).expanduser()
        project_name: str = resolve("project", project, settings) or _default_project()
        store.check_name("project", project_name, max_len=MAX_PROJECT_LENGTH)
        entity = resolve("entity", entity, settings)
        notebook_file = (
            host.notebook_path(shell, resolve("notebook_name", None, settings)) if interactive else None
        )
        program = resolve("program", None, settings) or notebook_file or host.program_path()
        program_key = _program_key(resolve("program", None, settings), notebook_file)
        # every refusal opening the run would raise, raised now: a refused init() leaves the active run be
        _open_run(
            root=root, project=project_name, run_id=run_id, resume_mode=resume_mode, rewind=rewind, fork=fork,
            program_key=program_key, check_only=True, config=initial_config, allow_val_change=allow_val_change,
        )  # fmt: skip

    if reinit_mode == "finish_previous":
        for active in list(reversed(holder.active)):
            active.finish()

    if mode == "disabled":
        return _disabled_run(
            project=resolve("project", project, settings) or "uncategorized",
            entity=resolve("entity", entity, settings), run_id=run_id or new_run_id(),
            name=resolve("run_name", name, settings), notes=resolve("run_notes", notes, settings),
            tags=tags, group=resolve("run_group", group, settings),
            job_type=resolve("run_job_type", job_type, settings), config=initial_config,
            allow_val_change=allow_val_change, settings=settings,
            make_current=reinit_mode != "create_new" or holder.run is None,
        )  # fmt: skip

    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"dir={str(root)!r}: cannot create the run store there ({exc}). Pass another dir=."
        ) from exc

    # ---- 4. which run directory: new, resumed, rewound or forked
    opened = _open_run(
        root=root, project=project_name, run_id=run_id, resume_mode=resume_mode, rewind=rewind, fork=fork,
        program_key=program_key,
    )  # fmt: skip
    assert opened is not None
    meta = opened.meta
    try:
        _apply_identity(
            meta, opened, entity=entity, name=resolve("run_name", name, settings),
            notes=resolve("run_notes", notes, settings), tags=tags, group=resolve("run_group", group, settings),
            job_type=resolve("run_job_type", job_type, settings), mode=mode, program=program,
            notebook=notebook_file,
        )  # fmt: skip
        # a key a resume changes records its first value too
        config_obj = _merged_config(
            opened.config, initial_config, allow_val_change, on_replace=_first_value_keeper(meta, None)
        )
        summary_obj = Summary(opened.summary)
        save_code_on = bool(resolve("save_code", save_code, settings)) and not resolve(
            "disable_code", None, settings
        )
        startup = _startup_task(
            program=None if notebook_file else host.program_path(), save_code=save_code_on,
            disable_git=bool(resolve("disable_git", None, settings)),
        )  # fmt: skip
        writer = store.RunWriter(
            opened.dir, meta=meta, config=config_obj.snapshot, summary=summary_obj.as_dict, lock=opened.lock,
            flush_interval=float(resolve("flush_interval", None, settings)),
            max_pending_rows=int(resolve("max_pending_rows", None, settings)), startup=startup,
        )  # fmt: skip
        if opened.copied_rows:
            writer.append_rows_now(opened.copied_rows)
        object.__setattr__(config_obj, "_on_change", writer.mark_config)
        object.__setattr__(config_obj, "_on_replace", _first_value_keeper(meta, writer))
        summary_obj._on_change = writer.mark_summary
        run = Run(
            meta=meta, config=config_obj, summary=summary_obj, sink=writer, step=opened.next_step,
            settings=settings, run_dir=opened.dir,
        )  # fmt: skip
        run._save_code = save_code_on  # type: ignore[attr-defined]
        run._silent = silent  # type: ignore[attr-defined]
        run._anonymous = anonymous  # type: ignore[attr-defined]
        run._force = force  # type: ignore[attr-defined]
        run.on_finish(_finish_line)
        _remember_for_auto_resume(root, program_key, project_name, meta["id"])
    except BaseException:
        opened.undo()
        raise

    # ---- 5. the parts that build on a live run; a failure here finishes the run as failed
    try:
        if mode == "online":
            _start_online(run, settings=settings, force=force, anonymous=anonymous, silent=silent)
        _start_integrations(
            run, sync_tensorboard=sync_tensorboard, monitor_gym=monitor_gym, magic=magic_parts
        )
        if interactive:
            _attach_to_shell(run, shell)
    except BaseException:
        run.finish(exit_code=1, quiet=True)  # tears down whatever was attached
        opened.undo()  # and leaves the store as it was before this init()
        raise
    holder.add(run, make_current=reinit_mode != "create_new" or holder.run is None)
    install_exit_handlers()
    _init_line(run, opened, silent)
    return run


# ------------------------------------------------------------------------------------- run directory


class _Opened(NamedTuple):
    dir: Path
    meta: dict[str, Any]
    config: dict[str, Any]
    summary: dict[str, Any]
    next_step: int
    lock: store.RunLock
    created: bool
    copied_rows: list[dict[str, Any]]
    how: str  # new | resumed | rewound | forked
    saved: dict[str, bytes | None]  # a resumed run's metadata files as they were, to put back on failure
    archive: str | None = None  # a rewound run's whole history before the rewind

    def undo(self) -> None:
        """Forget a run this init() created; put a resumed or rewound run back as it was."""
        if self.created:
            self.lock.release()
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)
            return
        if self.archive is not None:
            os.replace(self.dir / self.archive, self.dir / store.HISTORY)  # the history before the rewind
        for name, content in self.saved.items():
            if content is not None:
                store.atomic_write(self.dir / name, content)
        self.lock.release()  # last: no other process sees the run half put back


def _new_meta(run_id: str, project: str) -> dict[str, Any]:
    from tracker_jupyter import __version__

    return {
        "id": run_id,
        "project": project,
        "state": "running",
        "start_time": time.time(),
        "tracker_version": __version__,
        **host.machine_info(),
    }


def _find_existing(root: Path, project: str, run_id: str) -> Path | None:
    path = store.run_path(root, project, run_id)
    return path if (path / store.META).exists() else None


def _lock_or_fail(path: Path, run_id: str) -> store.RunLock:
    lock = store.RunLock(path)
    if not lock.acquire():
        mine = [run for run in holder.active if run._run_dir == path]
        if mine:
            raise UsageError(
                f"run {run_id} is active in this process (tracker_jupyter.run or another Run object); finish "
                "it first, or pass reinit='finish_previous' to have init() finish it."
            )
        meta = store.read_json(path / store.META, {}) or {}
        raise UsageError(
            f"run {run_id} ({path}) is open in another process (pid {meta.get('pid', '?')} on "
            f"{meta.get('host', '?')}); finish it there first, or pass another id."
        )
    return lock


def _create(root: Path, project: str, run_id: str | None) -> tuple[Path, store.RunLock, str]:
    """A fresh run directory. ``mkdir`` is the atomic claim, so two processes never get the same id."""
    (root / project).mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        chosen = run_id or new_run_id()
        path = store.run_path(root, project, chosen)
        try:
            path.mkdir()
        except FileExistsError:
            if run_id is not None:
                raise UsageError(
                    f"a run with id {run_id!r} already exists in project {project!r} ({path}). Pass "
                    "resume='allow' or resume='must' to continue it, or another id for a new run."
                ) from None
            continue
        (path / "files").mkdir()
        lock = store.RunLock(path)
        lock.acquire()
        return path, lock, chosen
    raise UsageError("could not find a free run id after 5 tries; is the store directory writable?")


def _resume_existing(path: Path, run_id: str, how: str) -> _Opened:
    lock = _lock_or_fail(path, run_id)
    saved = {name: store.read_bytes(path / name) for name in (store.META, store.CONFIG, store.SUMMARY)}
    meta = store.read_json(path / store.META, {}) or {}
    summary = store.read_json(path / store.SUMMARY)
    # the only way into an existing history: a crashed writer's half line must not swallow the rows to
    # come, and a complete last row without its newline counts as a step
    store.mend_torn_tail(path / store.HISTORY)
    last = store.last_row(path / store.HISTORY)
    next_step = int(last["_step"]) + 1 if last and "_step" in last else 0
    if summary is None:
        summary, next_step = store.summarize(store.iter_history(path / store.HISTORY))
    previous_state = store.run_state(path, meta) if meta.get("state") in store.FINAL_STATES else "crashed"
    meta.update(state="running", exit_code=None, end_time=None, **host.machine_info())
    meta.setdefault("resumes", []).append(
        {"time": time.time(), "step": next_step, "previous_state": previous_state}
    )
    meta["resumed"] = True
    return _Opened(
        dir=path, meta=meta, config=store.read_json(path / store.CONFIG, {}) or {}, summary=summary,
        next_step=next_step, lock=lock, created=False, copied_rows=[], how=how, saved=saved,
    )  # fmt: skip


def _step_source(root: Path, project: str, what: str, ref: StepRef) -> Path:
    """The run directory ``resume_from`` / ``fork_from`` names, or a UsageError saying where it looked."""
    path = _find_existing(root, project, ref.run_id)
    if path is None:
        raise UsageError(
            f"{what}={ref.run_id}?_step={ref.step}: no run {ref.run_id!r} in project {project!r} under {root}."
        )
    return path


def _merged_config(
    existing: dict[str, Any], config: dict[str, Any], allow_val_change: bool, on_replace: Any = None
) -> Config:
    """A run's config: what it had (a resumed or forked run), then ``config`` under the allow_val_change
    rules, which refuse (``ConfigError``) a change of an existing key."""
    merged = Config(allow_val_change=True)
    merged.update(existing)
    object.__setattr__(merged, "_allow_val_change", allow_val_change)
    if on_replace is not None:
        object.__setattr__(merged, "_on_replace", on_replace)
    merged.update(config)
    return merged


def _check_config(path: Path, config: dict[str, Any], allow_val_change: bool) -> None:
    """Refuse now what merging ``config`` into the run at ``path`` would refuse once the run is open."""
    _merged_config(store.read_json(path / store.CONFIG, {}) or {}, config, allow_val_change)


def _open_run(
    *,
    root: Path,
    project: str,
    run_id: str | None,
    resume_mode: str | None,
    rewind: StepRef | None,
    fork: StepRef | None,
    program_key: str,
    check_only: bool = False,
    config: dict[str, Any] | None = None,
    allow_val_change: bool = False,
) -> _Opened | None:
    """Open the run directory init() logs to. With ``check_only``, only read: raise every refusal opening
    would raise (unknown runs, steps, ids, config changes a resumed run refuses) and return None, so that
    init() can refuse before it finishes the active run."""
    if rewind is not None:
        rewound = _step_source(root, project, "resume_from", rewind)
        if check_only:
            store.check_step(rewound, rewind.step, f"resume_from={rewind.run_id}?_step={rewind.step}: ")
            _check_config(rewound, config or {}, allow_val_change)
            return None
        lock = _lock_or_fail(rewound, rewind.run_id)
        try:
            saved = {
                name: store.read_bytes(rewound / name) for name in (store.META, store.CONFIG, store.SUMMARY)
            }
            archive = store.rewind_history(rewound, rewind.step)
        finally:
            lock.release()
        opened = _resume_existing(rewound, rewind.run_id, "rewound")._replace(saved=saved, archive=archive)
        opened.meta.setdefault("rewinds", []).append({"time": time.time(), "step": rewind.step})
        return opened
    if fork is not None:
        source = _step_source(root, project, "fork_from", fork)
        if check_only:
            store.check_step(source, fork.step, f"fork_from={fork.run_id}?_step={fork.step}: ")
            return None
        rows = store.history_until(source, fork.step)
        forked, lock, new_id = _create(root, project, run_id)
        source_meta = store.read_json(source / store.META, {}) or {}
        meta = _new_meta(new_id, project)
        meta["fork"] = {"run_id": fork.run_id, "project": project, "step": fork.step}
        for key in ("entity", "group", "job_type", "notes", "tags"):
            if source_meta.get(key) is not None:
                meta[key] = source_meta[key]
        summary, _ = store.summarize(iter(rows))
        return _Opened(
            dir=forked, meta=meta, config=store.read_json(source / store.CONFIG, {}) or {}, summary=summary,
            next_step=fork.step + 1, lock=lock, created=True, copied_rows=rows, how="forked", saved={},
        )  # fmt: skip
    if resume_mode == "auto" and run_id is None:
        last = store.read_json(root / ".resume" / f"{program_key}.json")
        if last and last.get("project") == project:
            path = _find_existing(root, project, str(last.get("id")))
            if path is not None and store.run_state(path) == "crashed":
                if check_only:
                    _check_config(path, config or {}, allow_val_change)
                    return None
                return _resume_existing(path, str(last["id"]), "resumed")
    if resume_mode == "must" and run_id is None:
        raise UsageError("resume='must' needs the id of the run to continue: pass id= or set TRACKER_RUN_ID.")
    if run_id is not None:
        path = _find_existing(root, project, run_id)
        if path is not None:
            if resume_mode in ("allow", "must", "auto"):
                if check_only:
                    _check_config(path, config or {}, allow_val_change)
                    return None
                return _resume_existing(path, run_id, "resumed")
            raise UsageError(
                f"a run with id {run_id!r} already exists in project {project!r} ({path}). Pass "
                "resume='allow' or resume='must' to continue it, or another id for a new run."
            )
        if resume_mode == "must":
            raise UsageError(
                f"resume='must': no run {run_id!r} in project {project!r} under {root} "
                f"(looked for {store.run_path(root, project, run_id)})."
            )
    if check_only:
        return None
    path, lock, new_id = _create(root, project, run_id)
    return _Opened(
        dir=path, meta=_new_meta(new_id, project), config={}, summary={}, next_step=0, lock=lock,
        created=True, copied_rows=[], how="new", saved={},
    )  # fmt: skip


def _apply_identity(meta: dict[str, Any], opened: _Opened, **fields: Any) -> None:
    new = opened.how in ("new", "forked")
    for key in ("entity", "notes", "group", "job_type", "program", "notebook"):
        value = fields[key]
        if value is not None:
            _check_str(key, value)
            meta[key] = value
        elif new:
            meta.setdefault(key, None)
    if fields["tags"] is not None:
        meta["tags"] = list(fields["tags"])  # tags given at init replace a resumed run's tags
    else:
        meta.setdefault("tags", [])
    if fields["name"] is not None:
        meta["name"] = fields["name"]
    elif not meta.get("name"):
        meta["name"] = new_run_name()
    meta["mode"] = fields["mode"]
    meta["state"] = "running"


def _first_value_keeper(meta: dict[str, Any], writer: store.RunWriter | None) -> Any:
    """Record in ``run.json`` the first value of each config key changed later (allow_val_change): an
    MLflow param is immutable, so it is that first value whenever the run is synced."""

    def keep(key: str, old: Any) -> None:
        first = meta.setdefault("config_first", {})
        if key not in first:
            first[key] = old
            if writer is not None:  # else the writer is yet to write the metadata for the first time
                writer.mark_meta()

    return keep


def _remember_for_auto_resume(root: Path, key: str, project: str, run_id: str) -> None:
    folder = root / ".resume"
    folder.mkdir(exist_ok=True)
    store.write_json_atomic(folder / f"{key}.json", {"project": project, "id": run_id})


def _startup_task(*, program: str | None, save_code: bool, disable_git: bool):
    """Work for the writer thread's start: git facts and code copies cost milliseconds init() need not pay."""

    def startup(writer: store.RunWriter) -> None:
        code = writer.dir / "code"
        start = Path(program).parent if program else None
        root = None if disable_git else host.git_root(start)
        if root is not None:
            info = host.git_info(root)
            if info is not None:
                writer.meta["git"] = info
                writer.mark_meta()
                if save_code and info["dirty"]:
                    diff = host.git_diff(root)
                    if diff:
                        code.mkdir(exist_ok=True)
                        (code / "diff.patch").write_text(diff + "\n", encoding="utf-8")
        if save_code and program:
            code.mkdir(exist_ok=True)
            relative = os.path.relpath(program, root) if root is not None else os.path.basename(program)
            if relative.startswith(".."):
                relative = os.path.basename(program)
            target = code / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            import shutil

            shutil.copy2(program, target)
            writer.meta["code_path"] = f"code/{relative}"
            writer.mark_meta()

    return startup


# ------------------------------------------------------------------------------------- other modes


def _disabled_run(*, project: str, entity: str | None, run_id: str, name: str | None, notes: str | None,
                  tags: tuple[str, ...] | None, group: str | None, job_type: str | None,
                  config: dict[str, Any], allow_val_change: bool, settings: Settings,
                  make_current: bool) -> Run:  # fmt: skip
    """A run whose every method works and which writes nothing anywhere."""
    meta = {
        "id": run_id, "project": project, "entity": entity, "name": name or new_run_name(), "notes": notes,
        "tags": list(tags or ()), "group": group, "job_type": job_type, "mode": "disabled",
        "start_time": time.time(), "state": "running",
    }  # fmt: skip
    config_obj = Config(allow_val_change=allow_val_change)
    config_obj.update(config)
    run = Run(meta=meta, config=config_obj, summary=Summary(), sink=_NullSink(), settings=settings)
    holder.add(run, make_current=make_current)
    return run


def _start_online(run: Run, *, settings: Settings, force: bool, anonymous: str | None, silent: bool) -> None:
    """Online mode: hand the run to the syncer, or fall back to offline when that is allowed."""
    base_url = resolve("base_url", None, settings)
    if not base_url:
        if force:
            raise UsageError(
                "mode='online' with force=True needs a tracking server, and none is configured: set "
                "TRACKER_BASE_URL (or settings={'base_url': ...})."
            )
        run._meta["mode"] = "offline"
        run._meta["offline_reason"] = "no tracking server configured (TRACKER_BASE_URL)"
        run._sink.mark_meta()
        _say(
            "mode='online', but no tracking server is configured (set TRACKER_BASE_URL); logging offline.",
            silent,
        )
        return
    from tracker_jupyter.online import sync

    sync.start(run, settings=settings, base_url=base_url, force=force, anonymous=anonymous, silent=silent)


def _start_integrations(
    run: Run, *, sync_tensorboard: bool | None, monitor_gym: bool | None, magic: dict[str, Any] | None
) -> None:
    if sync_tensorboard:
        from tracker_jupyter.integrations import tensorboard

        tensorboard.start(run)
    if monitor_gym:
        from tracker_jupyter.integrations import gym

        gym.start(run)
    if magic is not None:
        from tracker_jupyter.integrations import magic as magic_module

        magic_module.start(run, magic)


def _attach_to_shell(run: Run, shell: Any) -> None:
    """Notebook/IPython parts of a run (hooks, session history, widget) live in the extension."""
    from tracker_jupyter.ipython import extension

    extension.attach_run(run, shell)


# ------------------------------------------------------------------------------------------ output


def _init_line(run: Run, opened: _Opened, silent: bool) -> None:
    what = {"new": "run", "resumed": "resumed run", "rewound": "rewound run", "forked": "forked run"}[
        opened.how
    ]
    where = run.url or str(opened.dir)
    extra = ""
    if run.mode == "offline":
        extra = f" · offline (upload later: tracker sync {shlex.quote(str(opened.dir))})"
    _say(
        f"{what} {run.name} ({run.id}) → {where}{extra}",
        silent or bool(getattr(run, "_quiet_display", False)),
    )


def _finish_line(run: Run) -> None:
    quiet = getattr(run, "_quiet_finish", None)
    silent = getattr(run, "_silent", False) if quiet is None else quiet
    if getattr(run, "_quiet_display", False):
        return
    _say(f"run {run.name} ({run.id}) {run._meta['state']} · {run.step} steps · {run._run_dir}", silent)
