"""Session history as a notebook: recorded cells → the text of an nbformat v4.5 notebook.

Pure: cells in, text out (the caller writes it, atomically, into the run's ``code/``).

The result opens in any Jupyter frontend and passes ``nbformat.validate``: code cells in execution
order with their execution counts, each carrying its own outputs. A resumed run keeps the cells of its
earlier sessions and adds the new ones after a short markdown header.

The file is produced with the standard ``json`` module in the layout ``nbformat.write`` uses (sorted
keys, one-space indent, multi-line strings split into lines), not through ``nbformat`` itself: importing
nbformat imports jsonschema and its format checkers, which takes seconds, and this runs in the user's
kernel after every cell. The tests check every file written here with ``nbformat.validate``.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tracker_jupyter.core.values import STORED_MASK, is_secret_key, to_json
from tracker_jupyter.history.recorder import Cell, Output

SESSION_HISTORY = "_session_history.ipynb"
HISTORY_PATH = f"code/{SESSION_HISTORY}"  # inside the run directory

_JSON_MIME = re.compile(r"^application/(.*\+)?json$")
# Binary formats travel base64-encoded in notebooks; everything else is text.
_BASE64_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "application/pdf")


def session_header(number: int, run_name: str, run_id: str, started: str) -> str:
    """The markdown that opens each session of a run in its history notebook."""
    return (
        f"**Session {number}** of run `{run_name}` (`{run_id}`), started {started}: the cells executed "
        "in this kernel from the one that started the run until it finished, in execution order."
    )


def build(
    cells: Sequence[Cell],
    *,
    header: str | None = None,
    session: int = 1,
    earlier: Sequence[Mapping[str, Any]] = (),
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A v4.5 notebook (plain dicts) holding ``earlier`` cells, then ``header``, then ``cells``.

    Parameters
    ----------
    cells
        The recorded cells of this session.
    header
        Markdown placed before this session's cells.
    session
        The number of this session (1 for a new run; resuming adds one), kept in the header's metadata.
    earlier
        Cells (nbformat dicts) of the run's earlier sessions, kept as they are.
    metadata
        Extra notebook metadata (merged over the kernel and language information).
    """
    nb_cells = _leading_cells(earlier, header, session)
    first = len(nb_cells)
    nb_cells.extend(_code_cell(cell, first + offset) for offset, cell in enumerate(cells))
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": _metadata(metadata), "cells": nb_cells}


def dumps(nb: Mapping[str, Any]) -> str:
    """The notebook's file text, laid out as ``nbformat.writes`` lays it out."""
    return json.dumps(
        {**nb, "cells": [_split_lines(cell) for cell in nb["cells"]]},
        sort_keys=True, indent=1, separators=(",", ": "), ensure_ascii=False,
    )  # fmt: skip


class HistoryNotebook:
    """The history notebook of one run, whose text is made again after every cell.

    Gives the same text as ``text(build(...))``, but a cell that did not change since the last time is
    not converted and serialized again: after hundreds of cells, this costs little more than joining
    the text.
    """

    def __init__(
        self,
        *,
        header: str | None = None,
        session: int = 1,
        earlier: Sequence[Mapping[str, Any]] = (),
        metadata: Mapping[str, Any] | None = None,
        mask: Callable[[str], str] | None = None,
    ) -> None:
        self._mask = mask  # applied to each recorded cell's source and outputs (secrets: mask_code)
        self._leading = [_cell_text(cell) for cell in _leading_cells(earlier, header, session)]
        rest = {"metadata": _metadata(metadata), "nbformat": 4, "nbformat_minor": 5}
        self._tail = _json_text(rest)[2:]  # what follows "cells" in a sorted dump: drop the opening "{\n"
        self._cache: dict[int, tuple[int, int, str]] = {}  # cell serial -> (revision, position, text)

    def text(self, cells: Sequence[Cell]) -> str:
        """The file's text: the leading cells, then ``cells``."""
        texts = list(self._leading)
        for cell in cells:
            position = len(texts)
            cached = self._cache.get(cell.serial) if cell.serial is not None else None
            if cached is not None and cached[:2] == (cell.revision, position):
                texts.append(cached[2])
                continue
            nb_cell = _code_cell(cell, position)
            text = _cell_text(masked_cell(nb_cell, self._mask) if self._mask is not None else nb_cell)
            if cell.serial is not None:
                self._cache[cell.serial] = (cell.revision, position, text)
            texts.append(text)
        listed = "[\n" + ",\n".join(texts) + "\n ]" if texts else "[]"
        return f'{{\n "cells": {listed},\n{self._tail}\n'


def masked_cell(nb_cell: dict[str, Any], mask: Callable[[str], str]) -> dict[str, Any]:
    """``nb_cell`` with ``mask`` applied to its source and to the text of its outputs (streams, errors,
    text and JSON results; images and other binary data are left alone)."""
    nb_cell = dict(nb_cell)
    nb_cell["source"] = mask(_joined(nb_cell.get("source", "")))
    outputs = []
    for output in nb_cell.get("outputs") or []:
        output = dict(output)
        if "text" in output:
            output["text"] = mask(_joined(output["text"]))
        if "evalue" in output:
            output["evalue"] = mask(str(output["evalue"]))
            output["traceback"] = [mask(str(line)) for line in output.get("traceback") or []]
        if isinstance(output.get("data"), dict):
            output["data"] = {
                mime: value if mime in _BASE64_MIMES else _masked_data(value, mask)
                for mime, value in output["data"].items()
            }
        outputs.append(output)
    if "outputs" in nb_cell:
        nb_cell["outputs"] = outputs
    return nb_cell


def masked_notebook(content: str | bytes, mask: Callable[[str], str]) -> str:
    """The file text of a notebook with ``masked_cell`` applied to every cell; a file that is not a
    notebook is masked as plain text."""
    try:
        nb = json.loads(content)
    except ValueError:
        nb = None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return mask(content.decode("utf-8", "replace") if isinstance(content, bytes) else content)
    nb["cells"] = [masked_cell(cell, mask) if isinstance(cell, dict) else cell for cell in nb["cells"]]
    return text(nb)


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _masked_data(value: Any, mask: Callable[[str], str]) -> Any:
    if isinstance(value, str) or (
        isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    ):
        return mask(_joined(value))
    return _masked_json(value, mask)


def _masked_json(value: Any, mask: Callable[[str], str]) -> Any:
    """A JSON output: secret-looking keys' values masked (the config rule), every string through ``mask``."""
    if isinstance(value, dict):
        return {
            key: STORED_MASK if is_secret_key(str(key)) and not isinstance(item, (dict, list))
            else _masked_json(item, mask)
            for key, item in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [_masked_json(item, mask) for item in value]
    return mask(value) if isinstance(value, str) else value


def cells_in(text: str | bytes | None) -> list[dict[str, Any]]:
    """The cells of an earlier history notebook's text; none when it is missing (None) or unreadable."""
    if text is None:
        return []
    try:
        nb = json.loads(text)
    except ValueError:
        return []
    cells = nb.get("cells") if isinstance(nb, dict) and nb.get("nbformat") == 4 else None
    if not isinstance(cells, list):
        return []
    return [dict(cell) for cell in cells if isinstance(cell, dict) and "cell_type" in cell]


def sessions_in(cells: Sequence[Mapping[str, Any]]) -> int:
    """How many sessions the cells of an earlier history notebook hold."""
    count = 0
    for cell in cells:
        meta = cell.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("tracker"), dict) and "session" in meta["tracker"]:
            count += 1
    return count


def text(nb: Mapping[str, Any]) -> str:
    """The file text of notebook ``nb`` (``dumps`` and the final newline)."""
    return dumps(nb) + "\n"


# --------------------------------------------------------------------------------------------- cells


def _leading_cells(
    earlier: Sequence[Mapping[str, Any]], header: str | None, session: int
) -> list[dict[str, Any]]:
    nb_cells = [dict(cell) for cell in earlier]
    if header:
        nb_cells.append(
            {"cell_type": "markdown", "metadata": {"tracker": {"session": session}}, "source": header}
        )
    for index, nb_cell in enumerate(nb_cells):
        nb_cell["id"] = f"cell-{index}"  # unique in this file; earlier ids are renumbered with the rest
    return nb_cells


def _code_cell(cell: Cell, position: int) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": cell.execution_count,
        "id": f"cell-{position}",
        "metadata": {},
        "source": cell.source,
        "outputs": [_output(output, cell.execution_count) for output in cell.outputs],
    }


def _metadata(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    version = sys.version_info
    metadata: dict[str, Any] = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python", "version": f"{version.major}.{version.minor}.{version.micro}"},
    }
    metadata.update(extra or {})
    return metadata


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=1, separators=(",", ": "), ensure_ascii=False)


def _cell_text(nb_cell: Mapping[str, Any]) -> str:
    """One cell as it appears inside the "cells" list of the file (two levels of indentation)."""
    # JSON text has no raw newlines inside strings, so indenting line by line is safe.
    return "\n".join("  " + line for line in _json_text(_split_lines(nb_cell)).split("\n"))


# ------------------------------------------------------------------------------------------- outputs


def _split_lines(cell: Mapping[str, Any]) -> dict[str, Any]:
    """Multi-line text as lists of lines (what nbformat writes: friendlier to line-based diffs)."""
    cell = dict(cell)
    if isinstance(cell.get("source"), str):
        cell["source"] = cell["source"].splitlines(True)
    if cell.get("cell_type") == "code":
        outputs = []
        for output in cell.get("outputs", []):
            output = dict(output)
            if output.get("output_type") == "stream" and isinstance(output.get("text"), str):
                output["text"] = output["text"].splitlines(True)
            elif isinstance(output.get("data"), dict):
                output["data"] = {
                    mime: value.splitlines(True)
                    if isinstance(value, str) and mime.startswith("text/")
                    else value
                    for mime, value in output["data"].items()
                }
            outputs.append(output)
        cell["outputs"] = outputs
    return cell


def _output(output: Output, execution_count: int | None) -> dict[str, Any]:
    if output.output_type == "stream":
        return {"output_type": "stream", "name": output.name or "stdout", "text": output.text}
    if output.output_type == "error":
        return {
            "output_type": "error",
            "ename": output.ename,
            "evalue": output.evalue,
            "traceback": list(output.traceback),
        }
    result: dict[str, Any] = {
        "output_type": output.output_type,
        "data": _bundle(output.data),
        "metadata": _json_safe(output.metadata),
    }
    if output.output_type == "execute_result":
        result["execution_count"] = execution_count
    return result


def _bundle(data: Mapping[str, Any]) -> dict[str, Any]:
    """A mime bundle the v4 schema accepts: JSON for ``*/json`` types, strings for everything else."""
    bundle: dict[str, Any] = {}
    for mime, value in data.items():
        if not isinstance(mime, str) or "/" not in mime:
            continue
        if _JSON_MIME.match(mime):
            bundle[mime] = _json_safe(value)
        elif isinstance(value, (bytes, bytearray)):
            if mime in _BASE64_MIMES:
                bundle[mime] = base64.b64encode(bytes(value)).decode("ascii")
            else:
                bundle[mime] = bytes(value).decode("utf-8", "replace")
        elif isinstance(value, str):
            bundle[mime] = value
        elif isinstance(value, list) and all(isinstance(line, str) for line in value):
            bundle[mime] = "".join(value)
        else:
            bundle[mime] = str(value)
    return bundle


def _json_safe(value: Any) -> Any:
    """``value`` as strict JSON data: NaN and infinities become their repr (as in Jupyter's own
    messages), anything else JSON has no type for becomes its ``str``."""
    try:
        return to_json(value, _as_str, finite=True)
    except RecursionError:  # a structure that contains itself
        return str(value)


def _as_str(value: Any, where: str) -> str:
    return str(value)
