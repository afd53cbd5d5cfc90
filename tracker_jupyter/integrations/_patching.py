"""What the integrations share: a reversible patch (``core.patching.Patch``), hooks that wait for a
library to be imported, and the message for a missing extra."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracker_jupyter.core.patching import Patch
from tracker_jupyter.exceptions import UsageError

__all__ = ["Patch", "WhenImported", "is_installed", "missing_extra"]


def missing_extra(feature: str, extra: str, packages: str) -> UsageError:
    return UsageError(
        f"{feature} needs {packages}, which is not installed. Install it with "
        f"pip install 'tracker-jupyter[{extra}]' (or pip install {packages})."
    )


def is_installed(module: str) -> bool:
    """Whether ``module``'s top-level package can be imported, without importing it."""
    import importlib.util

    return importlib.util.find_spec(module.partition(".")[0]) is not None


class _CallbackLoader:
    """Runs the real loader, then ``callback(module)``: the module is complete when it is patched."""

    def __init__(self, loader: Any, callback: Callable[[Any], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        self._callback(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class WhenImported:
    """Call ``callback(module)`` once ``module`` is imported: now if it already is, else right after the
    user's own import of it.

    Importing a framework ourselves would cost ``init()`` seconds (tensorboardX alone takes ~1 s), and a user
    who never imports it does not need the patch.
    """

    def __init__(self, module: str, callback: Callable[[Any], None]) -> None:
        import sys

        self.module = module
        self._callback = callback
        self._busy = False
        self._installed = False
        if module in sys.modules:
            callback(sys.modules[module])
        else:
            sys.meta_path.insert(0, self)  # type: ignore[arg-type]
            self._installed = True

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.module or self._busy:
            return None
        import importlib.util

        self._busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy = False
        if spec is None or spec.loader is None:
            return None
        self.remove()
        spec.loader = _CallbackLoader(spec.loader, self._callback)  # type: ignore[assignment]
        return spec

    def invalidate_caches(self) -> None:
        return None

    def remove(self) -> None:
        import sys

        if self._installed:
            self._installed = False
            try:
                sys.meta_path.remove(self)  # type: ignore[arg-type]
            except ValueError:
                pass
