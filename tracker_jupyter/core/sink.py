"""What a ``Run`` hands its records to: the ``Sink`` protocol (``store`` has the sinks).

The store's ``RunWriter`` is the sink of every stored run. A ``Run`` never touches a file itself: rows,
metadata marks, files logged as media or saved with ``run.save()`` all go through its sink, and the parts
that follow a run (the live widget, the syncer) subscribe to the rows the sink has written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

Row = dict[str, Any]
RowsListener = Callable[[list[Row]], None]


class Sink(Protocol):
    """The run's side of the store. ``append_plain`` is the one call per common logged row, so it must be
    cheap; when it or ``append`` returns, the row must be safe from the process dying (the store hands it to
    the kernel)."""

    def append_plain(self, row: Row) -> bool:
        """Store ``row`` if it is plain: string keys; strings, finite numbers, bools, and lists of them.
        Otherwise store nothing and return False: the caller normalizes the row and calls ``append``."""
        ...

    def append(self, row: Row) -> None:
        """Store any normalized row (NaN, None and nested lists included)."""
        ...

    def mark_meta(self) -> None: ...
    def mark_config(self) -> None: ...
    def mark_summary(self) -> None: ...
    def subscribe(self, listener: RowsListener) -> None: ...
    def unsubscribe(self, listener: RowsListener) -> None: ...
    def flush(self) -> None: ...
    def close(self, *, fsync: bool = True) -> None: ...
    def files_dir(self) -> str: ...
    def put_file(self, relative: str, content: bytes | str | Path) -> Path | None: ...
    def save_files(self, glob_str: str, base_path: str | None, policy: str = ...) -> list[str]: ...
    def console_log(self, max_bytes: int) -> Any:
        """Where the run's console output goes (``write(text)``, ``close()``); None keeps nothing."""
        ...

    def system_stream(self) -> Any:
        """Where system metrics samples go (``append(sample)``); None keeps nothing."""
        ...
