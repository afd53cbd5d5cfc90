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
booleans, e.g. ``{"args": true, "keras": false}``; parts not named keep their default (on). Anything else is
a ``UsageError``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from ..exceptions import UsageError
from ._patching import Patch, WhenImported

PARTS = ("args", "absl", "keras")


def parse(value: Any) -> dict[str, bool]:
    """The parts ``value`` switches on, or a UsageError saying what is wrong with it."""
    if value is True:
        return dict.fromkeys(PARTS, True)
    if value is None or value is False:
        return dict.fromkeys(PARTS, False)
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
    parts = dict.fromkeys(PARTS, True)
    for key, enabled in value.items():
        if not isinstance(enabled, bool):
            raise UsageError(f"magic[{key!r}] must be true or false, got {enabled!r}.")
        parts[key] = enabled
    return parts


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
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _record_namespace(run: Any, namespace: Any) -> None:
    items = {k: _plain(v) for k, v in vars(namespace).items() if not k.startswith("_")}
    if items and run.state == "running":
        run.config.setdefaults(items)


def _start_args(run: Any, undo: list[Any]) -> None:
    import argparse

    main = sys.modules.get("__main__")
    for value in list(vars(main).values()) if main is not None else ():
        if isinstance(value, argparse.Namespace):
            _record_namespace(run, value)
    depth = [0]  # subparsers call parse_known_args again: record only the outermost result

    def make(original: Any) -> Any:
        def parse_known_args(self: Any, *args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            try:
                result = original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                _record_namespace(run, result[0])
            return result

        return parse_known_args

    undo.append(Patch(argparse.ArgumentParser, "parse_known_args", make).undo)


def _start_absl(run: Any) -> None:
    flags_module = sys.modules.get("absl.flags")
    if flags_module is None:
        return
    flags = flags_module.FLAGS
    if not flags.is_parsed():
        return
    by_module = flags.flags_by_module_dict()
    main_flags = by_module.get(sys.argv[0], []) + by_module.get("__main__", [])
    items = {flag.name: _plain(flag.value) for flag in main_flags}
    if items:
        run.config.setdefaults(items)


# ----------------------------------------------------------------------------------------------- keras


def _patch_keras(run: Any, undo: list[Any]) -> Any:
    def patch(keras: Any) -> None:
        class TrackerCallback(keras.callbacks.Callback):  # type: ignore[misc]
            """Logs each epoch's metrics to the run."""

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


def start(run: Any, value: Any) -> None:
    """Switch on the parts ``value`` selects for ``run`` until it finishes (see the module docstring)."""
    parts = parse(value)
    undo: list[Any] = []
    if parts["args"]:
        _start_args(run, undo)
    if parts["absl"]:
        _start_absl(run)
    if parts["keras"]:
        hook = WhenImported("keras", _patch_keras(run, undo))
        undo.append(hook.remove)

    def stop(finished: Any) -> None:
        for action in reversed(undo):
            action()

    run.on_finish(stop)
