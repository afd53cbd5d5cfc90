"""TrackerMagics in a real IPython shell: flags, help, errors, %%tracker, configuration."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import tracker_jupyter
from tests.conftest import run_script
from tests.support.ipython_shell import interactive_shell, ok, run_cell
from tracker_jupyter.ipython.magics import literal, parse_pairs


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[InteractiveShell]:
    with interactive_shell(tmp_path / "ipython") as shell:
        tracker_jupyter.load_ipython_extension(shell)
        yield shell


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store"
    monkeypatch.setenv("TRACKER_DIR", str(path))
    return path


def _usage_error(shell: InteractiveShell, line: str, magic: str = "tracker_init") -> str:
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic(magic, line)
    return str(caught.value)


# ------------------------------------------------------------------------------------ %tracker_init


def test_every_identity_flag_reaches_init(shell: InteractiveShell, store: Path) -> None:
    ok(
        shell,
        "run = %tracker_init --project mnist --entity team --name first --notes 'a longer note' "
        "--tags baseline resnet --group sweep1 --job-type train --id run001 --mode offline",
    )
    run = shell.user_ns["run"]
    assert run is tracker_jupyter.run
    assert (run.project, run.entity, run.name, run.notes) == ("mnist", "team", "first", "a longer note")
    assert (run.tags, run.group, run.job_type, run.id, run.mode) == (
        ("baseline", "resnet"), "sweep1", "train", "run001", "offline"
    )  # fmt: skip
    assert Path(run.run_dir) == store / "mnist" / "run001"


def test_config_values_are_python_literals_or_strings(shell: InteractiveShell, store: Path) -> None:
    run = shell.run_line_magic(
        "tracker_init",
        "--config lr=0.01 epochs=3 name=resnet flag=True none=None 'layers=[64, 64]' \"opt={'b': 0.9}\" "
        "path=/tmp/x.csv empty= title='my run' digits=\"'007'\"",
    )
    assert dict(run.config) == {
        "lr": 0.01, "epochs": 3, "name": "resnet", "flag": True, "none": None, "layers": [64, 64],
        "opt": {"b": 0.9}, "path": "/tmp/x.csv", "empty": "", "title": "my run", "digits": "007",
    }  # fmt: skip


def test_python_variables_expand_in_flags(shell: InteractiveShell, store: Path) -> None:
    shell.user_ns["learning_rate"] = 0.003
    run = ok(shell, "%tracker_init --config lr={learning_rate}")
    assert run.config.lr == 0.003


def test_config_file_and_key_filters(shell: InteractiveShell, store: Path, tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text("lr: 0.1\nbatch: 32\nseed: 7\n")
    run = ok(shell, f"%tracker_init --config-file {tmp_path / 'cfg.yaml'} --config-exclude-keys seed")
    assert dict(run.config) == {"lr": 0.1, "batch": 32}
    run = ok(shell, "%tracker_init --config a=1 b=2 c=3 --config-include-keys a c")
    assert dict(run.config) == {"a": 1, "c": 3}


def test_allow_val_change_flags(shell: InteractiveShell, store: Path) -> None:
    run = ok(shell, "%tracker_init --config lr=0.1 --no-allow-val-change")
    with pytest.raises(tracker_jupyter.ConfigError):
        run.config.lr = 0.2
    run = ok(shell, "%tracker_init --config lr=0.1 --allow-val-change")
    run.config.lr = 0.2
    assert run.config.lr == 0.2


def test_resume_reinit_and_settings_flags(shell: InteractiveShell, store: Path) -> None:
    first = ok(shell, "%tracker_init --project p --id keep")
    first.log({"loss": 1.0})
    ok(shell, "%tracker_finish")
    resumed = ok(shell, "%tracker_init --project p --id keep --resume must")
    assert resumed.resumed and resumed.step == 1
    alongside = ok(
        shell, "%tracker_init --project p --reinit create_new --settings silent=True flush_interval=2.5"
    )
    assert resumed.state == "running" and alongside.state == "running"
    assert (alongside.settings.silent, alongside.settings.flush_interval) == (True, 2.5)
    kept = ok(shell, "%tracker_init --project p --reinit false")
    assert kept is tracker_jupyter.run


def test_resume_alone_means_auto(shell: InteractiveShell, store: Path) -> None:
    run = ok(shell, "%tracker_init --project p --id auto1 --resume")
    assert run.id == "auto1" and not run.resumed  # nothing to resume yet: a new run with that id


def test_save_code_flags(shell: InteractiveShell, store: Path) -> None:
    run = ok(shell, "%tracker_init --project p --save-code")
    assert run.options.save_code
    run = ok(shell, "%tracker_init --project p --no-save-code")
    assert not run.options.save_code


def test_returns_the_run_and_shows_it_as_out(shell: InteractiveShell, store: Path) -> None:
    result = run_cell(shell, "%tracker_init --project shown")
    assert result.success
    assert result.result is tracker_jupyter.run and result.result is not None
    assert shell.user_ns["_"] is result.result  # Out[n]: the run, shown through its rich display


def test_integration_and_server_flags_reach_init(shell: InteractiveShell, store: Path) -> None:
    from tracker_jupyter.integrations import gym, tensorboard

    source = ok(shell, "%tracker_init --project p --id src")
    source.log({"x": 1})
    ok(shell, "%tracker_finish")
    forked = ok(shell, "%tracker_init --project p --fork-from src?_step=0")
    assert tracker_jupyter.Api(store).run(forked.id).lineage["fork"] == {
        "run_id": "src",
        "project": "p",
        "step": 0,
    }
    run = ok(shell, "%tracker_init --project p --sync-tensorboard --monitor-gym --magic '{\"args\": false}'")
    current = tensorboard._current()
    assert current is not None and current.run is run and gym._runs[-1] is run
    assert run.options.anonymous is None
    run = ok(shell, "%tracker_init --project p --anonymous must")
    assert run.options.anonymous == "must"
    assert tensorboard._current() is None and not gym._runs  # the finished run let go of them
    assert "unknown part(s) bogus" in _usage_error(shell, "--project p --magic '{\"bogus\": true}'")
    assert "force=True needs a tracking server" in _usage_error(shell, "--project p --force")


def test_help_lists_every_flag(shell: InteractiveShell) -> None:
    doc = shell.find_line_magic("tracker_init").__doc__
    for flag in (
        "--project", "--entity", "--name", "--notes", "--tags", "--config", "--config-file",
        "--config-include-keys", "--config-exclude-keys", "--allow-val-change", "--no-allow-val-change",
        "--group", "--job-type", "--mode", "--id", "--resume", "--resume-from", "--fork-from", "--reinit",
        "--dir", "--save-code", "--no-save-code", "--force", "--anonymous", "--sync-tensorboard",
        "--monitor-gym", "--magic", "--settings",
    ):  # fmt: skip
        assert flag in doc, flag
    assert "tracker_jupyter.init()" in doc
    with capture_output() as captured:
        assert shell.run_line_magic("tracker_init", "--help") is None
    assert "--config-file" in captured.stdout
    assert tracker_jupyter.run is None


# ------------------------------------------------------------------------------------------- errors


def test_unknown_flags_are_a_usage_error_without_a_traceback(shell: InteractiveShell, store: Path) -> None:
    assert "unrecognized arguments: --bogus" in _usage_error(shell, "--project p --bogus")
    with capture_output() as captured:
        result = run_cell(shell, "%tracker_init --bogus")
    assert isinstance(result.error_in_exec, UsageError)
    assert "UsageError: %tracker_init: unrecognized arguments: --bogus" in captured.stdout + captured.stderr
    assert "Traceback" not in captured.stdout + captured.stderr
    assert tracker_jupyter.run is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--config lr", "--config takes KEY=VALUE pairs, got 'lr'"),
        ("--config =1", "--config takes KEY=VALUE pairs"),
        ("--settings silent", "--settings takes KEY=VALUE pairs"),
        ("--config a=1 --config-file c.yaml", "not both"),
        ("--name 'unclosed", "cannot split"),
        ("--tags", "expected at least one argument"),
    ],
)
def test_bad_flag_values(shell: InteractiveShell, store: Path, line: str, message: str) -> None:
    assert message in _usage_error(shell, line)


@pytest.mark.parametrize(
    "line",
    [
        "--mode bogus",
        "--resume sometimes",
        "--reinit maybe",
        "--settings no_such_setting=1",
        "--id has/slash",
        "--resume-from nonsense",
        "--config-file missing.yaml",
    ],
)
def test_init_usage_errors_keep_their_message(shell: InteractiveShell, store: Path, line: str) -> None:
    kwargs = {
        "--mode bogus": {"mode": "bogus"},
        "--resume sometimes": {"resume": "sometimes"},
        "--reinit maybe": {"reinit": "maybe"},
        "--settings no_such_setting=1": {"settings": {"no_such_setting": 1}},
        "--id has/slash": {"id": "has/slash"},
        "--resume-from nonsense": {"resume_from": "nonsense"},
        "--config-file missing.yaml": {"config": "missing.yaml"},
    }[line]
    with pytest.raises(tracker_jupyter.UsageError) as direct:
        tracker_jupyter.init(**kwargs)
    assert _usage_error(shell, line) == str(direct.value)


def test_config_errors_become_usage_errors(shell: InteractiveShell, store: Path) -> None:
    ok(shell, "%tracker_init --project p --id c1 --config lr=0.1")
    ok(shell, "%tracker_finish")
    message = _usage_error(shell, "--project p --id c1 --resume must --config lr=0.5 --no-allow-val-change")
    assert "lr" in message


# ---------------------------------------------------------------------------------- %tracker_finish


def test_tracker_finish_with_an_exit_code(shell: InteractiveShell, store: Path) -> None:
    run = ok(shell, "%tracker_init --project p")
    ok(shell, "%tracker_finish --exit-code 3")
    assert (run.state, run.exit_code) == ("failed", 3)
    assert tracker_jupyter.run is None
    ok(shell, "%tracker_finish")  # no active run: nothing to do
    assert "invalid int value" in _usage_error(shell, "--exit-code x", "tracker_finish")


# ----------------------------------------------------------------------------------------- %%tracker


def test_tracker_cell_runs_in_its_own_run_and_returns_the_last_value(
    shell: InteractiveShell, store: Path
) -> None:
    result = run_cell(
        shell,
        "%%tracker --project cells --name one-cell\nimport tracker_jupyter\n"
        "tracker_jupyter.log({'loss': 0.5})\ninside = tracker_jupyter.run\n21 * 2",
    )
    assert result.success and result.result == 42
    run = shell.user_ns["inside"]
    assert (run.project, run.name, run.state, run.step) == ("cells", "one-cell", "finished", 1)
    assert tracker_jupyter.run is None


def test_tracker_cell_that_raises_fails_the_run_and_raises_again(
    shell: InteractiveShell, store: Path
) -> None:
    with capture_output() as captured:
        result = run_cell(
            shell,
            "%%tracker --project cells\nimport tracker_jupyter\ninside = tracker_jupyter.run\n"
            "x = 1\nraise ValueError('inside the cell')",
        )
    assert isinstance(result.error_in_exec, ValueError)
    assert captured.stdout.count("ValueError") >= 1
    assert "inside the cell" in captured.stdout
    assert "magics.py" not in captured.stdout  # the traceback shows the user's code, not ours
    run = shell.user_ns["inside"]
    assert (run.state, run.exit_code) == ("failed", 1)
    assert shell.user_ns["x"] == 1  # ran in the user's namespace
    assert tracker_jupyter.run is None
    assert ok(shell, "1 + 1") == 2  # the next cell works


def test_tracker_cell_with_top_level_await(tmp_path: Path) -> None:
    # a fresh interpreter: no event loop may be running in the thread, as in terminal IPython (browser
    # tests drive Playwright's synchronous API from this process's main thread, which runs one)
    code = textwrap.dedent(
        f"""
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "tracker_jupyter")
        result = shell.run_cell(
            "%%tracker --project p --id awaited --dir {tmp_path / "store"}\\n"
            "import asyncio\\nawait asyncio.sleep(0)\\n"
            "import tracker_jupyter\\ntracker_jupyter.log({{'a': 1}})\\nawait asyncio.sleep(0, result=7)"
        )
        print(result.success, result.result)
        """
    )
    done = run_script(code, tmp_path, env={"IPYTHONDIR": str(tmp_path / "ipython")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["True", "7"]
    record = tracker_jupyter.Api(tmp_path / "store").run("awaited")
    assert record.state == "finished" and [r["a"] for r in record.scan_history()] == [1]


def test_tracker_cell_with_an_active_run_uses_it(shell: InteractiveShell, store: Path) -> None:
    run = ok(shell, "%tracker_init --project p")
    with capture_output() as captured:
        result = run_cell(
            shell, "%%tracker --project ignored\nimport tracker_jupyter\ntracker_jupyter.log({'a': 1})"
        )
    assert result.success
    assert "does not use the flags" in captured.stdout
    assert tracker_jupyter.run is run and run.state == "running" and run.step == 1
    assert isinstance(run_cell(shell, "%%tracker\nraise KeyError('k')").error_in_exec, KeyError)
    assert run.state == "running"  # an error in a cell does not end a run it did not start


def test_tracker_cell_with_bad_flags_runs_nothing(shell: InteractiveShell, store: Path) -> None:
    result = run_cell(shell, "%%tracker --bogus\nran = True")
    assert isinstance(result.error_in_exec, UsageError)
    assert "ran" not in shell.user_ns


def test_tracker_cell_with_a_syntax_error_fails_its_run(shell: InteractiveShell, store: Path) -> None:
    result = run_cell(shell, "%%tracker --project p --id syntax\ndef broken(:")
    assert isinstance(result.error_in_exec, SyntaxError)
    assert json.loads((store / "p" / "syntax" / "run.json").read_text())["state"] == "failed"


# ------------------------------------------------------------------------------------ %tracker_runs


def test_tracker_runs_shows_the_stored_runs(shell: InteractiveShell, store: Path, tmp_path: Path) -> None:
    ok(shell, "%tracker_init --project listed --name run-a\n%tracker_finish")
    ok(shell, "%tracker_init --project elsewhere --name run-b\n%tracker_finish")
    with capture_output() as captured:
        assert shell.run_line_magic("tracker_runs", "--project listed") is None
    [table] = [o.data["text/html"] for o in captured.outputs]  # no kernel here: the static table
    assert "run-a" in table and "run-b" not in table and "finished" in table
    with capture_output() as captured:
        shell.run_line_magic("tracker_runs", "")  # every project
    [table] = [o.data["text/html"] for o in captured.outputs]
    assert "run-a" in table and "run-b" in table
    other = tmp_path / "other-store"
    with capture_output() as captured:
        shell.run_line_magic("tracker_runs", f"--dir {other} --project none")  # empty: still fine
    [table] = [o.data["text/html"] for o in captured.outputs]
    assert "run-a" not in table and "<tbody></tbody>" in table
    assert "unrecognized" in _usage_error(shell, "--bogus", "tracker_runs")


def test_tracker_runs_shows_a_sweep_s_trials_and_marks_the_best(shell: InteractiveShell, store: Path) -> None:
    grid = {"method": "grid", "metric": {"name": "score", "goal": "maximize"},
            "parameters": {"x": {"values": [1, 3, 2]}}}  # fmt: skip
    ok(shell, "%tracker_init --project swept --name not-a-trial\n%tracker_finish")
    ok(
        shell,
        "import tracker_jupyter\n"
        f"sweep_id = tracker_jupyter.sweep({grid!r}, project='swept', dir={str(store)!r})\n"
        "def train():\n"
        "    run = tracker_jupyter.init(settings={'silent': True})\n"
        "    run.log({'score': run.config['x'] * 10})\n"
        f"tracker_jupyter.agent(sweep_id, function=train, dir={str(store)!r})",
    )
    sweep_id = shell.user_ns["sweep_id"]
    with capture_output() as captured:
        shell.run_line_magic("tracker_runs", f"--project swept --sweep {sweep_id}")
    [table] = [o.data["text/html"] for o in captured.outputs]
    assert "not-a-trial" not in table and table.count(f"{sweep_id} #") == 3
    assert f"{sweep_id} #1 ★ best" in table and table.count("★") == 1  # x=3: score 30, the goal is maximize
    assert "no run of that sweep" in _usage_error(shell, "--project swept --sweep nope", "tracker_runs")


# ------------------------------------------------------------------------------------ configuration


def test_config_magic_sets_defaults_and_flags_win(
    shell: InteractiveShell, store: Path, tmp_path: Path
) -> None:
    ok(shell, "%config TrackerMagics.project = 'configured'")
    ok(shell, f"%config TrackerMagics.dir = {str(tmp_path / 'configured-store')!r}")
    ok(shell, "%config TrackerMagics.silent = True")
    run = ok(shell, "%tracker_init")
    assert run.project == "configured"
    assert Path(run.run_dir).parent.parent == tmp_path / "configured-store"
    assert run.settings.silent is True
    run = ok(shell, f"%tracker_init --project explicit --dir {store}")
    assert run.project == "explicit" and Path(run.run_dir).parent.parent == store


def test_config_magic_lists_the_traits_with_help(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        ok(shell, "%config TrackerMagics")
    for trait in ("project", "entity", "dir", "mode", "show_widget", "save_code", "silent"):
        assert f"TrackerMagics.{trait}" in captured.stdout
    assert "TRACKER_PROJECT" in captured.stdout


def test_unset_traits_leave_the_environment_in_charge(
    shell: InteractiveShell, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKER_PROJECT", "from-env")
    assert ok(shell, "%tracker_init").project == "from-env"


def test_an_invalid_mode_trait_is_refused(shell: InteractiveShell) -> None:
    ok(shell, "%config TrackerMagics.mode = 'sometimes'")  # %config reports the error itself
    (magics,) = [c for c in shell.configurables if type(c).__name__ == "TrackerMagics"]
    assert magics.mode is None


# ------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.01", 0.01), ("3", 3), ("True", True), ("None", None), ("[1, 2]", [1, 2]), ("abc", "abc"),
     ("1e-3", 0.001), ("'quoted'", "quoted"), ("", ""), ("(", "(")],
)  # fmt: skip
def test_literal(text: str, value: object) -> None:
    assert literal(text) == value


def test_parse_pairs_splits_at_the_first_equals_sign() -> None:
    assert parse_pairs("--config", ["expr=a=b", " key =1"]) == {"expr": "a=b", "key": 1}
    assert parse_pairs("--config", None) == {}
