"""Reversible patches of other code's attributes (the shell's display hooks, a library's methods).

``Patch(owner, name, make)`` sets ``owner.<name>`` to ``make(original)`` and ``undo()`` takes it back. When
something else wrapped the attribute after us, undoing would throw that wrapper away too, so the patch
then stays in the chain and only passes calls through to the original.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_MISSING = object()


class Patch:
    """``setattr(owner, name, make(original))`` now, the original back on ``undo()``.

    Patching a class (not its instances) covers objects created before the patch too: method lookup goes
    through the class on every call. ``setattr`` raises ``AttributeError`` (or ``TypeError``) for an owner
    that refuses it, such as a real file's ``write``; nothing is patched then.
    """

    def __init__(self, owner: Any, name: str, make: Callable[[Any], Callable[..., Any]]) -> None:
        self.owner = owner
        self.name = name
        self.active = True
        self._saved = getattr(owner, "__dict__", {}).get(name, _MISSING)
        original = getattr(owner, name)
        replacement = make(original)
        patch = self

        @functools.wraps(original)
        def dispatch(*args: Any, **kwargs: Any) -> Any:
            return (replacement if patch.active else original)(*args, **kwargs)

        self._installed = dispatch
        setattr(owner, name, dispatch)

    def undo(self) -> None:
        self.active = False
        if getattr(self.owner, "__dict__", {}).get(self.name, _MISSING) is not self._installed:
            return  # wrapped again since: stay in the chain, passing calls through
        if self._saved is _MISSING:
            delattr(self.owner, self.name)  # the attribute was inherited (or per class): drop ours
        else:
            setattr(self.owner, self.name, self._saved)


def call_then(after: Callable[..., None], on_error: Callable[[Exception], None]) -> Callable[[Any], Any]:
    """A ``make`` for ``Patch``: the original runs, then ``after`` with the same arguments; an error in
    ``after`` goes to ``on_error`` and never to the caller."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            try:
                after(*args, **kwargs)
            except Exception as exc:
                on_error(exc)
            return result

        return wrapper

    return make
