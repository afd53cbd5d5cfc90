"""The extension in a real IPython shell: loading, per-run hooks, session history, teardown."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.events import EventManager
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import tracker_jupyter
from tests.support.ipython_shell import interactive_shell, ok, run_cell
from tracker_jupyter.core.holder import holder
from tracker_jupyter.ipython import attach, tap
from tracker_jupyter.ipython.magics import TrackerMagics


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[InteractiveShell]:
    with interactive_shell(tmp_path / "ipython") as shell:
        yield shell


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def _history(run_dir: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(run_dir / "code" / "_session_history.ipynb", as_version=4)
    nbformat.validate(nb)
    return nb


def _code_cells(run_dir: Path) -> list[Any]:
    return [cell for cell in _history(run_dir).cells if cell.cell_type == "code"]


def _ours_installed(shell: InteractiveShell) -> bool:
    """Whether anything of the extension is still hooked into ``shell``."""
    callbacks = [
        cb for event in ("pre_run_cell", "post_run_cell") for cb in shell.events.callbacks.get(event, [])
    ]
    patched = [
        shell.display_pub.__dict__.get("publish"),
        shell.display_pub.__dict__.get("clear_output"),
        shell.displayhook.__dict__.get("write_format_data"),
    ]
    return (
        any(getattr(cb, "__self__", None).__class__.__name__ == "_ShellTap" for cb in callbacks)
        or any(p is not None for p in patched)
        or bool(tap._taps)
        or bool(attach._attachments)
    )


def _init(shell: InteractiveShell, store: Path, **kwargs: Any) -> Any:
    args = ", ".join(f"{key}={value!r}" for key, value in {"dir": str(store), **kwargs}.items())
    ok(shell, f"import tracker_jupyter\nrun = tracker_jupyter.init({args})")
    return shell.user_ns["run"]


# ------------------------------------------------------------------------------------------ loading


def _magic_names(shell: InteractiveShell) -> set[str]:
    names = set()
    for kind in ("line", "cell"):
        names |= {n for n in shell.magics_manager.magics[kind] if n.startswith("tracker")}
    return names


def test_load_ext_registers_the_magics_and_their_configurable(shell: InteractiveShell) -> None:
    ok(shell, "%load_ext tracker_jupyter")
    assert _magic_names(shell) == {"tracker_init", "tracker_finish", "tracker_runs", "tracker"}
    assert [c for c in shell.configurables if isinstance(c, TrackerMagics)]
    assert "TrackerMagics" in shell.magics_manager.registry


def test_loading_twice_is_harmless(shell: InteractiveShell) -> None:
    ok(shell, "%load_ext tracker_jupyter")
    tracker_jupyter.load_ipython_extension(shell)  # bypassing %load_ext's own bookkeeping
    ok(shell, "%load_ext tracker_jupyter")
    assert len([c for c in shell.configurables if isinstance(c, TrackerMagics)]) == 1


def test_unload_removes_everything_load_added(shell: InteractiveShell) -> None:
    ok(shell, "%load_ext tracker_jupyter")
    ok(shell, "%unload_ext tracker_jupyter")
    assert _magic_names(shell) == set()
    assert "TrackerMagics" not in shell.magics_manager.registry
    assert not [c for c in shell.configurables if isinstance(c, TrackerMagics)]
    assert run_cell(shell, "%tracker_init").error_in_exec is not None  # no such magic any more
    tracker_jupyter.unload_ipython_extension(shell)  # unloading what is not loaded: nothing happens


def test_reload_ext_leaves_one_working_set_of_magics(shell: InteractiveShell, store: Path) -> None:
    ok(shell, "%load_ext tracker_jupyter")
    ok(shell, "%reload_ext tracker_jupyter")
    assert len([c for c in shell.configurables if isinstance(c, TrackerMagics)]) == 1
    run = ok(shell, f"%tracker_init --project reloaded --dir {store}")
    assert run.project == "reloaded"


def test_config_file_settings_reach_the_magics(tmp_path: Path, store: Path) -> None:
    config = Config()
    config.TrackerMagics.project = "from-config"
    config.TrackerMagics.dir = str(store)
    with interactive_shell(tmp_path / "ipython", config) as shell:
        tracker_jupyter.load_ipython_extension(shell)
        run = ok(shell, "%tracker_init")
        assert (run.project, Path(run.run_dir).parent.parent) == ("from-config", store)


# ------------------------------------------------------------------------------------- per-run hooks


def test_hooks_exist_while_a_recording_run_is_active_and_go_at_finish(
    shell: InteractiveShell, store: Path
) -> None:
    original_publish = shell.display_pub.publish
    run = _init(shell, store, save_code=True)
    assert _ours_installed(shell)
    ok(shell, "run.finish()")
    assert not _ours_installed(shell)
    assert shell.display_pub.publish == original_publish
    ok(shell, "run.finish()")  # twice: harmless
    assert run.state == "finished"


def test_without_save_code_nothing_is_hooked_and_no_code_is_saved(
    shell: InteractiveShell, store: Path
) -> None:
    run = _init(shell, store)
    assert not _ours_installed(shell)
    ok(shell, "print('x')")
    run.finish()
    assert not (Path(run.run_dir) / "code").exists()
    assert "session_history" not in run.meta


def test_tracker_disable_code_wins_over_save_code(
    shell: InteractiveShell, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKER_DISABLE_CODE", "1")
    run = _init(shell, store, save_code=True)
    assert not _ours_installed(shell)
    run.finish()
    assert not (Path(run.run_dir) / "code").exists()


def test_stream_capture_is_only_in_place_while_a_cell_runs(shell: InteractiveShell, store: Path) -> None:
    _init(shell, store, save_code=True)
    stdout_write = sys.stdout.write  # (sys.stdout is the run's console capture now)
    ok(shell, "import sys\nwrite_during_cell = sys.stdout.write")
    assert shell.user_ns["write_during_cell"] != stdout_write  # ours, during the cell
    assert sys.stdout.write == stdout_write  # put back after it (the same method of the same stream)


def test_reinit_finishes_the_previous_run_before_setting_up_the_next(
    shell: InteractiveShell, store: Path
) -> None:
    init_cell = f"import tracker_jupyter\nrun = tracker_jupyter.init(dir={str(store)!r}, save_code=True)"
    ok(shell, init_cell)
    first = shell.user_ns["run"]
    ok(shell, "print('first run')")
    ok(shell, init_cell)  # the same cell, executed again
    second = shell.user_ns["run"]
    ok(shell, "print('second run')")
    second.finish()

    assert first.state == "finished" and first is not second
    assert [(c.source, c.execution_count) for c in _code_cells(Path(first.run_dir))] == [
        (init_cell, 1),
        ("print('first run')", 2),
        (init_cell, 3),  # where the first run was finished
    ]
    second_cells = _code_cells(Path(second.run_dir))
    assert [(c.source, c.execution_count) for c in second_cells] == [
        (init_cell, 3),
        ("print('second run')", 4),
    ]
    assert second_cells[1].outputs[0].text == "second run\n"
    assert not _ours_installed(shell)


def test_concurrent_runs_each_record_and_the_last_one_cleans_up(shell: InteractiveShell, store: Path) -> None:
    a = _init(shell, store, save_code=True, project="a")
    b = _init(shell, store, save_code=True, project="b", reinit="create_new")
    ok(shell, "print('both')")
    a.finish()
    assert _ours_installed(shell)  # b still records
    ok(shell, "print('only b')")
    b.finish()
    assert not _ours_installed(shell)
    assert [c.source for c in _code_cells(Path(a.run_dir))][-1] == "print('both')"
    assert [c.source for c in _code_cells(Path(b.run_dir))][-2:] == ["print('both')", "print('only b')"]


def test_a_failure_inside_the_hooks_never_reaches_the_cell_and_is_reported_once(
    shell: InteractiveShell, store: Path
) -> None:
    run = _init(shell, store, save_code=True)
    code = Path(run.run_dir) / "code"
    for item in code.iterdir():
        item.unlink()
    code.rmdir()
    code.write_text("a file where the code directory should be")  # every save now fails
    with pytest.warns(RuntimeWarning, match="could not save the session history") as caught:
        for value in range(3):
            assert ok(shell, f"{value} + 1") == value + 1
    assert len(caught) == 1
    run.finish()
    assert run.state == "finished"


def test_a_failure_while_recording_a_display_leaves_the_display_working(
    shell: InteractiveShell, store: Path
) -> None:
    run = _init(shell, store, save_code=True)
    odd_display = "get_ipython().display_pub.publish({'text/plain': 'shown'}, metadata=['not', 'a', 'dict'])"
    with pytest.warns(RuntimeWarning, match="session recording failed"):
        assert run_cell(shell, odd_display).success
    assert run_cell(shell, "print('later cells are recorded')").success
    run.finish()
    assert _code_cells(Path(run.run_dir))[-1].outputs[0].text == "later cells are recorded\n"


def test_a_failed_attach_finishes_the_run_and_leaves_nothing_registered(
    shell: InteractiveShell, store: Path
) -> None:
    # A real EventManager that knows no cell events, as an application embedding IPython may have.
    shell.events = EventManager(shell, ["pre_execute", "post_execute"])
    publish = shell.display_pub.publish
    with pytest.raises(KeyError, match="pre_run_cell"):
        tracker_jupyter.init(dir=str(store), project="broken", save_code=True)
    assert tracker_jupyter.run is None and not holder.active
    assert not _ours_installed(shell)
    assert shell.display_pub.publish == publish
    assert list((store / "broken").iterdir()) == []  # init() left the store as it was


def test_a_failed_attach_leaves_a_resumed_runs_history_as_it_was(
    shell: InteractiveShell, store: Path
) -> None:
    run = _init(shell, store, save_code=True, project="p", id="kept")
    ok(shell, "print('first session')")
    run.finish()
    history = Path(run.run_dir) / "code" / "_session_history.ipynb"
    before = history.read_bytes()
    shell.events = EventManager(shell, ["pre_execute", "post_execute"])
    with pytest.raises(KeyError):
        tracker_jupyter.init(dir=str(store), project="p", id="kept", resume="must", save_code=True)
    assert history.read_bytes() == before
    assert json.loads((Path(run.run_dir) / "run.json").read_text())["state"] == "finished"


# ---------------------------------------------------------------------------------- session history


def test_history_holds_each_cell_with_its_own_count_and_outputs(shell: InteractiveShell, store: Path) -> None:
    ok(shell, "x = 1")  # before the run: not part of its history
    run = _init(shell, store, save_code=True)
    ok(shell, "from IPython.display import HTML, display\ndisplay(HTML('<b>one</b>'))\nprint('printed')")
    ok(shell, "x + 41")
    ok(shell, "x + 1;")  # a trailing semicolon hides Out
    assert run_cell(shell, "raise ValueError('boom')").error_in_exec is not None
    ok(shell, "h = display(HTML('v1'), display_id=True)")
    ok(shell, "h.update(HTML('v2'))")
    ok(shell, "from IPython.display import clear_output\nprint('gone')\nclear_output()\nprint('kept')")
    run.finish()

    cells = _code_cells(Path(run.run_dir))
    assert [c.execution_count for c in cells] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert cells[0].source.startswith("import tracker_jupyter\nrun = tracker_jupyter.init(")
    html, printed = cells[1].outputs
    assert html.output_type == "display_data" and html.data["text/html"] == "<b>one</b>"
    assert (printed.name, printed.text) == ("stdout", "printed\n")
    (out,) = cells[2].outputs
    assert (out.output_type, out.execution_count, out.data["text/plain"]) == ("execute_result", 4, "42")
    assert cells[3].outputs == []
    (error,) = cells[4].outputs
    assert (error.output_type, error.ename, error.evalue) == ("error", "ValueError", "boom")
    assert "raise ValueError('boom')" in "\n".join(error.traceback)
    assert cells[5].outputs[0].data["text/html"] == "v2"  # the update lands on the cell that showed it
    assert cells[6].outputs == []  # the update itself adds nothing to its own cell
    assert [o.text for o in cells[7].outputs] == ["kept\n"]


def test_history_is_saved_after_each_cell(shell: InteractiveShell, store: Path) -> None:
    run = _init(shell, store, save_code=True)
    path = Path(run.run_dir) / "code" / "_session_history.ipynb"
    ok(shell, "a = 'first'")
    assert [c.source for c in _code_cells(Path(run.run_dir))][-1] == "a = 'first'"
    saved = path.stat().st_mtime_ns
    attachment = attach._attachments[id(run)]
    attachment.after_cell()  # nothing changed since: nothing written
    assert path.stat().st_mtime_ns == saved
    ok(shell, "b = 'second'")
    assert [c.source for c in _code_cells(Path(run.run_dir))][-1] == "b = 'second'"


def test_finish_inside_a_cell_closes_that_cell_with_its_count(shell: InteractiveShell, store: Path) -> None:
    run = _init(shell, store, save_code=True)
    ok(shell, "print('before')\nrun.finish()\nprint('after')")
    cells = _code_cells(Path(run.run_dir))
    assert cells[-1].execution_count == 2
    assert [o.text for o in cells[-1].outputs if o.output_type == "stream" and o.name == "stdout"] == [
        "before\n"
    ]


def test_cells_outside_history_are_not_recorded(shell: InteractiveShell, store: Path) -> None:
    run = _init(shell, store, save_code=True)
    shell.run_cell("print('internal')", store_history=False)  # what frontends run for themselves
    ok(shell, "print('user')")
    run.finish()
    assert [c.source for c in _code_cells(Path(run.run_dir))][1:] == ["print('user')"]


def test_a_run_started_by_a_silent_execution_records_the_cells_after_it(
    shell: InteractiveShell, store: Path
) -> None:
    shell.run_cell(
        f"import tracker_jupyter\nrun = tracker_jupyter.init(dir={str(store)!r}, save_code=True)", silent=True
    )
    run = shell.user_ns["run"]
    ok(shell, "print('user cell')")
    run.finish()
    assert [c.source for c in _code_cells(Path(run.run_dir))] == ["print('user cell')"]


def test_nested_run_cell_belongs_to_the_cell_that_ran_it(shell: InteractiveShell, store: Path) -> None:
    run = _init(shell, store, save_code=True)
    ok(
        shell,
        "ip = get_ipython()\nip.run_cell(\"print('one')\")\nip.run_cell(\"print('two')\")\nprint('outer')",
    )
    ok(shell, "print('next')")
    run.finish()
    cells = _code_cells(Path(run.run_dir))
    assert len(cells) == 3
    assert "".join(o.text for o in cells[1].outputs if o.output_type == "stream") == "one\ntwo\nouter\n"
    assert cells[2].outputs[0].text == "next\n"


def test_notebook_file_is_copied_and_named_in_the_metadata(
    shell: InteractiveShell, store: Path, tmp_path: Path
) -> None:
    path = tmp_path / "analysis.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    shell.user_ns["__vsc_ipynb_file__"] = str(path)  # what VS Code sets in its kernels
    run = _init(shell, store, save_code=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("2")]), path)  # saved later
    run.finish()
    meta = json.loads((Path(run.run_dir) / "run.json").read_text())
    assert meta["notebook_name"] == "analysis.ipynb"
    assert meta["notebook_path"] == str(path)
    assert meta["notebook_copy"] == "code/analysis.ipynb"
    assert meta["session_history"] == "code/_session_history.ipynb"
    copy = nbformat.read(Path(run.run_dir) / "code" / "analysis.ipynb", as_version=4)
    assert copy.cells[0].source == "2"  # copied again at finish


def test_a_relative_session_name_is_found_from_the_working_directory(
    shell: InteractiveShell, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "work" / "exp.ipynb")
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("JPY_SESSION_NAME", "work/exp.ipynb")  # relative to the server's root
    run = _init(shell, store, save_code=True)
    run.finish()
    assert run.meta["notebook_path"] == str(tmp_path / "work" / "exp.ipynb")
    assert (Path(run.run_dir) / "code" / "exp.ipynb").is_file()


def test_a_notebook_that_cannot_be_found_is_named_but_not_copied(
    shell: InteractiveShell, store: Path
) -> None:
    shell.user_ns["__session__"] = "elsewhere/missing.ipynb"
    run = _init(shell, store, save_code=True)
    run.finish()
    assert run.meta["notebook_name"] == "missing.ipynb"
    assert run.meta["notebook_copy"] is None
    assert sorted(p.name for p in (Path(run.run_dir) / "code").iterdir()) == ["_session_history.ipynb"]


def test_a_resumed_run_keeps_its_earlier_sessions(shell: InteractiveShell, store: Path) -> None:
    run = _init(shell, store, save_code=True, id="again")
    ok(shell, "print('session one')")
    run.finish()
    resumed = _init(shell, store, save_code=True, id="again", resume="must")
    ok(shell, "print('session two')")
    resumed.finish()
    nb = _history(Path(resumed.run_dir))
    sources = [c.source for c in nb.cells]
    assert [s.split(" of run")[0] for s in sources if s.startswith("**Session")] == [
        "**Session 1**",
        "**Session 2**",
    ]
    assert "print('session one')" in sources and sources[-1] == "print('session two')"


def test_no_widget_is_shown_outside_a_notebook_kernel(shell: InteractiveShell, store: Path) -> None:
    run = _init(shell, store, save_code=True)
    run.finish()
    (init_cell, *_) = _code_cells(Path(run.run_dir))
    assert [o for o in init_cell.outputs if o.output_type == "display_data"] == []


def test_a_run_that_lives_inside_one_tracker_cell_records_that_cell(
    shell: InteractiveShell, store: Path
) -> None:
    tracker_jupyter.load_ipython_extension(shell)
    ok(shell, "x = 1")
    cell = f"%%tracker --project one-cell --save-code --dir {store}\nimport tracker_jupyter\nr = tracker_jupyter.run\nprint('in cell')"
    ok(shell, cell)
    run = shell.user_ns["r"]
    assert run.state == "finished" and not _ours_installed(shell)
    (recorded,) = _code_cells(Path(run.run_dir))
    assert (recorded.source, recorded.execution_count) == (cell, 2)
    assert [o.text for o in recorded.outputs if o.output_type == "stream" and o.name == "stdout"] == [
        "in cell\n"
    ]
