"""init(): the reference signature, every refusal, resolution order, config sources, modes."""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import subprocess
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import ConfigError, UsageError

from .conftest import run_script

REFERENCE_ARGS = [
    "entity", "project", "dir", "id", "name", "notes", "tags", "config", "config_exclude_keys",
    "config_include_keys", "allow_val_change", "group", "job_type", "mode", "force", "anonymous", "reinit",
    "resume", "resume_from", "fork_from", "save_code", "tensorboard", "sync_tensorboard", "monitor_gym",
    "settings",
]  # fmt: skip


def test_signature_is_the_reference_plus_magic_all_defaulting_to_none():
    params = inspect.signature(tj.init).parameters
    assert list(params) == [*REFERENCE_ARGS, "magic"]
    assert all(p.default is None for p in params.values())


def test_returns_run_with_identity(store_dir: Path):
    run = tj.init(
        project="p", dir=store_dir, name="n", notes="why", tags=["a", "b"], group="g", job_type="train"
    )
    assert isinstance(run, tj.Run)
    assert (run.project, run.name, run.notes, run.tags, run.group, run.job_type) == (
        "p", "n", "why", ("a", "b"), "g", "train",
    )  # fmt: skip
    assert len(run.id) == 8 and run.id.isalnum() and run.id == run.id.lower()
    assert run.path == f"p/{run.id}"
    assert run.dir == str(store_dir / "p" / run.id / "files")
    assert run.url is None and run.mode == "offline" and run.offline
    assert tj.run is run
    run.finish()
    assert tj.run is None
    meta = json.loads((store_dir / "p" / run.id / "run.json").read_text())
    assert meta["state"] == "finished" and meta["notes"] == "why" and meta["tags"] == ["a", "b"]


def test_random_names_are_readable_and_ids_unique(store_dir: Path):
    ids, names = set(), set()
    for _ in range(20):
        run = tj.init(project="p", dir=store_dir, reinit="create_new", settings={"silent": True})
        ids.add(run.id)
        names.add(run.name)
        adjective, noun, number = run.name.split("-")
        assert adjective.isalpha() and noun.isalpha() and number.isdigit()
    assert len(ids) == 20 and len(names) > 10


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "sometimes"}, "mode='sometimes'"),
        ({"resume": "maybe"}, "resume='maybe'"),
        ({"resume": 3}, "resume must be"),
        ({"reinit": "twice"}, "reinit='twice'"),
        ({"anonymous": "yes"}, "anonymous='yes'"),
        ({"id": "a/b"}, "/ \\ # ? % :"),
        ({"id": "a:b"}, "/ \\ # ? % :"),
        ({"id": "a%b"}, "/ \\ # ? % :"),
        ({"id": "a#b"}, "/ \\ # ? % :"),
        ({"id": "a?b"}, "/ \\ # ? % :"),
        ({"id": "a\\b"}, "/ \\ # ? % :"),
        ({"id": "x" * 65}, "at most 64"),
        ({"id": ".."}, "not usable"),
        ({"project": "../escape"}, "/ \\ # ? % :"),
        ({"project": ".."}, "not usable"),
        ({"resume": "allow", "fork_from": "abc?_step=1"}, "cannot be combined"),
        ({"resume_from": "abc?_step=1", "fork_from": "abc?_step=1"}, "cannot be combined"),
        ({"resume_from": "abc"}, "{run_id}?_step={step}"),
        ({"fork_from": "abc?_step=-1"}, "{run_id}?_step={step}"),
        ({"fork_from": "abc?_step=1", "id": "abc"}, "different id"),
        ({"config_include_keys": ["a"], "config_exclude_keys": ["b"]}, "cannot both"),
        ({"config_include_keys": "a"}, "list of strings"),
        ({"config": 42}, "config must be"),
        ({"config": {"a.b": 1}}, "contains '.'"),
        ({"config": {"opt": {"a.b": 1}}}, "in config['opt']: config key 'a.b' contains '.'"),
        ({"project": "a/b"}, "Pick another project"),
        ({"tags": "single"}, "not a single string"),
        ({"tags": ["ok", 3]}, "non-empty string"),
        ({"settings": {"projekt": "x"}}, "Did you mean 'project'"),
        ({"settings": 5}, "settings must be"),
        ({"force": "yes"}, "force must be True or False"),
        ({"name": 12}, "name must be a string"),
    ],
)
def test_bad_arguments_are_refused_with_what_and_how(store_dir: Path, kwargs, needle):
    with pytest.raises(UsageError) as info:
        tj.init(dir=store_dir, **kwargs)
    assert needle in str(info.value)
    assert tj.run is None
    # nothing half-made is left behind: no run directory exists
    assert not list(store_dir.glob("*/*/run.json"))


def test_a_dir_that_is_not_a_path_is_named_in_the_error():
    with pytest.raises(UsageError, match=r"dir must be a path \(a str or os.PathLike\), got 5 \(int\)"):
        tj.init(project="p", dir=5)


def test_dryrun_is_offline(store_dir: Path):
    run = tj.init(project="p", dir=store_dir, mode="dryrun")
    assert run.mode == "offline"


def test_resolution_order_argument_settings_environment_default(store_dir: Path, monkeypatch):
    monkeypatch.setenv("TRACKER_PROJECT", "from-env")
    monkeypatch.setenv("TRACKER_NAME", "env-name")
    monkeypatch.setenv("TRACKER_TAGS", "x, y")
    monkeypatch.setenv("TRACKER_RUN_GROUP", "env-group")
    monkeypatch.setenv("TRACKER_JOB_TYPE", "env-job")
    monkeypatch.setenv("TRACKER_NOTES", "env-notes")
    monkeypatch.setenv("TRACKER_DIR", str(store_dir))
    run = tj.init()
    assert (run.project, run.name, run.tags, run.group, run.job_type, run.notes) == (
        "from-env", "env-name", ("x", "y"), "env-group", "env-job", "env-notes",
    )  # fmt: skip
    assert Path(run.dir).is_relative_to(store_dir)
    run.finish()
    run = tj.init(settings={"project": "from-settings", "run_name": "s-name"})
    assert (run.project, run.name) == ("from-settings", "s-name")
    run.finish()
    run = tj.init(project="explicit", settings=tj.Settings(project="from-settings"))
    assert run.project == "explicit" and run.name == "env-name"


def test_environment_mode_and_bad_boolean(store_dir: Path, monkeypatch):
    monkeypatch.setenv("TRACKER_MODE", "disabled")
    assert tj.init(project="p", dir=store_dir).mode == "disabled"
    tj.finish()
    monkeypatch.setenv("TRACKER_MODE", "offline")
    monkeypatch.setenv("TRACKER_SILENT", "perhaps")
    with pytest.raises(UsageError, match="TRACKER_SILENT='perhaps' is not a boolean"):
        tj.init(project="p", dir=store_dir)


def test_settings_values_are_checked_and_parsed(store_dir: Path):
    settings = tj.Settings.coerce(
        {"save_code": "false", "silent": "yes", "flush_interval": "0.2", "run_tags": "a, b"}
    )
    assert (settings.save_code, settings.silent, settings.flush_interval, settings.run_tags) == (
        False, True, 0.2, ("a", "b"),
    )  # fmt: skip
    refused = [
        ({"flush_interval": "fast"}, "settings flush_interval='fast' is not a number"),
        ({"flush_interval": 0}, "flush_interval must be above 0"),
        ({"widget_fps": -1}, "widget_fps must be above 0"),
        ({"sync_timeout": -1}, "sync_timeout must be 0 or more"),
        ({"max_pending_rows": 1.5}, "not a whole number"),
        ({"silent": "maybe"}, "settings silent='maybe' is not a boolean"),
        ({"save_code": 1}, "settings save_code=1 is not a boolean"),
        ({"project": 3}, "settings project=3 must be a string"),
        ({"run_tags": [1]}, "must be a list of strings"),
    ]
    for value, message in refused:
        with pytest.raises(UsageError, match=re.escape(message)):
            tj.init(project="p", dir=store_dir, settings=value)
        with pytest.raises(UsageError, match=re.escape(message)):
            tj.Settings(**value)
    assert tj.run is None


def test_a_bad_value_is_named_where_it_came_from(store_dir: Path, monkeypatch):
    monkeypatch.setenv("TRACKER_MODE", "onlin")
    with pytest.raises(UsageError, match="TRACKER_MODE='onlin' is not allowed"):
        tj.init(project="p", dir=store_dir)
    with pytest.raises(UsageError, match="settings mode='x' is not allowed"):
        tj.init(project="p", dir=store_dir, settings={"mode": "x"})
    with pytest.raises(UsageError, match=r"^mode='y' is not allowed"):
        tj.init(project="p", dir=store_dir, mode="y")
    monkeypatch.delenv("TRACKER_MODE")
    monkeypatch.setenv("TRACKER_RESUME", "sometimes")
    with pytest.raises(UsageError, match="TRACKER_RESUME='sometimes' is not allowed"):
        tj.init(project="p", dir=store_dir)
    monkeypatch.setenv("TRACKER_ANONYMOUS", "maybe")
    with pytest.raises(UsageError, match="TRACKER_ANONYMOUS='maybe' is not allowed"):
        tj.init(project="p", dir=store_dir, resume="allow")


def test_environment_values_are_checked_and_resume_accepts_booleans(store_dir: Path, monkeypatch):
    monkeypatch.setenv("TRACKER_FLUSH_INTERVAL", "0")
    with pytest.raises(UsageError, match=r"TRACKER_FLUSH_INTERVAL=0\.0: flush_interval must be above 0"):
        tj.init(project="p", dir=store_dir)
    monkeypatch.delenv("TRACKER_FLUSH_INTERVAL")
    monkeypatch.setenv("TRACKER_RESUME", "true")  # resume=True is auto
    run = tj.init(project="p", dir=store_dir)
    run.log({"x": 1})
    run.finish()
    monkeypatch.setenv("TRACKER_RESUME", "allow")  # an explicit fork_from wins over the environment
    fork = tj.init(project="p", dir=store_dir, fork_from=f"{run.id}?_step=0")
    assert fork.id != run.id
    fork.finish()
    empty = tj.init(project="p", dir=store_dir)
    empty.finish()
    with pytest.raises(UsageError, match="has logged no steps yet"):
        tj.init(project="p", dir=store_dir, fork_from=f"{empty.id}?_step=0")


def test_default_project_is_git_root_name(tmp_path: Path, monkeypatch):
    repo = tmp_path / "my-repo"
    (repo / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.chdir(repo / "sub")
    run = tj.init(dir=tmp_path / "store")
    assert run.project == "my-repo"


def test_default_project_is_program_name_else_uncategorized(tmp_path: Path):
    script = tmp_path / "train_model.py"
    script.write_text(
        "import tracker_jupyter as tj\nrun = tj.init(dir='store')\nprint(run.project)\nrun.finish()\n"
    )
    import sys

    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert done.stdout.strip() == "train_model", done.stderr
    done = run_script("import tracker_jupyter as tj; print(tj.init(dir='store').project)", tmp_path)
    assert done.stdout.strip() == "uncategorized", done.stderr


# ------------------------------------------------------------------------------------------ config


def test_config_sources_dict_namespace_absl_yaml(store_dir: Path, tmp_path: Path):
    run = tj.init(project="p", dir=store_dir, config={"lr": 0.1, "layers": {"n": 3, "act": "relu"}})
    assert run.config.lr == 0.1 and run.config["layers"] == {"n": 3, "act": "relu"}
    run.finish()
    ns = argparse.Namespace(batch=32, name="x")
    run = tj.init(project="p", dir=store_dir, config=ns)
    assert dict(run.config) == {"batch": 32, "name": "x"}
    run.finish()

    from absl import flags

    absl_flags = flags.FlagValues()  # real absl flags, parsed from a command line
    flags.DEFINE_integer("epochs", 1, "epochs to train", flag_values=absl_flags)
    flags.DEFINE_string("opt", "sgd", "optimizer", flag_values=absl_flags)
    absl_flags(["train.py", "--epochs=3"])
    run = tj.init(project="p", dir=store_dir, config=absl_flags)
    assert (run.config.epochs, run.config.opt) == (3, "sgd")
    run.finish()
    (tmp_path / "cfg.yaml").write_text("lr: 0.5\nopt: adam\n")
    run = tj.init(project="p", dir=store_dir, config=str(tmp_path / "cfg.yaml"))
    assert dict(run.config) == {"lr": 0.5, "opt": "adam"}
    run.finish()
    (tmp_path / "wb.yaml").write_text("wandb_version: 1\nlr:\n  desc: rate\n  value: 0.25\nbs:\n  value: 8\n")
    run = tj.init(project="p", dir=store_dir, config=tmp_path / "wb.yaml")
    assert dict(run.config) == {"lr": 0.25, "bs": 8}
    run.finish()
    with pytest.raises(UsageError, match="no such YAML file"):
        tj.init(project="p", dir=store_dir, config="missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UsageError, match="must hold a mapping"):
        tj.init(project="p", dir=store_dir, config=str(tmp_path / "list.yaml"))


def test_config_include_and_exclude_keys(store_dir: Path):
    run = tj.init(project="p", dir=store_dir, config={"a": 1, "b": 2, "c": 3}, config_include_keys=["a", "c"])
    assert dict(run.config) == {"a": 1, "c": 3}
    run.finish()
    run = tj.init(project="p", dir=store_dir, config={"a": 1, "b": 2, "c": 3}, config_exclude_keys=["b"])
    assert dict(run.config) == {"a": 1, "c": 3}


def test_config_value_limits_and_reprs(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    with pytest.raises(UsageError, match="under 10 MB"):
        run.config.big = "x" * (10 * 1024 * 1024 + 10)
    assert "big" not in run.config

    class Opaque:
        def __repr__(self):
            return "<Opaque>"

    with pytest.warns(UserWarning, match="not JSON-serializable"):
        run.config.thing = Opaque()
    assert run.config.thing == "<Opaque>"
    run.config.update({"t": (1, 2), "p": Path("/x")})
    assert run.config.t == [1, 2] and run.config.p == "/x"
    run.finish()
    saved = json.loads((store_dir / "p" / run.id / "config.json").read_text())
    assert saved == {"thing": "<Opaque>", "t": [1, 2], "p": "/x"}


def test_allow_val_change(store_dir: Path):
    run = tj.init(project="p", dir=store_dir, config={"lr": 0.1})
    run.config.lr = 0.1  # the same value is not a change
    with pytest.raises(ConfigError, match=r"'lr' is already 0\.1.*allow_val_change=True"):
        run.config.lr = 0.2
    with pytest.raises(ConfigError):
        run.config["lr"] = 0.2
    with pytest.raises(ConfigError):
        run.config.update({"lr": 0.3, "new": 1})
    assert "new" not in run.config and run.config.lr == 0.1  # nothing of a refused update is applied
    run.config.update({"lr": 0.2}, allow_val_change=True)
    assert run.config.lr == 0.2
    run.finish()
    run = tj.init(project="p", dir=store_dir, config={"lr": 0.1}, allow_val_change=True)
    run.config.lr = 0.5
    assert run.config["lr"] == 0.5
    run.finish()
    saved = json.loads((store_dir / "p" / run.id / "config.json").read_text())
    assert saved == {"lr": 0.5}


# ------------------------------------------------------------------------------------------ modes


def test_disabled_mode_works_and_writes_nothing(tmp_path: Path):
    run = tj.init(project="p", mode="disabled", config={"a": 1})
    run.log({"x": 1.0})
    run.log({"x": 2.0}, step=5)
    run.config.b = 2
    run.summary["best"] = 3
    run.name = "renamed"
    run.tags += ("t",)
    assert run.summary["x"] == 2.0 and run.step == 5 and run.disabled  # step 5 is pending, not committed
    assert tj.run is run
    tj.log({"y": 1})
    run.save()
    scratch = (
        run.dir
    )  # code that writes files into run.dir keeps working: a scratch directory outside any store
    assert run.dir == scratch and Path(scratch).is_dir() and not Path(scratch).is_relative_to(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"w")
    assert run.save(str(tmp_path / "weights.bin")) == []  # nothing is kept for a disabled run
    run.finish()
    assert tj.run is None
    assert not (tmp_path / "tracker").exists()


def test_a_disabled_create_new_run_leaves_the_first_current(store_dir: Path):
    first = tj.init(project="p", dir=store_dir)
    second = tj.init(project="p", mode="disabled", reinit="create_new")
    assert tj.run is first and second is not first and second.disabled
    second.finish()
    first.finish()


def test_online_without_server_falls_back_to_offline_unless_forced(store_dir: Path, capsys):
    run = tj.init(project="p", dir=store_dir, mode="online")
    assert run.mode == "offline"
    err = capsys.readouterr().err
    assert "no tracking server is configured" in err and "tracker sync" in err
    run.sink.flush()
    assert tj.Api(store_dir).run(run.id).mode == "offline"  # on disk while the run is live, too
    run.finish()
    with pytest.raises(UsageError, match="TRACKER_BASE_URL"):
        tj.init(project="p", dir=store_dir, mode="online", force=True)
    with pytest.raises(UsageError, match="force=True needs a tracking server"):
        tj.init(project="p", dir=store_dir, force=True)
    assert tj.run is None


def test_silent_setting_quiets_init_and_finish_lines(store_dir: Path, capsys):
    run = tj.init(project="p", dir=store_dir, settings={"silent": True})
    run.finish()
    assert capsys.readouterr().err == ""
    run = tj.init(project="p", dir=store_dir)
    run.finish()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and run.id in err[0] and "finished" in err[1]


# ------------------------------------------------------------------------------------------ code


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_save_code_in_a_script_records_git_and_copies_the_program(tmp_path: Path):
    repo = tmp_path / "proj"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    _git(repo, "remote", "add", "origin", "https://alice:s3cret-token@example.com/team/proj.git")
    script = repo / "src" / "train.py"
    script.parent.mkdir()
    script.write_text(
        "import tracker_jupyter as tj\nrun = tj.init(dir='store', save_code=True)\nrun.finish()\n"
    )
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "first")
    script.write_text(script.read_text() + "# an uncommitted change\n")
    import sys

    done = subprocess.run([sys.executable, str(script)], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [run_dir] = (repo / "store" / "proj").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    assert meta["git"]["commit"] == head.strip()
    assert meta["git"]["dirty"] is True
    assert meta["git"]["remote"] == "https://example.com/team/proj.git"
    assert "s3cret" not in "".join(p.read_text() for p in run_dir.rglob("*") if p.is_file())
    assert (run_dir / "code" / "src" / "train.py").read_text() == script.read_text()
    assert "+# an uncommitted change" in (run_dir / "code" / "diff.patch").read_text()
    assert meta["code_path"] == "code/src/train.py"

    env = {"TRACKER_DISABLE_CODE": "true"}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
    )
    assert done.returncode == 0, done.stderr
    newest = max((repo / "store" / "proj").iterdir(), key=lambda p: p.stat().st_mtime)
    assert newest != run_dir and not (newest / "code").exists()


def test_values_nan_inf_roundtrip_in_config_and_history(store_dir: Path):
    run = tj.init(project="p", dir=store_dir, config={"eps": float("inf")})
    run.log({"loss": float("nan"), "up": float("inf"), "down": float("-inf")})
    run.finish()
    record = tj.Api(store_dir).run(run.id)
    [row] = list(record.scan_history())
    assert math.isnan(row["loss"]) and row["up"] == math.inf and row["down"] == -math.inf
    assert record.config["eps"] == math.inf
