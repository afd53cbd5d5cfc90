"""The session recorder engine and the history notebook it becomes (no IPython, no kernel)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import nbformat
import pytest

from tracker_jupyter import store
from tracker_jupyter.history import notebook
from tracker_jupyter.history.recorder import Cell, Output, SessionRecorder

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def _valid(nb: dict) -> nbformat.NotebookNode:
    """The notebook as nbformat reads it back from the text we write, checked against the v4 schema."""
    node = nbformat.reads(notebook.dumps(nb), as_version=4)
    nbformat.validate(node)
    return node


# ---------------------------------------------------------------------------------------- recorder


def test_outputs_belong_to_the_cell_running_when_they_arrive() -> None:
    recorder = SessionRecorder()
    recorder.begin_cell("print('a')")
    recorder.add_stream("stdout", "a\n")
    recorder.end_cell(7)
    recorder.begin_cell("display(x)\n1 + 1")
    recorder.add_display({"text/html": "<b>x</b>", "text/plain": "x"})
    recorder.add_result({"text/plain": "2"})
    recorder.end_cell(8)

    first, second = recorder.cells()
    assert (first.source, first.execution_count) == ("print('a')", 7)
    assert [o.text for o in first.outputs] == ["a\n"]
    assert second.execution_count == 8
    assert [o.output_type for o in second.outputs] == ["display_data", "execute_result"]


def test_outputs_while_no_cell_runs_are_not_recorded() -> None:
    recorder = SessionRecorder()
    recorder.add_display({"text/plain": "from a thread, between cells"})
    recorder.add_stream("stdout", "late\n")
    assert recorder.cells() == []


def test_a_cell_that_is_not_kept_disappears() -> None:
    recorder = SessionRecorder()
    recorder.begin_cell("internal()")
    recorder.add_stream("stdout", "x")
    recorder.end_cell(3, keep=False)
    assert recorder.cells() == []


def test_the_running_cell_is_part_of_the_snapshot_and_keeps_a_known_count() -> None:
    recorder = SessionRecorder()
    recorder.begin_cell("run = init()", execution_count=4)
    recorder.add_stream("stderr", "started\n")
    (cell,) = recorder.cells()
    assert cell == Cell("run = init()", 4, (Output("stream", name="stderr", text="started\n"),))
    recorder.end_cell(None)  # an end without a count keeps the count known at the start
    assert recorder.cells()[0].execution_count == 4


def test_beginning_a_cell_while_one_is_open_keeps_the_open_one() -> None:
    recorder = SessionRecorder()
    recorder.begin_cell("a", 1)
    recorder.begin_cell("b")
    recorder.end_cell(2)
    assert [(c.source, c.execution_count) for c in recorder.cells()] == [("a", 1), ("b", 2)]


def test_consecutive_writes_to_one_stream_are_merged() -> None:
    recorder = SessionRecorder()
    recorder.begin_cell("loop")
    for text in ("a", "b\n", "c\n"):
        recorder.add_stream("stdout", text)
    recorder.add_stream("stderr", "warn\n")
    recorder.add_stream("stdout", "d\n")
    outputs = recorder.cells()[0].outputs
    assert [(o.name, o.text) for o in outputs] == [
        ("stdout", "ab\nc\n"),
        ("stderr", "warn\n"),
        ("stdout", "d\n"),
    ]


def test_stream_text_is_capped_per_cell() -> None:
    recorder = SessionRecorder(max_stream_chars=10)
    recorder.begin_cell("spam")
    for _ in range(100):
        recorder.add_stream("stdout", "0123456789\n")
    (output,) = recorder.cells()[0].outputs
    assert output.text.startswith("0123456789")
    assert "output cut at 10 characters" in output.text
    assert len(output.text) < 100


def test_outputs_past_the_limit_are_counted_in_a_note() -> None:
    recorder = SessionRecorder(max_outputs_per_cell=3)
    recorder.begin_cell("many")
    for index in range(5):
        recorder.add_display({"text/plain": str(index)})
    outputs = recorder.cells()[0].outputs
    assert [o.data.get("text/plain") for o in outputs[:3]] == ["0", "1", "2"]
    assert outputs[3].output_type == "stream" and "2 more outputs" in outputs[3].text


def test_update_display_replaces_the_output_with_that_id_in_any_cell() -> None:
    recorder = SessionRecorder()
    recorder.begin_cell("h = display('v1', display_id=True)")
    recorder.add_display({"text/plain": "v1"}, display_id="abc")
    recorder.add_display({"text/plain": "other"}, display_id="zzz")
    recorder.end_cell(1)
    recorder.begin_cell("h.update('v2')")
    recorder.end_cell(2)
    recorder.update_display({"text/plain": "v2"}, {"k": 1}, "abc")
    first = recorder.cells()[0]
    assert [o.data["text/plain"] for o in first.outputs] == ["v2", "other"]
    assert first.outputs[0].metadata == {"k": 1}
    assert recorder.cells()[1].outputs == ()


def test_clear_output_now_and_at_the_next_output() -> None:
    recorder = SessionRecorder()
    recorder.begin_cell("live plot")
    recorder.add_display({"text/plain": "frame 1"})
    recorder.clear_output(wait=False)
    assert recorder.cells()[0].outputs == ()
    recorder.add_display({"text/plain": "frame 2"})
    recorder.clear_output(wait=True)
    assert len(recorder.cells()[0].outputs) == 1  # still shown until something replaces it
    recorder.add_display({"text/plain": "frame 3"})
    assert [o.data["text/plain"] for o in recorder.cells()[0].outputs] == ["frame 3"]


def test_version_moves_on_changes_only() -> None:
    recorder = SessionRecorder()
    start = recorder.version
    recorder.add_stream("stdout", "ignored: no cell")
    recorder.update_display({"text/plain": "x"}, None, "unknown-id")
    assert recorder.version == start
    recorder.begin_cell("x")
    assert recorder.version > start


def test_outputs_from_many_threads_are_all_kept() -> None:
    recorder = SessionRecorder(max_outputs_per_cell=10_000)
    recorder.begin_cell("threads")

    def worker(name: str) -> None:
        for _ in range(200):
            recorder.add_display({"text/plain": name})

    threads = [threading.Thread(target=worker, args=(str(i),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(recorder.cells()[0].outputs) == 800


# ---------------------------------------------------------------------------------------- notebook


def _recorded() -> list[Cell]:
    recorder = SessionRecorder()
    recorder.begin_cell("print('hi')\n1 + 1")
    recorder.add_stream("stdout", "hi\nthere\n")
    recorder.add_result({"text/plain": "2"}, {})
    recorder.end_cell(3)
    recorder.begin_cell("show()")
    recorder.add_display(
        {
            "image/png": PNG,
            "text/html": "<p>\nmulti\n</p>",
            "application/json": {"a": [1, 2], "nan": float("nan"), 3: (4,)},
            "application/vnd.custom+json": {"b": True},
            "text/plain": ["line 1\n", "line 2"],
            "not a mime type": "dropped",
        },
        {"image/png": {"width": 10}, "odd": object()},
    )
    recorder.add_error("ValueError", "bad", ["Traceback (most recent call last):", "ValueError: bad"])
    recorder.end_cell(4)
    return recorder.cells()


def test_history_notebook_is_valid_v4_with_counts_and_outputs() -> None:
    nb = _valid(notebook.build(_recorded(), header="**Session 1**", metadata={"tracker": {"run_id": "r1"}}))
    assert nb.nbformat == 4 and nb.nbformat_minor == 5
    assert nb.metadata.tracker.run_id == "r1"
    assert nb.metadata.kernelspec.name == "python3"
    header, first, second = nb.cells
    assert header.cell_type == "markdown" and header.metadata.tracker.session == 1
    assert first.source == "print('hi')\n1 + 1"
    assert first.execution_count == 3
    assert first.outputs[0] == {"output_type": "stream", "name": "stdout", "text": "hi\nthere\n"}
    assert first.outputs[1].output_type == "execute_result"
    assert first.outputs[1].execution_count == 3
    display, error = second.outputs
    assert display.data["image/png"] == "iVBORw0KGgoAAAANSUhEUg=="  # base64, as Jupyter stores images
    assert display.data["text/html"] == "<p>\nmulti\n</p>"
    assert display.data["text/plain"] == "line 1\nline 2"
    assert display.data["application/json"] == {"a": [1, 2], "nan": "nan", "3": [4]}
    assert display.data["application/vnd.custom+json"] == {"b": True}
    assert "not a mime type" not in display.data
    assert display.metadata["image/png"] == {"width": 10}
    assert error.ename == "ValueError" and error.traceback[-1] == "ValueError: bad"


def test_history_file_has_nbformat_layout_and_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "code" / notebook.SESSION_HISTORY
    path.parent.mkdir()
    store.atomic_write(path, notebook.text(notebook.build(_recorded())))
    text = path.read_text(encoding="utf-8")
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    raw = json.loads(text)
    assert raw["cells"][0]["source"] == ["print('hi')\n", "1 + 1"]  # lines, as nbformat writes them
    node = nbformat.read(path, as_version=4)
    nbformat.validate(node)
    assert [p.name for p in path.parent.iterdir()] == [notebook.SESSION_HISTORY]  # no temporary left


def test_earlier_sessions_are_kept_and_ids_stay_unique(tmp_path: Path) -> None:
    path = tmp_path / notebook.SESSION_HISTORY
    store.atomic_write(path, notebook.text(notebook.build(_recorded(), header="one", session=1)))
    earlier = notebook.cells_in(store.read_bytes(path))
    assert notebook.sessions_in(earlier) == 1
    recorder = SessionRecorder()
    recorder.begin_cell("resumed()", 1)
    recorder.end_cell(1)
    nb = _valid(notebook.build(recorder.cells(), header="two", session=2, earlier=earlier))
    assert [c.source for c in nb.cells] == ["one", "print('hi')\n1 + 1", "show()", "two", "resumed()"]
    assert len({c.id for c in nb.cells}) == len(nb.cells)
    assert notebook.sessions_in(nb.cells) == 2


@pytest.mark.parametrize("content", ["", "not json", '{"nbformat": 3, "worksheets": []}', "[1, 2]"])
def test_an_unreadable_earlier_history_gives_no_cells(tmp_path: Path, content: str) -> None:
    path = tmp_path / notebook.SESSION_HISTORY
    path.write_text(content, encoding="utf-8")
    assert notebook.cells_in(store.read_bytes(path)) == []
    assert notebook.cells_in(store.read_bytes(tmp_path / "missing.ipynb")) == []


def test_an_empty_session_is_still_a_valid_notebook() -> None:
    nb = _valid(notebook.build([]))
    assert nb.cells == []


def test_history_file_writes_what_build_describes_and_reuses_unchanged_cells(tmp_path: Path) -> None:
    path = tmp_path / notebook.SESSION_HISTORY
    earlier = notebook.build(_recorded(), header="one")["cells"]
    options = {"header": "two", "session": 2, "earlier": earlier, "metadata": {"tracker": {"run_id": "r"}}}
    history = notebook.HistoryNotebook(**options)
    recorder = SessionRecorder()

    def check() -> None:
        store.atomic_write(path, history.text(recorder.cells()))
        expected = notebook.dumps(notebook.build(recorder.cells(), **options)) + "\n"
        assert path.read_text(encoding="utf-8") == expected
        nbformat.validate(nbformat.read(path, as_version=4))

    check()  # no cells of this session yet
    recorder.begin_cell("a = 1")
    check()
    recorder.add_display({"text/plain": "v1"}, display_id="d")
    recorder.end_cell(1)
    recorder.begin_cell("print('b')")
    recorder.add_stream("stdout", "b\n")
    check()
    recorder.end_cell(2)
    recorder.update_display({"text/plain": "v2"}, None, "d")  # changes the first cell again
    check()
    assert '"v2"' in path.read_text(encoding="utf-8")


def test_cells_carry_a_serial_and_a_revision_that_follows_changes() -> None:
    recorder = SessionRecorder()
    recorder.begin_cell("a")
    recorder.end_cell(1)
    recorder.begin_cell("b")
    first, second = recorder.cells()
    assert first.serial != second.serial
    before = first.revision
    recorder.add_stream("stdout", "x")  # changes the running cell only
    assert recorder.cells()[0].revision == before
    assert recorder.cells()[1].revision > second.revision
