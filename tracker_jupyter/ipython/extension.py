"""``%load_ext tracker_jupyter``: the extension's entry points, and nothing else.

``load_ipython_extension`` registers ``TrackerMagics`` (``%load_ext``, ``%reload_ext`` and
``c.InteractiveShellApp.extensions`` all go through it); ``unload_ipython_extension`` removes exactly
what it added. What a run needs in a shell is ``attach``'s, for runs started with or without magics.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracker_jupyter.ipython.magics import TrackerMagics

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

_loaded: weakref.WeakKeyDictionary[Any, TrackerMagics] = weakref.WeakKeyDictionary()


def load_ipython_extension(shell: Any, start_run: Callable[..., Any]) -> None:
    """Register ``TrackerMagics`` on ``shell``; loading again is harmless.

    ``start_run`` is what the magics call to start a run: ``tracker_jupyter.init``, which the package
    root hands in (the magics sit below the init pipeline and never import it).
    """
    if shell in _loaded:
        return
    from tracker_jupyter.ipython.magics import TrackerMagics

    magics = TrackerMagics(shell=shell, start_run=start_run)  # joins shell.configurables: %config works
    shell.register_magics(magics)
    _loaded[shell] = magics


def unload_ipython_extension(shell: Any) -> None:
    """Remove what ``load_ipython_extension`` added: the magics and their configurable.

    Runs that are still active keep recording; they clean up after themselves when they finish.
    """
    magics = _loaded.pop(shell, None)
    if magics is None:
        return
    manager = shell.magics_manager
    for table in manager.magics.values():
        for name, func in list(table.items()):
            if getattr(func, "__self__", None) is magics:
                del table[name]
    if manager.registry.get(type(magics).__name__) is magics:
        del manager.registry[type(magics).__name__]
    if magics in shell.configurables:
        shell.configurables.remove(magics)
