"""``Table``: rows and named columns, logged as a value and stored once as a file in the run.

``run.log({"preds": table})`` writes ``files/media/tables/preds_<step>_<hash>.table.json`` holding
``{"columns": [...], "data": [[...], ...]}``: the run media file of the reference, and the JSON MLflow's
``log_table`` writes, so the MLflow UI's artifact view reads it once uploaded. The history row holds the
reference::

    {"_type": "table-file", "path": "files/media/tables/preds_3_1a2b3c4d.table.json", "sha256": "...",
     "size": 1234, "ncols": 3, "nrows": 100, "log_mode": "IMMUTABLE"}

Cells may be numbers, strings, bools, None, lists (numpy arrays become lists), datetimes (stored as epoch
milliseconds, as the reference stores them) and media: an ``Image`` in a cell is stored as its own file and
the cell holds its reference, a ``Histogram`` its counts and edges. ``Table.from_file`` reads one back.
"""

from __future__ import annotations

import datetime
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter.core.values import dumps
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.media.base import put_media

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

DEFAULT_COLUMNS = ["Input", "Output", "Expected"]
LOG_MODES = ("IMMUTABLE", "MUTABLE", "INCREMENTAL")
_KINDS = {bool: "boolean", int: "number", float: "number", str: "string"}


class Table:
    """A table for ``run.log()`` (the reference's ``wandb.Table``).

    Parameters
    ----------
    columns
        Column names (strings or ints). Without them: ``["Input", "Output", "Expected"]``, as in the
        reference, so ``data`` rows must then have three values.
    data
        Rows: a list of lists, a 2-d numpy array or a pandas DataFrame.
    rows
        The older name of ``data``.
    dataframe
        A pandas DataFrame; its columns name the table's (``columns`` is then ignored).
    dtype
        One Python type for every column, or one per column (``None`` for "inferred"); a cell of another
        kind is refused.
    optional
        Whether a column takes None: one bool for all, or one per column.
    allow_mixed_types
        Turn off the per-column kind check (a column holds what it is given).
    log_mode
        ``"IMMUTABLE"`` (logging it again stores nothing new; changes after the first log are not stored
        and warned about), ``"MUTABLE"`` (each log after a change stores the table again) or
        ``"INCREMENTAL"`` (each log stores the rows added since the last one).
    """

    MAX_ROWS = 10_000  # rows a logged table may have: raise it on the class for larger tables

    def __init__(
        self,
        columns: Sequence[str | int] | None = None,
        data: Any = None,
        rows: Any = None,
        dataframe: Any = None,
        dtype: Any = None,
        optional: bool | Sequence[bool] = True,
        allow_mixed_types: bool = False,
        log_mode: str = "IMMUTABLE",
    ) -> None:
        if log_mode not in LOG_MODES:
            raise UsageError(f"Table(log_mode=...) must be one of {', '.join(LOG_MODES)}, got {log_mode!r}.")
        self.log_mode = log_mode
        self._allow_mixed = bool(allow_mixed_types)
        if dataframe is None and _is_dataframe(data):
            dataframe, data = data, None
        if dataframe is not None:
            columns = [_column_name(name) for name in dataframe.columns]
            data = dataframe.itertuples(index=False, name=None)
        elif data is None:
            data = rows
        self.columns: list[Any] = _checked_columns(DEFAULT_COLUMNS if columns is None else columns)
        self.data: list[list[Any]] = []
        self._kinds: list[str | None] = [None] * len(self.columns)
        self._declared = _per_column("dtype", dtype, len(self.columns), None)
        self._optional = [bool(flag) for flag in _per_column("optional", optional, len(self.columns), True)]
        self._revision = 0  # changes made, to know whether a logged table changed since
        self._logged: dict[int, tuple[int, int, dict[str, Any]]] = {}  # id(run) -> (revision, rows, ref)
        self._warned_immutable = False
        if data is not None:
            if hasattr(data, "tolist") and getattr(data, "ndim", 2) != 2:
                raise UsageError(f"Table(data=...): an array must be 2-d (rows, columns), got {data.ndim}-d.")
            for row in data.tolist() if hasattr(data, "tolist") else data:
                self.add_data(*row)

    # ----- building
    def add_data(self, *data: Any) -> None:
        """Add a row: one value per column."""
        if len(data) != len(self.columns):
            raise UsageError(
                f"This table expects {len(self.columns)} columns: {self.columns}, found {len(data)}"
                + (" (the default columns: pass columns=[...])" if self.columns == DEFAULT_COLUMNS else "")
                + "."
            )
        kinds = [self._checked_kind(index, value) for index, value in enumerate(data)]
        self._kinds = [known or new for known, new in zip(self._kinds, kinds, strict=True)]
        self.data.append(list(data))
        self._changed()

    add_row = add_data  # the reference's older name

    def add_column(self, name: str | int, data: Sequence[Any] | Any, optional: bool = False) -> None:
        """Add a column: ``data`` holds one value per row (a list or a numpy array)."""
        if not isinstance(name, str) or name in self.columns:
            raise UsageError(f"Table.add_column(): the name must be a new string, got {name!r}.")
        values = data.tolist() if hasattr(data, "tolist") else list(data)
        if self.columns and len(values) != len(self.data):
            raise UsageError(
                f"Table.add_column({name!r}): expected {len(self.data)} values, found {len(values)}."
            )
        self.columns.append(name)
        self._declared.append(None)
        self._optional.append(bool(optional))
        self._kinds.append(None)
        index = len(self.columns) - 1
        try:
            kinds = [self._checked_kind(index, value) for value in values]
        except UsageError:
            for extra in (self.columns, self._declared, self._optional, self._kinds):
                extra.pop()
            raise
        self._kinds[index] = next((kind for kind in kinds if kind), None)
        if not self.data:
            self.data = [[] for _ in values]
        for row, value in zip(self.data, values, strict=True):
            row.append(value)
        self._changed()

    def _checked_kind(self, index: int, value: Any) -> str | None:
        """The kind of ``value`` (None for None); a UsageError when its column holds another kind."""
        column = self.columns[index]
        if value is None:
            if not self._optional[index]:
                raise UsageError(f"Table column {column!r} does not take None (optional=False).")
            return None
        declared = self._declared[index]
        if declared is not None and not self._allow_mixed and not isinstance(value, declared):
            raise UsageError(f"Table column {column!r} holds {declared.__name__}, got {value!r}.")
        kind = _kind(value)
        known = self._kinds[index]
        if not self._allow_mixed and known is not None and kind != known:
            raise UsageError(
                f"Table column {column!r} holds {known} values, got {value!r} ({kind}). Convert it, or pass "
                "allow_mixed_types=True."
            )
        return kind

    def _changed(self) -> None:
        self._revision += 1
        if self.log_mode == "IMMUTABLE" and self._logged and not self._warned_immutable:
            self._warned_immutable = True
            warnings.warn(
                "this Table was logged with log_mode='IMMUTABLE': changes after that are not stored when it "
                "is logged again. Create it with log_mode='MUTABLE' to store each change.",
                UserWarning,
                stacklevel=3,
            )

    # ----- reading
    def get_column(self, name: str | int, convert_to: str | None = None) -> Any:
        """The values of column ``name``: a list, or a numpy array with ``convert_to="numpy"``."""
        if name not in self.columns:
            raise UsageError(f"Table.get_column({name!r}): no such column; the columns are {self.columns}.")
        if convert_to not in (None, "numpy"):
            raise UsageError(f"Table.get_column(convert_to=...) must be None or 'numpy', got {convert_to!r}.")
        index = self.columns.index(name)
        values = [row[index] for row in self.data]
        if convert_to == "numpy":
            import numpy as np

            return np.array(values)
        return values

    def get_index(self) -> list[int]:
        return list(range(len(self.data)))

    def get_dataframe(self) -> Any:
        """The table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame.from_records(self.data, columns=self.columns)

    def iterrows(self) -> Iterator[tuple[int, list[Any]]]:
        """``(index, row)`` for each row."""
        yield from enumerate(self.data)

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Table) and other.columns == self.columns and other.data == self.data

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"<Table {len(self.data)} rows × {len(self.columns)} columns {self.columns!r}>"

    # ----- storing
    def _to_history(self, run: Run, key: str) -> dict[str, Any]:
        if len(self.data) > self.MAX_ROWS:
            raise UsageError(
                f"log() value for {key!r}: a table of {len(self.data):,} rows; a logged table keeps at most "
                f"{self.MAX_ROWS:,} (Table.MAX_ROWS). Log a sample, raise the limit "
                "(tracker_jupyter.Table.MAX_ROWS = n), or save the data as a file with run.save()."
            )
        logged = self._logged.get(id(run))
        if logged is not None and (self.log_mode == "IMMUTABLE" or logged[0] == self._revision):
            return dict(logged[2])  # stored already: the same file again
        first = logged[1] if logged is not None and self.log_mode == "INCREMENTAL" else 0
        rows = [[_cell(run, key, first + i, j, value) for j, value in enumerate(row)]
                for i, row in enumerate(self.data[first:])]  # fmt: skip
        content = (dumps({"columns": self.columns, "data": rows}) + "\n").encode()
        relative, digest, target = put_media(run, "tables", key, content, "table.json")
        ref: dict[str, Any] = {"_type": "table-file", "path": None, "sha256": digest, "size": len(content)}
        ref.update(ncols=len(self.columns), nrows=len(rows), log_mode=self.log_mode)
        if self.log_mode == "INCREMENTAL":
            increments = (
                [*logged[2].get("previous_increments_paths", []), logged[2]["path"]] if logged else []
            )
            ref.update(_type="incremental-table-file", increment_num=len(increments))
            ref["previous_increments_paths"] = [path for path in increments if path]
        if target is not None:
            ref["path"] = relative
        self._logged[id(run)] = (self._revision, len(self.data), ref)
        return dict(ref)

    @classmethod
    def from_file(cls, path: str | Path) -> Table:
        """A table read back from its stored file (cells hold what was stored: media as references)."""
        try:
            stored = json.loads(Path(path).read_text(encoding="utf-8"))
            columns, data = stored["columns"], stored["data"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is not a stored table ({exc}).") from None
        table = cls(columns=columns, allow_mixed_types=True)
        table.data = [list(row) for row in data]
        return table


def _is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "itertuples")


def _column_name(name: Any) -> str | int:
    return name if isinstance(name, (str, int)) and not isinstance(name, bool) else str(name)


def _checked_columns(columns: Any) -> list[Any]:
    if isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence):
        raise UsageError(f"Table(columns=...) must be a list of names, got {columns!r}.")
    names = list(columns)
    for name in names:
        if isinstance(name, bool) or not isinstance(name, (str, int)):
            raise UsageError(f"Table(columns=...): a column name must be a string or an int, got {name!r}.")
    if len(set(names)) != len(names):
        raise UsageError(f"Table(columns=...): the names must differ, got {names}.")
    return names


def _per_column(what: str, value: Any, count: int, default: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise UsageError(
                f"Table({what}=...): {len(value)} values for {count} columns; give one per column."
            )
        return list(value)
    return [default if value is None else value] * count


def _kind(value: Any) -> str:
    kind = _KINDS.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, (int, float)) or hasattr(value, "item"):  # numpy and torch scalars
        return "number" if not isinstance(value, bool) else "boolean"
    media = getattr(value, "kind", None)
    if isinstance(media, str) and hasattr(value, "_to_history"):
        return media
    return type(value).__name__


def _cell(run: Run, key: str, row: int, column: int, value: Any) -> Any:
    """A cell as stored: media store themselves (``<key>_r<row>c<column>``), the rest as JSON values."""
    if value is None or type(value) in _KINDS:
        return value
    to_history = getattr(value, "_to_history", None)
    if callable(to_history):
        return to_history(run, f"{key}_r{row}c{column}")
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)
        return int(moment.timestamp() * 1000)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_cell(run, key, row, column, item) for item in value]
    if isinstance(value, dict):
        return {str(name): _cell(run, key, row, column, item) for name, item in value.items()}
    return value
