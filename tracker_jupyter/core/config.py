"""``Config`` and ``Summary``: a run's inputs and its final numbers, as mappings with attribute access.

Both are ``collections.abc.MutableMapping``s (the views, ``get``, ``in``, ``==`` and ``pop`` come from
there); what is theirs is the rules: config keys and values are checked, and a changed value needs
``allow_val_change``. Each tells its owner about changes through ``connect``; neither does any I/O.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from tracker_jupyter.core.report import Once
from tracker_jupyter.core.values import STORED_MASK, dumps, is_secret_key, mask_secrets, to_json
from tracker_jupyter.exceptions import ConfigError, UsageError

MAX_CONFIG_VALUE_BYTES = 10 * 1024 * 1024


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def _masked(key: str, stored: Any, value: Any) -> bool:
    """Whether ``stored`` is ``value`` as the store masked it (a resumed run's ``***``, at any depth): then
    setting the real value again is no change."""
    if is_secret_key(key):
        return bool(stored == STORED_MASK)
    return isinstance(value, Mapping) and stored == mask_secrets(value)


def _nothing(*args: Any) -> None:
    return None


class Config(MutableMapping[str, Any]):
    """The run's inputs (hyperparameters): a dict with attribute access.

    Keys are strings without '.', values JSON-compatible (anything else is stored as its repr, with a
    warning) and under 10 MB. Changing the value of an existing key raises ``ConfigError`` unless
    ``allow_val_change`` was given to ``init()`` (the default in a notebook) or to ``update()``.
    """

    def __init__(
        self,
        *,
        allow_val_change: bool = False,
        on_change: Callable[[], None] | None = None,
        on_replace: Callable[[str, Any], None] | None = None,
    ) -> None:
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_allow_val_change", allow_val_change)
        object.__setattr__(self, "_on_change", on_change or _nothing)
        # called with (key, old value) when a set key gets another value: the run records the first one
        object.__setattr__(self, "_on_replace", on_replace or _nothing)
        object.__setattr__(self, "_warned", Once())

    def connect(
        self,
        *,
        on_change: Callable[[], None] | None = None,
        on_replace: Callable[[str, Any], None] | None = None,
    ) -> None:
        """Call ``on_change()`` after every change, ``on_replace(key, old)`` before a value is replaced."""
        if on_change is not None:
            object.__setattr__(self, "_on_change", on_change)
        if on_replace is not None:
            object.__setattr__(self, "_on_replace", on_replace)

    # ----- the mapping
    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._items[key]
        self._on_change()

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

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

    def as_dict(self) -> dict[str, Any]:
        """A plain (deep enough) copy: nested dicts and lists are copied too."""
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
    def update(  # type: ignore[override]
        self, data: Mapping[str, Any] | Any = None, allow_val_change: bool | None = None, **kwargs: Any
    ) -> None:
        """Set several keys at once; nothing is changed when any key or value is refused."""
        items = {**config_items(data), **kwargs}
        allow = self._allow_val_change if allow_val_change is None else allow_val_change
        clean: dict[str, Any] = {}
        for key, value in items.items():
            check_config_key(key)
            value = self._clean_value(key, value)
            if (
                not allow
                and key in self._items
                and not _same(self._items[key], value)
                and not _masked(key, self._items[key], value)
            ):
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
        if self._warned(message):
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


class Summary(MutableMapping[str, Any]):
    """The run's final numbers: the last logged value of each key unless set explicitly.

    ``run.summary["best_acc"] = 0.93`` sets a value; logging the key again replaces it with the new last
    value, as with any other key. Keys are flat (``"train/loss"``, as nested dicts are logged); a prefix
    reads as a nested mapping: ``run.summary["train"]["loss"]``, and ``summary.update({"train": {"best":
    1}})`` sets ``"train/best"``.
    """

    def __init__(
        self, data: Mapping[str, Any] | None = None, on_change: Callable[[], None] | None = None
    ) -> None:
        # the dict log() updates in place with each row (the hot path's one dict.update)
        self._data: dict[str, Any] = dict(data or {})
        self._on_change = on_change or _nothing

    def connect(self, *, on_change: Callable[[], None]) -> None:
        """Call ``on_change()`` after every explicit change (logged rows are the sink's to count)."""
        self._on_change = on_change

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            if isinstance(key, str) and self._has_prefix(key):
                return SummarySection(self, key)
            raise

    def __setitem__(self, key: str, value: Any) -> None:
        _check_summary_key(key)
        self._data.update(_flat(key, value))
        self._on_change()

    def __delitem__(self, key: str) -> None:
        if key in self._data:
            del self._data[key]
        elif isinstance(key, str) and self._has_prefix(key):
            for name in [name for name in self._data if name.startswith(key + "/")]:
                del self._data[name]
        else:
            raise KeyError(key)
        self._on_change()

    def __contains__(self, key: object) -> bool:
        return key in self._data or (isinstance(key, str) and self._has_prefix(key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"summary has no key {key!r}") from None

    def __repr__(self) -> str:
        return f"Summary({self._data!r})"

    def update(self, data: Mapping[str, Any] | Any = (), **kwargs: Any) -> None:  # type: ignore[override]
        items = {**dict(data), **kwargs}
        for key in items:
            _check_summary_key(key)
        for key, value in items.items():
            self._data.update(_flat(key, value))
        self._on_change()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def _has_prefix(self, key: str) -> bool:
        prefix = key + "/"
        return any(name.startswith(prefix) for name in self._data)


class SummarySection(MutableMapping[str, Any]):
    """The keys of a summary under one prefix (``summary["train"]`` for ``train/...``), read and written
    through to the summary; equal to a dict of the same nested content."""

    def __init__(self, summary: Summary, prefix: str) -> None:
        self._summary = summary
        self._prefix = prefix

    def __getitem__(self, key: str) -> Any:
        return self._summary[f"{self._prefix}/{key}"]

    def __setitem__(self, key: str, value: Any) -> None:
        self._summary[f"{self._prefix}/{key}"] = value

    def __delitem__(self, key: str) -> None:
        del self._summary[f"{self._prefix}/{key}"]

    def __iter__(self) -> Iterator[str]:
        prefix = self._prefix + "/"
        seen: dict[str, None] = {}
        for name in self._summary._data:
            if name.startswith(prefix):
                seen.setdefault(name[len(prefix) :].split("/", 1)[0])
        return iter(seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.as_dict() == (other.as_dict() if isinstance(other, SummarySection) else dict(other))
        return NotImplemented

    def as_dict(self) -> dict[str, Any]:
        """The nested content as plain dicts."""
        return {
            key: value.as_dict() if isinstance(value, SummarySection) else value
            for key, value in self.items()
        }

    def __repr__(self) -> str:
        return f"SummarySection({self._prefix!r}, {self.as_dict()!r})"


def _flat(key: str, value: Any) -> dict[str, Any]:
    """``{key: value}`` with a plain nested dict flattened into ``key/inner`` keys, as ``log()`` does (a
    stored value's reference, which has a ``_type``, stays whole)."""
    if type(value) is not dict or not value or "_type" in value or not all(isinstance(k, str) for k in value):
        return {key: value}
    flat: dict[str, Any] = {}
    for inner, item in value.items():
        flat.update(_flat(f"{key}/{inner}", item))
    return flat


def _check_summary_key(key: Any) -> None:
    if not isinstance(key, str):
        raise UsageError(f"summary keys must be strings, got {key!r}.")


def merged_config(
    existing: Mapping[str, Any],
    config: Mapping[str, Any],
    allow_val_change: bool,
    on_replace: Callable[[str, Any], None] | None = None,
) -> Config:
    """A run's config: what it had (a resumed or forked run), then ``config`` under the allow_val_change
    rules, which refuse (``ConfigError``) a change of an existing key."""
    merged = Config(allow_val_change=allow_val_change, on_replace=on_replace)
    merged.update(existing, allow_val_change=True)
    merged.update(config)
    return merged
