"""``TrackerMagics``: ``%tracker_init``, ``%tracker_finish``, ``%%tracker`` and ``%tracker_runs``.

Thin on purpose: each magic parses its flags with ``magic_arguments``, calls the public API and turns a
``tracker_jupyter.UsageError`` into IPython's ``UsageError`` (shown as one line, not a traceback).
The class is a traitlets ``Configurable``: ``%config TrackerMagics.project = "mnist"`` or
``c.TrackerMagics.dir = "/data/runs"`` in ``ipython_config.py`` set defaults for runs the magics start.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split
from traitlets import Bool, Enum, TraitType, Unicode

from tracker_jupyter.core.holder import holder
from tracker_jupyter.exceptions import ConfigError
from tracker_jupyter.exceptions import UsageError as TrackerUsageError
from tracker_jupyter.settings import FIELDS, bool_text, describe

# init() arguments that are passed on exactly as parsed (flag --job-type -> job_type, and so on)
_PLAIN = (
    "project", "entity", "name", "notes", "group", "job_type", "mode", "id", "resume_from", "fork_from",
    "dir", "allow_val_change", "save_code", "force", "anonymous", "sync_tensorboard", "tensorboard",
    "monitor_gym", "config_include_keys", "config_exclude_keys",
)  # fmt: skip

_MODES = ("online", "offline", "disabled", "dryrun")


def _trait(setting: str, what: str) -> Any:
    """A ``TrackerMagics`` trait feeding ``setting``: its kind and help come from the setting's declaration,
    so each default is declared once; unset (None), it defers to the environment, then the default."""
    kind = FIELDS[setting]["kind"]
    help = f"{what}. Unset: {describe(setting)}."
    trait: TraitType[Any, Any]
    if setting == "mode":
        trait = Enum(list(_MODES), None, allow_none=True, help=help)
    elif kind == "bool":
        trait = Bool(None, allow_none=True, help=help)
    else:
        trait = Unicode(None, allow_none=True, help=help)
    return trait.tag(config=True, setting=setting)


_INIT_ARGUMENTS = [
    argument("--project", help="Project the run belongs to."),
    argument("--entity", help="User or team that owns the project."),
    argument("--name", help="A short display name for the run."),
    argument("--notes", help="A longer description of the run."),
    argument("--tags", nargs="+", metavar="TAG", help="Tags for the run: --tags baseline resnet"),
    argument(
        "--config",
        nargs="+",
        metavar="KEY=VALUE",
        help="Config values: --config lr=0.01 epochs=3 layers=[64,64]. Values are read as Python "
        "literals when they are (numbers, True, None, lists, ...) and as strings otherwise; quote what "
        "holds spaces, as in a shell: --config 'layers=[64, 64]' name='my run'.",
    ),
    argument("--config-file", metavar="PATH", help="Config from a YAML file."),
    argument("--config-include-keys", nargs="+", metavar="KEY", help="Keep only these config keys."),
    argument("--config-exclude-keys", nargs="+", metavar="KEY", help="Leave out these config keys."),
    argument(
        "--allow-val-change",
        dest="allow_val_change",
        action="store_const",
        const=True,
        help="Let config values change after init (the default in notebooks).",
    ),
    argument(
        "--no-allow-val-change",
        dest="allow_val_change",
        action="store_const",
        const=False,
        help="Refuse changes to config values after init.",
    ),
    argument("--group", help="Group the run with others (e.g. the runs of one sweep)."),
    argument("--job-type", help="What kind of job this is, e.g. train or eval."),
    argument("--mode", help="online, offline or disabled."),
    argument("--id", help="The run's id; with --resume, the run to continue."),
    argument(
        "--resume",
        nargs="?",
        const="true",
        metavar="VALUE",
        help="Continue an earlier run: allow, must, never or auto (alone: auto).",
    ),
    argument("--resume-from", metavar="RUN_ID?_step=N", help="Rewind a run to step N and continue it."),
    argument(
        "--fork-from", metavar="RUN_ID?_step=N", help="Start a new run from a run's history up to step N."
    ),
    argument(
        "--reinit",
        metavar="VALUE",
        help="When a run is active: default, finish_previous, return_previous, create_new (or true/false).",
    ),
    argument("--dir", help="The run store's root directory."),
    argument(
        "--save-code",
        dest="save_code",
        action="store_const",
        const=True,
        help="Save the session history and a copy of the notebook with the run.",
    ),
    argument("--no-save-code", dest="save_code", action="store_const", const=False, help="Save no code."),
    argument(
        "--force",
        action="store_const",
        const=True,
        help="Fail when the tracking server is not usable instead of logging offline.",
    ),
    argument(
        "--anonymous",
        nargs="?",
        const="must",
        metavar="VALUE",
        help="never, allow or must (alone: must).",
    ),
    argument(
        "--sync-tensorboard", action="store_const", const=True, help="Copy TensorBoard logs into the run."
    ),
    argument("--tensorboard", action="store_const", const=True, help="Same as --sync-tensorboard."),
    argument("--monitor-gym", action="store_const", const=True, help="Record videos of gym environments."),
    argument(
        "--magic",
        nargs="?",
        const="True",
        metavar="VALUE",
        help="Auto-instrumentation: alone True; or a dict, a JSON string or a YAML file name.",
    ),
    argument(
        "--settings",
        nargs="+",
        metavar="KEY=VALUE",
        help="Fields of tracker_jupyter.Settings: --settings silent=True flush_interval=1.0",
    ),
]


def _with_init_arguments(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(_INIT_ARGUMENTS):  # applied bottom-up, shown top-down
        func = decorator(func)
    return func


def literal(text: str) -> Any:
    """``text`` as a Python literal (``0.01``, ``True``, ``[1, 2]``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_pairs(flag: str, items: Sequence[str] | None) -> dict[str, Any]:
    """``["lr=0.01", "name=a"]`` → ``{"lr": 0.01, "name": "a"}``; anything else is a UsageError."""
    pairs: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} takes KEY=VALUE pairs, got {item!r}; e.g. {flag} lr=0.01 epochs=3")
        pairs[key.strip()] = literal(text)
    return pairs


def _flag_bool(value: str) -> bool | str:
    """A flag's value as a bool when it spells one (true/false, yes/no, 1/0, on/off), else as given."""
    flag = bool_text(value)
    return value if flag is None or not value.strip() else flag


@magics_class
class TrackerMagics(Magics):
    """Magics for tracker_jupyter runs; the traits are defaults for runs these magics start.

    A trait left unset (None) defers to the ``TRACKER_*`` environment variable, then the default; an
    explicit flag always wins.
    """

    project = _trait("project", "Default project for %tracker_init and %%tracker")
    entity = _trait("entity", "Default entity")
    dir = _trait("root_dir", "Run store root for the magics and %tracker_runs")
    mode = _trait("mode", "Default mode; online when a server is configured, else offline")
    show_widget = _trait("show_widget", "Show the live widget below the cell")
    save_code = _trait("save_code", "Save the session history and the notebook with each run")
    silent = _trait("silent", "No init/finish lines")

    def __init__(self, shell: Any = None, start_run: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.start_run = start_run  # tracker_jupyter.init, handed in by the extension's loader

    # ----- %tracker_init
    @line_magic
    @magic_arguments()
    @_with_init_arguments
    def tracker_init(self, line: str = "") -> Any:
        """Start a run, like ``tracker_jupyter.init()``, and return it: ``run = %tracker_init --project p``.

        Every init() argument has a flag. Defaults come from ``%config TrackerMagics`` and the
        TRACKER_* environment variables; re-running the cell finishes the previous run first.
        """
        args = self._parse(self.tracker_init, "tracker_init", line)
        if args is None:
            return None
        return self._start(args)

    # ----- %tracker_finish
    @line_magic
    @magic_arguments()
    @argument("--exit-code", type=int, metavar="N", help="0 (default): finished; anything else: failed.")
    def tracker_finish(self, line: str = "") -> None:
        """Finish the active run, like ``tracker_jupyter.finish()``; without an active run, do nothing."""
        args = self._parse(self.tracker_finish, "tracker_finish", line)
        if args is None:
            return
        with _usage_errors():
            if holder.run is not None:
                holder.run.finish(exit_code=args.exit_code)

    # ----- %%tracker
    @cell_magic
    @magic_arguments()
    @_with_init_arguments
    def tracker(self, line: str, cell: str) -> Any:
        """Run this cell in a run.

        With no active run, start one with these flags, run the cell and finish the run when the cell
        ends: ``failed`` (exit code 1) when the cell raises, and the error is raised again. With an
        active run, run the cell in it and show the run's live widget below this cell (the flags are
        not used then). The value of the cell's last expression is its output, as usual.
        """
        __tracebackhide__ = True  # IPython leaves this frame out of the traceback of the user's error
        args = self._parse(self.tracker, "tracker", line)
        if args is None:
            return None
        from tracker_jupyter.core import host
        from tracker_jupyter.ipython.attach import show_widget

        active = holder.run
        if active is not None:
            if line.strip():
                print(
                    f"tracker: run {active.name} ({active.id}) is active; %%tracker runs this cell in it "
                    "and does not use the flags."
                )
            if host.in_notebook(self.shell):
                show_widget(active, self.shell)
            return self._execute(cell)
        run = self._start(args)
        try:
            value = self._execute(cell)
        except BaseException:
            run.finish(exit_code=1)
            raise
        run.finish()
        return value

    # ----- %tracker_runs
    @line_magic
    @magic_arguments()
    @argument("--project", help="Only the runs of this project (default: all projects).")
    @argument("--dir", help="The run store's root (default: TrackerMagics.dir, TRACKER_DIR, ./tracker).")
    @argument(
        "--metric",
        help="A summary metric: its chart comes first and the first five runs with it are compared.",
    )
    @argument("--entity", help="The project's entity, for the server's experiment name (entity/project).")
    @argument(
        "--local",
        action="store_true",
        help="Only the local store, even when a tracking server is configured.",
    )
    @argument("--sweep", help="Only the trials of this sweep (its best one is marked ★), by its metric.")
    def tracker_runs(self, line: str = "") -> None:
        """Show a project's runs as an inline table (newest first): the local store's, and, when a tracking
        server is configured (TRACKER_BASE_URL), the project's runs there that are not stored here."""
        args = self._parse(self.tracker_runs, "tracker_runs", line)
        if args is None:
            return
        from tracker_jupyter.display import runs as runs_view

        with _usage_errors():
            records = runs_view.project_runs(
                args.project or self.project, args.dir if args.dir is not None else self.dir,
                server=not args.local, entity=args.entity or self.entity,
            )  # fmt: skip
        if args.sweep:
            records = [
                r
                for r in records
                if ((getattr(r, "meta", None) or {}).get("sweep") or {}).get("id") == args.sweep
            ]
            if not records:
                raise UsageError(f"%tracker_runs --sweep {args.sweep}: no run of that sweep in the store.")
            metric = ((records[0].meta.get("sweep") or {}).get("metric") or {}).get("name")
            if metric and not args.metric:
                args.metric = metric
        options = {"metric": args.metric} if args.metric else {}
        runs_view.show_runs(records, **options)

    # ----- helpers
    def _parse(self, func: Callable[..., Any], name: str, line: str) -> Any:
        """The parsed flags; None after printing the help for ``-h`` / ``--help``."""
        if any(token in ("-h", "--help") for token in line.split()):
            print(func.__doc__)
            return None
        try:
            # POSIX splitting, so quotes group words as in a shell: --notes 'a longer note'
            return func.parser.parse_args(arg_split(line, posix=True, strict=True))  # type: ignore[attr-defined]
        except UsageError as exc:
            raise UsageError(f"%{name}: {exc} (see %{name}? for the flags)") from None
        except ValueError as exc:  # unbalanced quotes
            raise UsageError(f"%{name}: cannot split {line!r}: {exc}") from None

    def _start(self, args: Any) -> Any:
        kwargs = self._init_kwargs(args)
        if self.start_run is None:
            raise UsageError("these magics were not loaded by %load_ext tracker_jupyter; load them that way.")
        with _usage_errors():
            return self.start_run(**kwargs)

    def _init_kwargs(self, args: Any) -> dict[str, Any]:
        kwargs = {name: getattr(args, name) for name in _PLAIN if getattr(args, name) is not None}
        if args.config is not None and args.config_file is not None:
            raise UsageError("pass --config KEY=VALUE ... or --config-file PATH, not both.")
        if args.config is not None:
            kwargs["config"] = parse_pairs("--config", args.config)
        elif args.config_file is not None:
            kwargs["config"] = args.config_file
        if args.tags is not None:
            kwargs["tags"] = list(args.tags)
        if args.resume is not None:
            kwargs["resume"] = _flag_bool(args.resume)
        if args.reinit is not None:
            kwargs["reinit"] = _flag_bool(args.reinit)
        if args.magic is not None:
            kwargs["magic"] = literal(args.magic)
        settings = {
            trait.metadata["setting"]: getattr(self, name)
            for name, trait in self.traits(config=True).items()
            if "setting" in trait.metadata and getattr(self, name) is not None
        }
        settings.update(parse_pairs("--settings", args.settings))
        if settings:
            kwargs["settings"] = settings
        return kwargs

    def _execute(self, cell: str) -> Any:
        """Run ``cell`` in the user namespace as IPython would; return its last expression's value."""
        __tracebackhide__ = True
        shell = self.shell
        assert shell is not None
        code = shell.transform_cell(cell)
        filename = shell.compile.cache(code, raw_code=cell)  # tracebacks then show the cell's lines
        tree = shell.transform_ast(shell.compile.ast_parse(code, filename=filename))
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        namespace = shell.user_ns
        # top-level await, as in any cell: such code evaluates to a coroutine, run to its end here
        with shell.compile.extra_flags(ast.PyCF_ALLOW_TOP_LEVEL_AWAIT):
            body = shell.compile(tree, filename, "exec")
            # the shell's compiler takes AST nodes as compile() does; its annotation says str only
            tail = shell.compile(last, filename, "eval") if last is not None else None  # type: ignore[arg-type]
        self._finish_awaiting(body, eval(body, namespace))
        return self._finish_awaiting(tail, eval(tail, namespace)) if tail is not None else None

    def _finish_awaiting(self, code: Any, value: Any) -> Any:
        if not code.co_flags & inspect.CO_COROUTINE:
            return value
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # terminal IPython, or a shell without a running loop: run it as IPython would
            assert self.shell is not None
            return self.shell.loop_runner(value)
        value.close()
        raise UsageError(
            "%%tracker cannot run a cell with top-level await in a kernel (cell magics run synchronously "
            "inside the kernel's event loop). Start the run with %tracker_init or tracker_jupyter.init() and "
            "run the cell without %%tracker; it logs to the active run."
        )


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """Show a tracker_jupyter UsageError / ConfigError as IPython's UsageError: one line, same message."""
    try:
        yield
    except (TrackerUsageError, ConfigError) as exc:
        raise UsageError(str(exc)) from exc
