"""A real IPython ``InteractiveShell`` for tests: created fresh, removed without leaving global state.

IPython replaces ``sys.modules["__main__"]`` when a shell is created and ``get_ipython()`` finds the
singleton afterwards, which would make every later ``init()`` in the test session think it runs in
IPython; ``interactive_shell`` puts all of that back.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from traitlets.config import Config

from tracker_jupyter.core.holder import holder


@contextlib.contextmanager
def interactive_shell(ipython_dir: Path, config: Config | None = None) -> Iterator[InteractiveShell]:
    saved_main = sys.modules.get("__main__")
    saved_displayhook = sys.displayhook
    saved_excepthook = sys.excepthook
    config = config if config is not None else Config()
    config.HistoryManager.hist_file = ":memory:"  # nothing written under ~/.ipython
    shell = InteractiveShell.instance(config=config, ipython_dir=str(ipython_dir))
    try:
        yield shell
    finally:
        for run in list(reversed(holder.active)):
            run.finish(quiet=True)
        # Every shell registers its atexit_operations, whose reset() ends in a gc.collect(): one full
        # collection per test shell at interpreter exit. Unregister it and do the part that matters here,
        # closing the history (its saving thread, if any, and its database connection).
        atexit.unregister(shell.atexit_operations)
        if shell.history_manager is not None:
            shell.history_manager.close()
        InteractiveShell.clear_instance()
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        sys.displayhook = saved_displayhook
        sys.excepthook = saved_excepthook


def run_cell(shell: InteractiveShell, source: str) -> ExecutionResult:
    """Run ``source`` as a notebook frontend does: stored in history, so it gets an execution count."""
    return shell.run_cell(source, store_history=True)


def ok(shell: InteractiveShell, source: str) -> Any:
    """Run a cell that must succeed; return its ``Out`` value."""
    result = run_cell(shell, source)
    result.raise_error()
    return result.result
