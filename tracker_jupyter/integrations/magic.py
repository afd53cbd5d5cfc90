"""``init(magic=...)``: instrumentation that needs no extra code.

The parts, all on with ``magic=True``:

``args``
    Command-line flags parsed with ``argparse`` go into ``run.config``: every ``argparse.Namespace`` already
    bound to a global of ``__main__`` at ``init()`` (``args = parser.parse_args()`` before ``init()``), and
    the result of every ``parse_args()`` / ``parse_known_args()`` while the run is live. Keys already in the
    config are left as they are (explicit ``config=`` wins). Values that are not JSON types are stored as
    ``str()``.
``absl``
    When ``absl.flags`` is imported and parsed at ``init()``, the flags defined by the main program (not
    absl's own) go into ``run.config`` the same way.
``keras``
    ``keras.Model.fit`` (Keras 3, any backend) gets a callback that logs the epoch's metrics (``loss``,
    ``val_loss``, every compiled metric) plus ``epoch`` as one history row per epoch. Patched at ``init()``
    when Keras is imported, else right after the program imports it; restored at finish.

``magic`` may also be a dict, a JSON object string or the path of a YAML (or JSON) file mapping part names to
a boolean (on or off) or to a mapping of the part's options (on, configured); parts not named keep their
default (on). The options:

``args``, ``absl``: ``exclude``
    Flag names not to record (a list of strings), e.g. ``{"args": {"exclude": ["api_token"]}}``.
``keras``: ``log_batches``
    Also log the training metrics every N batches (an integer; 0, the default, logs epochs only). Batch rows
    carry ``batch`` and ``epoch``.

For example ``{"args": {"exclude": ["password"]}, "keras": {"log_batches": 50}, "absl": false}``. Anything
else (an unknown part or option, a value of the wrong type) is a ``UsageError``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from tracker_jupyter.core.values import to_json
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.integrations._patching import Patch, WhenImported

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

PARTS = ("args", "absl", "keras")


OPTIONS: dict[str, dict[str, Any]] = {  # part -> option -> default
    "args": {"exclude": []},
    "absl": {"exclude": []},
    "keras": {"log_batches": 0},
}


def parse(value: Any) -> dict[str, dict[str, Any] | None]:
    """The parts ``value`` switches on, each with its options (None: off), or a UsageError saying what is
    wrong with it."""
    if value is True:
        return {part: dict(OPTIONS[part]) for part in PARTS}
    if value is None or value is False:
        return dict.fromkeys(PARTS)
    if isinstance(value, str):
        value = _load_string(value)
    if not isinstance(value, dict):
        raise UsageError(
            f"magic must be True/False, a dict, a JSON object string or a YAML file path; got "
            f"{type(value).__name__} {value!r}."
        )
    unknown = sorted(map(str, set(value) - set(PARTS)))
    if unknown:
        raise UsageError(f"magic: unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}.")
    parts: dict[str, dict[str, Any] | None] = {part: dict(OPTIONS[part]) for part in PARTS}
    for key, setting in value.items():
        if isinstance(setting, bool):
            parts[key] = dict(OPTIONS[key]) if setting else None
        elif isinstance(setting, dict):
            parts[key] = _options(key, setting)
        else:
            raise UsageError(
                f"magic[{key!r}] must be true or false, or a mapping of its options "
                f"({', '.join(OPTIONS[key])}); got {setting!r}."
            )
    return parts


def _options(part: str, given: dict[Any, Any]) -> dict[str, Any]:
    unknown = sorted(map(str, set(given) - set(OPTIONS[part])))
    if unknown:
        raise UsageError(
            f"magic[{part!r}]: unknown option(s) {', '.join(unknown)}; its options are {', '.join(OPTIONS[part])}."
        )
    options = {**OPTIONS[part], **given}
    exclude = options.get("exclude", [])
    if "exclude" in options and (
        not isinstance(exclude, (list, tuple)) or not all(isinstance(n, str) for n in exclude)
    ):
        raise UsageError(f"magic[{part!r}]['exclude'] must be a list of flag names, got {exclude!r}.")
    every = options.get("log_batches", 0)
    if "log_batches" in options and (isinstance(every, bool) or not isinstance(every, int) or every < 0):
        raise UsageError(f"magic[{part!r}]['log_batches'] must be a whole number 0 or more, got {every!r}.")
    return options


def _load_string(text: str) -> Any:
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"magic={text!r} is not valid JSON: {exc}") from exc
    if not os.path.isfile(text):
        raise UsageError(
            f"magic={text!r} is neither a JSON object nor an existing YAML file (relative paths start at "
            f"{os.getcwd()})."
        )
    import yaml

    try:
        with open(text, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise UsageError(f"magic={text!r} is not valid YAML: {exc}") from exc


# ------------------------------------------------------------------------------------------------ args


def _plain(value: Any) -> Any:
    """A flag's value as config data: JSON as ``to_json`` makes it, anything else its ``str``."""
    return to_json(value, lambda unknown, where: str(unknown))


def _record_namespace(run: Run, namespace: Any, exclude: frozenset[str]) -> None:
    items = {k: _plain(v) for k, v in vars(namespace).items() if not k.startswith("_") and k not in exclude}
    if items and run.state == "running":
        run.config.setdefaults(items)


def _start_args(run: Run, undo: list[Any], options: dict[str, Any]) -> None:
    import argparse

    exclude = frozenset(options["exclude"])
    main = sys.modules.get("__main__")
    for value in list(vars(main).values()) if main is not None else ():
        if isinstance(value, argparse.Namespace):
            _record_namespace(run, value, exclude)
    depth = [0]  # subparsers call parse_known_args again: record only the outermost result

    def make(original: Any) -> Any:
        def parse_known_args(self: Any, *args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            try:
                result = original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                _record_namespace(run, result[0], exclude)
            return result

        return parse_known_args

    undo.append(Patch(argparse.ArgumentParser, "parse_known_args", make).undo)


def _start_absl(run: Run, options: dict[str, Any]) -> None:
    flags_module = sys.modules.get("absl.flags")
    if flags_module is None:
        return
    flags = flags_module.FLAGS
    if not flags.is_parsed():
        return
    by_module = flags.flags_by_module_dict()
    main_flags = by_module.get(sys.argv[0], []) + by_module.get("__main__", [])
    items = {flag.name: _plain(flag.value) for flag in main_flags if flag.name not in options["exclude"]}
    if items:
        run.config.setdefaults(items)


# ----------------------------------------------------------------------------------------------- keras


def _patch_keras(run: Run, undo: list[Any], options: dict[str, Any]) -> Any:
    every = int(options["log_batches"])

    def patch(keras: Any) -> None:
        class TrackerCallback(keras.callbacks.Callback):  # type: ignore[misc]
            """Logs each epoch's metrics to the run (and every ``log_batches`` batches' training metrics)."""

            epoch = 0

            def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                self.epoch = epoch

            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
                if every and (batch + 1) % every == 0 and run.state == "running":
                    run.log({**(logs or {}), "epoch": self.epoch, "batch": batch})

            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                if run.state == "running":
                    run.log({**(logs or {}), "epoch": epoch})

        def make(original: Any) -> Any:
            def fit(self: Any, *args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
                callbacks = list(callbacks or [])
                if not any(isinstance(c, TrackerCallback) for c in callbacks):
                    callbacks.append(TrackerCallback())
                return original(self, *args, callbacks=callbacks, **kwargs)

            return fit

        undo.append(Patch(keras.Model, "fit", make).undo)

    return patch


# --------------------------------------------------------------------------------------------- wiring


def start(run: Run, parts: dict[str, dict[str, Any] | None]) -> None:
    """Switch on the ``parts`` (``parse``'s result) for ``run`` until it finishes (see the module docstring)."""
    undo: list[Any] = []
    if parts["args"] is not None:
        _start_args(run, undo, parts["args"])
    if parts["absl"] is not None:
        _start_absl(run, parts["absl"])
    if parts["keras"] is not None:
        hook = WhenImported("keras", _patch_keras(run, undo, parts["keras"]))
        undo.append(hook.remove)

    def stop(finished: Any) -> None:
        for action in reversed(undo):
            action()

    run.on_finish(stop)
