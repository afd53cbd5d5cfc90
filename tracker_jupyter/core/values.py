"""Values as JSON data: the one coercion every part uses (config, the store's encoder, notebooks, magic).

``to_json`` turns numpy and torch scalars into numbers, arrays and tensors into lists, sets into sorted
lists and paths into strings; what has no JSON form goes to ``unknown`` (by default its ``repr``). Callers
differ only in that policy: the config warns once and keeps the repr, a notebook keeps the ``str``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

_PLAIN = frozenset((str, int, float, bool, type(None)))


def _repr(value: Any, where: str) -> str:
    return repr(value)


def to_json(
    value: Any,
    unknown: Callable[[Any, str], Any] = _repr,
    where: str = "value",
    *,
    finite: bool = False,
) -> Any:
    """``value`` as JSON-compatible data.

    Parameters
    ----------
    value
        Anything; containers are converted item by item (a structure that contains itself raises
        ``RecursionError``).
    unknown
        Called as ``unknown(value, where)`` for a value with no JSON form; its result is used instead.
    where
        The value's place, for ``unknown``'s messages: nested items get ``where.key`` / ``where[i]``.
    finite
        Strict JSON: NaN and infinities become their repr (``'nan'``, ``'inf'``), as Jupyter's own
        messages have them.
    """
    kind = type(value)
    if kind in _PLAIN:
        if finite and kind is float and not math.isfinite(value):
            return repr(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): to_json(v, unknown, f"{where}.{k}", finite=finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, unknown, f"{where}[{i}]", finite=finite) for i, v in enumerate(value)]
    if isinstance(value, (int, float, str)):  # subclasses: IntEnum, numpy.float64, str enums
        plain = value.item() if hasattr(value, "item") else type(value).__mro__[-2](value)
        return to_json(plain, unknown, where, finite=finite)
    item = getattr(value, "item", None)
    if callable(item) and _element_count(value) == 1:  # numpy and torch scalars, one-element arrays
        return to_json(item(), unknown, where, finite=finite)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return to_json(tolist(), unknown, where, finite=finite)
    if isinstance(value, (set, frozenset)):
        return sorted((to_json(v, unknown, where, finite=finite) for v in value), key=repr)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return unknown(value, where)


def _element_count(value: Any) -> Any:
    numel = getattr(value, "numel", None)  # torch: .size is a method, .numel() the count
    return numel() if callable(numel) else getattr(value, "size", 1)


def json_default(value: Any) -> Any:
    """The ``default=`` of a JSON encoder: what it cannot encode, as ``to_json`` makes it."""
    return to_json(value)


def dumps(value: Any) -> str:
    """Compact JSON text as the store writes it (NaN and infinities kept, numpy scalars as numbers)."""
    return json.dumps(value, default=json_default, separators=(",", ":"))


def decide_value(value: Any) -> tuple[Any, str]:
    """What a logged value JSON cannot carry is stored as, and the warning that says so.

    An int too large for a float is stored as a string of its size; anything else as its ``repr``, or,
    when even that fails (a structure that contains itself, a ``__repr__`` that raises), as the name of
    its type. The row is stored either way.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except OverflowError:
            text = f"<int of {value.bit_length()} bits>"
            return text, f"is an int too large for JSON; stored as the string {text!r}."
        if math.isfinite(as_float):
            return as_float, "is an int too large for JSON; stored as the nearest float."
    try:
        text = repr(value)
    except Exception:  # a __repr__ that raises, or recursion
        text = f"<unrepresentable {type(value).__name__}>"
        return text, f"cannot be stored or represented; stored as {text!r}."
    return text, f"of type {type(value).__name__} cannot be stored as JSON; stored as its repr."


def storable(value: Any) -> Any:
    """``value`` with every part JSON cannot carry replaced by its ``decide_value`` form (for the summary,
    config and metadata files: a value the user set is always written, never a reason for the write to
    fail)."""
    if isinstance(value, Mapping):
        out = {}
        for key, inner in value.items():
            try:
                json.dumps(inner, default=json_default)
            except Exception:  # anything: a __repr__ may raise whatever it likes
                inner = storable(inner) if isinstance(inner, Mapping) else decide_value(inner)[0]
            out[str(key)] = inner
        return out
    return decide_value(value)[0]


# ------------------------------------------------------------------------------------------ secrets

STORED_MASK = "***"  # what a secret-looking value is stored and uploaded as
_SECRET_WORD = (
    r"(?:api[_-]?key|apikey|passw(?:or)?d|passwd|secret|token|credential|auth(?!or)|private[_-]?key)"
)
_SECRET_KEY = re.compile(_SECRET_WORD, re.I)
# In saved code: a string literal given to a secret-looking name, as an assignment, a keyword argument, a
# dict entry or an item (``api_key = "…"``, ``token="…"``, ``{"password": "…"}``, ``env["HF_TOKEN"] = "…"``)
_CODE_LITERAL = re.compile(
    r"(?P<name>\b\w*" + _SECRET_WORD + r"\w*[\"']?\]?\s*(?<![=!<>])[:=]\s*)(?P<q>[rRbBuUfF]?[\"'])"
    r"(?P<value>[^\"'\\\n]+)(?=[\"'])",
    re.I,
)
# ``login(key="…")``, and ``%env NAME=value`` / ``%env NAME value`` / ``!export NAME=value`` in a notebook
_CODE_LOGIN_KEY = re.compile(
    r"(?P<name>\blogin\s*\([^)]*?\bkey\s*=\s*)(?P<q>[\"'])(?P<value>[^\"'\\\n]+)(?=[\"'])"
)
_CODE_ENV = re.compile(
    r"(?P<name>^\s*(?:%env|!\s*export|%set_env)\s+\w*" + _SECRET_WORD + r"\w*(?:\s*=\s*|\s+))(?P<q>[\"']?)"
    r"(?P<value>[^\s\"']+)",
    re.I | re.M,
)
_SHORTEST_KNOWN = 4  # a known secret shorter than this is not searched for in saved code


def is_secret_key(key: str) -> bool:
    """The one rule for names whose values are credentials: api keys, passwords, tokens, secrets, auth."""
    return bool(_SECRET_KEY.search(key))


def mask_secrets(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the values of secret-looking keys (at any depth) replaced by ``STORED_MASK``."""
    return {
        key: STORED_MASK
        if is_secret_key(str(key))
        else mask_secrets(value)
        if isinstance(value, Mapping)
        else value
        for key, value in config.items()
    }


def _secret_arguments(args: Sequence[str]) -> Iterator[tuple[int, str | None]]:
    """``(index, flag)`` of each argument that holds a secret: ``flag`` for ``--api-key=X``, None for the
    value after a ``--password`` flag."""
    hide_next = False
    for index, arg in enumerate(args):
        if hide_next:
            hide_next = False
            yield index, None
            continue
        flag, equals, _ = arg.partition("=")
        if flag.startswith("-") and is_secret_key(flag.lstrip("-")):
            if equals:
                yield index, flag
            else:
                hide_next = True


def mask_argv(args: list[str]) -> list[str]:
    """Command-line arguments with the values of secret-looking flags masked: ``--password X`` and
    ``--api-key=X`` keep the flag, not the value."""
    masked = list(args)
    for index, flag in _secret_arguments(args):
        masked[index] = STORED_MASK if flag is None else f"{flag}={STORED_MASK}"
    return masked


def secret_values(config: Mapping[str, Any], args: Sequence[str] = ()) -> list[str]:
    """The strings that ``mask_secrets(config)`` and ``mask_argv(args)`` hide, longest first: what
    ``mask_code`` also hides wherever it appears in saved code and outputs."""
    found: set[str] = set()

    def walk(mapping: Mapping[str, Any]) -> None:
        for key, value in mapping.items():
            if is_secret_key(str(key)):
                if isinstance(value, (str, int)) and not isinstance(value, bool):
                    found.add(str(value))
            elif isinstance(value, Mapping):
                walk(value)

    walk(config)
    for index, flag in _secret_arguments(args):
        found.add(args[index] if flag is None else args[index].partition("=")[2])
    return sorted((value for value in found if len(value) >= _SHORTEST_KNOWN), key=len, reverse=True)


def mask_code(text: str, known: Sequence[str] = ()) -> str:
    """Saved code (or its output) with credentials replaced by ``STORED_MASK``: string literals given to a
    secret-looking name, ``login(key=…)``, ``%env`` / ``!export`` of a secret-looking variable, and every
    ``known`` secret (``secret_values``) wherever it appears."""
    for pattern in (_CODE_LITERAL, _CODE_LOGIN_KEY, _CODE_ENV):
        text = pattern.sub(lambda match: f"{match['name']}{match['q']}{STORED_MASK}", text)
    for value in known:
        text = text.replace(value, STORED_MASK)
    return text
