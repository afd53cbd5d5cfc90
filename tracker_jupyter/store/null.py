"""The sink of a disabled run: the same pipeline as a stored run, with nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tracker_jupyter.core.sink import Row, RowsListener


class NullSink:
    """The sink of a disabled run: accepts everything, keeps nothing."""

    def __init__(self) -> None:
        # every row takes log()'s normalizing path, so a disabled run refuses and warns as a stored one
        self.append_plain: Callable[[Row], bool] = lambda row: False
        self.append: Callable[[Row], None] = lambda row: None
        self._scratch: str | None = None

    def mark_meta(self) -> None: ...
    def mark_config(self) -> None: ...
    def mark_summary(self) -> None: ...
    def subscribe(self, listener: RowsListener) -> None: ...
    def unsubscribe(self, listener: RowsListener) -> None: ...
    def flush(self) -> None: ...
    def close(self, *, fsync: bool = True) -> None: ...

    def files_dir(self) -> str:
        """A scratch directory, for code that writes files into ``run.dir`` even when nothing is kept."""
        if self._scratch is None:
            import tempfile

            self._scratch = tempfile.mkdtemp(prefix="tracker-disabled-")
        return self._scratch

    def put_file(self, relative: str, content: bytes | str | Path) -> Path | None:
        return None  # the row says what would have been stored

    def save_files(self, glob_str: str, base_path: str | None, policy: str = "live") -> list[str]:
        return []

    def console_log(self, max_bytes: int) -> None:
        return None

    def system_stream(self) -> None:
        return None
