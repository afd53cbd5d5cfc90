"""``init()``: a short pipeline of named steps, each in the layer that owns it.

1. resolve (``_request``): every argument checked and every value resolved once;
2. reinit: a run already active is returned, or finished after the plan;
3. plan (``store.opening.plan_run``): read-only, raises every refusal before anything changes;
4. open (``store.opening.open_run``): the run directory, with an undo for a later failure;
5. wire: the ``Run`` and its sink (the store's writer; a disabled run's null sink);
6. start parts: online sync, integrations, the IPython shell; a failure finishes the run and undoes 4.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tracker_jupyter import store
from tracker_jupyter._request import InitRequest, RunLocation, check_str, locate, resolve_request
from tracker_jupyter.core import host
from tracker_jupyter.core.config import Config, Summary, merged_config
from tracker_jupyter.core.holder import holder, install_exit_handlers
from tracker_jupyter.core.names import new_run_id, new_run_name
from tracker_jupyter.core.run import Run, RunOptions
from tracker_jupyter.display.presenter import RunPresenter
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.settings import Settings, resolve
from tracker_jupyter.store.capture import startup_task
from tracker_jupyter.store.opening import Opened, RunPlan, open_run, plan_run, remember_for_auto_resume
from tracker_jupyter.store.writer import RunWriter

_PRESENTER = RunPresenter()


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
    request = resolve_request(
        entity=entity, project=project, dir=dir, id=id, name=name, notes=notes, tags=tags, config=config,
        config_exclude_keys=config_exclude_keys, config_include_keys=config_include_keys,
        allow_val_change=allow_val_change, group=group, job_type=job_type, mode=mode, force=force,
        anonymous=anonymous, reinit=reinit, resume=resume, resume_from=resume_from, fork_from=fork_from,
        save_code=save_code, tensorboard=tensorboard, sync_tensorboard=sync_tensorboard,
        monitor_gym=monitor_gym, settings=settings, magic=magic,
    )  # fmt: skip
    previous = _previous_to_return(request)
    if previous is not None:
        return previous
    plan = location = None
    if request.mode != "disabled":
        location = locate(request)
        plan = _plan(request, location)
    if request.reinit == "finish_previous":
        for active in list(reversed(holder.active)):
            active.finish()
    if plan is None or location is None:
        return _plugged(_wire_disabled(request))
    opened = _open(plan)
    run = _plugged(_wire(request, location, opened))
    _start_parts(request, run, opened)
    holder.add(run, make_current=request.reinit != "create_new" or holder.run is None)
    trial = holder.sweep_trial
    if trial is not None and "run" not in trial:  # the run of a sweep agent's trial
        trial["run"] = run
        sweep = {"id": trial["sweep"], "trial": trial["trial"]}
        if trial.get("metric"):
            sweep["metric"] = trial["metric"]  # for the runs dashboard: which trial is best
        run.update_meta(sweep=sweep)
    install_exit_handlers()
    _init_line(run, opened, request.silent)
    return run


# ------------------------------------------------------------------------------------------------ steps


def _plugged(run: Run) -> Run:
    """The run with the parts its methods reach through ``run.parts`` (they live in higher layers and are
    imported when first used)."""
    run.parts.watch, run.parts.unwatch = _watch, _unwatch
    run.parts.artifacts = _artifacts
    return run


class _LazyArtifacts:
    """``artifacts.runs``, imported when a run first uses an artifact."""

    def __getattr__(self, name: str) -> Any:
        from tracker_jupyter.artifacts import runs

        return getattr(runs, name)


_artifacts = _LazyArtifacts()


def _watch(*args: Any) -> Any:
    from tracker_jupyter.integrations import watch

    return watch.watch(*args)


def _unwatch(*args: Any) -> Any:
    from tracker_jupyter.integrations import watch

    return watch.unwatch(*args)


def _previous_to_return(request: InitRequest) -> Run | None:
    """The active run, when ``reinit`` says to return it instead of starting another."""
    previous = holder.run
    if previous is None or request.reinit != "return_previous":
        return None
    if request.resume == "must":
        raise UsageError(
            f"resume='must' asked for run {request.run_id!r}, but run {previous.id} is active and reinit keeps "
            "it. Finish it first (tracker_jupyter.finish()) or pass reinit='finish_previous'."
        )
    _say(
        f"run {previous.name} ({previous.id}) is still active; returning it (pass reinit= to change).",
        request.silent,
    )
    return previous


def _plan(request: InitRequest, location: RunLocation) -> RunPlan:
    """Every refusal opening the run would raise, raised now: a refused init() leaves the active run be."""
    return plan_run(
        root=location.root, project=location.project, run_id=request.run_id, resume=request.resume,
        rewind=request.rewind, fork=request.fork, program_key=location.program_key, config=request.config,
        allow_val_change=request.allow_val_change,
    )  # fmt: skip


def _open(plan: RunPlan) -> Opened:
    try:
        plan.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"dir={str(plan.root)!r}: cannot create the run store there ({exc}). Pass another dir=."
        ) from exc
    try:
        return open_run(plan, held_here=lambda path: any(run.run_dir == path for run in holder.active))
    except OSError as exc:
        raise UsageError(
            f"cannot write the run store at {plan.root} ({exc}). Free space there, fix its permissions, "
            "or pass another dir=."
        ) from exc


def _options(request: InitRequest) -> RunOptions:
    return RunOptions(
        settings=request.settings, silent=request.silent, force=request.force, anonymous=request.anonymous,
        save_code=request.save_code,
        store_root=Path(resolve("root_dir", request.dir, request.settings)).expanduser(),
    )  # fmt: skip


def _wire(request: InitRequest, location: RunLocation, opened: Opened) -> Run:
    """The run on its writer; on any failure the store is put back as it was (``opened.undo``)."""
    meta = opened.meta
    try:
        _apply_identity(
            meta, opened, entity=request.entity, name=request.name, notes=request.notes, tags=request.tags,
            group=request.group, job_type=request.job_type, mode=request.mode, program=location.program,
            notebook=location.notebook_file,
        )  # fmt: skip
        # a key a resume changes records its first value too
        config = merged_config(
            opened.config,
            request.config,
            request.allow_val_change,
            on_replace=_first_value_keeper(meta, None),
        )
        summary = Summary(opened.summary)
        settings = request.settings
        try:
            writer = RunWriter(
                opened.dir, meta=meta, config=config.snapshot, summary=summary.as_dict, lock=opened.lock,
                flush_interval=float(resolve("flush_interval", None, settings)),
                max_pending_rows=int(resolve("max_pending_rows", None, settings)),
                mask_secrets=bool(resolve("mask_secrets", None, settings)),
                startup=startup_task(
                    program=None if location.notebook_file else host.program_path(),
                    save_code=request.save_code, disable_git=bool(resolve("disable_git", None, settings)),
                ),
            )  # fmt: skip
        except OSError as exc:  # a full or read-only disk: nothing of the run is left behind
            raise UsageError(
                f"cannot write the run store at {location.root} ({exc}). Free space there, fix its "
                "permissions, or pass another dir=."
            ) from exc
        if opened.copied_rows:
            writer.append_rows_now(opened.copied_rows)
        config.connect(on_change=writer.mark_config, on_replace=_first_value_keeper(meta, writer))
        summary.connect(on_change=writer.mark_summary)
        run = Run(
            meta=meta, config=config, summary=summary, sink=writer, step=opened.next_step,
            options=_options(request), run_dir=opened.dir, presenter=_PRESENTER,
        )  # fmt: skip
        run.on_finish(_finish_line)
        remember_for_auto_resume(location.root, location.program_key, location.project, meta["id"])
    except BaseException:
        opened.undo()
        raise
    return run


def _wire_disabled(request: InitRequest) -> Run:
    """A run whose every method works and which writes nothing anywhere: the null sink."""
    meta = {
        "id": request.run_id or new_run_id(), "project": request.project or "uncategorized",
        "entity": request.entity, "name": request.name or new_run_name(), "notes": request.notes,
        "tags": list(request.tags or ()), "group": request.group, "job_type": request.job_type,
        "mode": "disabled", "start_time": time.time(), "state": "running",
    }  # fmt: skip
    config = Config(allow_val_change=request.allow_val_change)
    config.update(request.config)
    run = Run(
        meta=meta, config=config, summary=Summary(), sink=store.NullSink(), options=_options(request),
        presenter=_PRESENTER,
    )  # fmt: skip
    holder.add(run, make_current=request.reinit != "create_new" or holder.run is None)
    return run


def _start_parts(request: InitRequest, run: Run, opened: Opened) -> None:
    """The parts that build on a live run; a failure here finishes the run as failed and undoes the open."""
    try:
        if request.mode == "online":
            _start_online(run, request)
        _start_integrations(run, request)
        _start_system(run, request)
        if request.interactive:
            from tracker_jupyter.ipython.attach import attach_run

            attach_run(run, request.shell)  # hooks, session history, widget
    except BaseException:
        run.finish(exit_code=1, quiet=True)  # tears down whatever was attached
        opened.undo()  # and leaves the store as it was before this init()
        raise


def _start_online(run: Run, request: InitRequest) -> None:
    """Online mode: hand the run to the syncer, or fall back to offline when that is allowed."""
    base_url = resolve("base_url", None, request.settings)
    if not base_url:
        if request.force:
            raise UsageError(
                "mode='online' with force=True needs a tracking server, and none is configured: set "
                "TRACKER_BASE_URL (or settings={'base_url': ...})."
            )
        run.update_meta(mode="offline", offline_reason="no tracking server configured (TRACKER_BASE_URL)")
        _say(
            "mode='online', but no tracking server is configured (set TRACKER_BASE_URL); logging offline.",
            request.silent,
        )
        return
    from tracker_jupyter.online import live

    live.start(
        run, settings=request.settings, base_url=base_url, force=request.force, anonymous=request.anonymous,
        silent=request.silent,
    )  # fmt: skip


def _start_system(run: Run, request: InitRequest) -> None:
    """System metrics and console capture, as the settings say (both on by default)."""
    if request.console == "off" and not resolve("system_metrics", None, request.settings):
        return
    from tracker_jupyter import system

    system.start(run, request.settings, request.console)


def _start_integrations(run: Run, request: InitRequest) -> None:
    if request.sync_tensorboard:
        from tracker_jupyter.integrations import tensorboard

        tensorboard.start(run)
    if request.monitor_gym:
        from tracker_jupyter.integrations import gym

        gym.start(run)
    if request.magic is not None:
        from tracker_jupyter.integrations import magic as magic_module

        magic_module.start(run, request.magic)


# ------------------------------------------------------------------------------------------ run facts


def _apply_identity(meta: dict[str, Any], opened: Opened, **fields: Any) -> None:
    new = opened.how in ("new", "forked")
    for key in ("entity", "notes", "group", "job_type", "program", "notebook"):
        value = fields[key]
        if value is not None:
            check_str(key, value)
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


def _first_value_keeper(meta: dict[str, Any], writer: RunWriter | None) -> Any:
    """Record in ``run.json`` the first value of each config key changed later (allow_val_change): an
    MLflow param is immutable, so it is that first value whenever the run is synced."""

    def keep(key: str, old: Any) -> None:
        first = meta.setdefault("config_first", {})
        if key not in first:
            first[key] = old
            if writer is not None:  # else the writer is yet to write the metadata for the first time
                writer.mark_meta()

    return keep


# ------------------------------------------------------------------------------------------ output


def _say(message: str, silent: bool) -> None:
    if not silent:
        print(f"tracker: {message}", file=sys.stderr)


def _init_line(run: Run, opened: Opened, silent: bool) -> None:
    what = {"new": "run", "resumed": "resumed run", "rewound": "rewound run", "forked": "forked run"}[
        opened.how
    ]
    where = run.url or str(opened.dir)
    extra = ""
    if run.mode == "offline":
        extra = f" · offline (upload later: tracker sync {shlex.quote(str(opened.dir))})"
    _say(f"{what} {run.name} ({run.id}) → {where}{extra}", silent or run.parts.quiet_lines)


def _finish_line(run: Run) -> None:
    if run.parts.quiet_lines:
        return
    _say(
        f"run {run.name} ({run.id}) {run.meta['state']} · {run.step} steps · {run.run_dir}", run.finish_quiet
    )
