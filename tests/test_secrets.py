"""Secrets stay out of the store and the server: secret-looking config values and command-line values are
stored and uploaded masked (``mask_secrets``, on by default), while the run itself keeps the real ones."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import tracker_jupyter as tj
from tests.support.ipython_shell import interactive_shell, ok
from tests.support.mlflow_server import MlflowServer
from tracker_jupyter import store
from tracker_jupyter.core.values import mask_argv, mask_code, secret_values
from tracker_jupyter.history import notebook

CONFIG = {"lr": 0.1, "api_key": "sk-live-123", "db": {"host": "h", "db_password": "hunter2"}}


def test_argv_values_after_secret_flags_are_masked() -> None:
    args = [
        "--lr",
        "0.1",
        "--password",
        "hunter2",
        "--api-key=sk-1",
        "-token",
        "t0k",
        "--author",
        "me",
        "--auth",
        "basic",
        "pos",
    ]
    assert mask_argv(args) == ["--lr", "0.1", "--password", "***", "--api-key=***", "-token", "***",
                               "--author", "me", "--auth", "***", "pos"]  # fmt: skip


def test_a_script_s_secrets_are_masked_in_the_store_and_kept_in_the_run(tmp_path: Path) -> None:
    code = f"""
import json, sys, tracker_jupyter as tj
run = tj.init(project="p", id="s", dir={str(tmp_path)!r}, config={CONFIG!r}, settings={{"silent": True}})
run.config.update({{"api_key": "sk-rotated"}}, allow_val_change=True)  # the first value is recorded too
print(json.dumps(dict(run.config)))
run.finish()
"""
    done = subprocess.run(
        [sys.executable, "-c", code, "--password", "hunter2", "--token=t0k", "--epochs", "3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["api_key"] == "sk-rotated"  # the run's own config is the real one
    run_dir = tmp_path / "p" / "s"
    meta = json.loads((run_dir / store.META).read_text())
    assert meta["args"] == ["--password", "***", "--token=***", "--epochs", "3"]
    assert meta["config_first"] == {"api_key": "***"}
    assert json.loads((run_dir / store.CONFIG).read_text()) == {
        "lr": 0.1, "api_key": "***", "db": {"host": "h", "db_password": "***"}
    }  # fmt: skip
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"hunter2" not in text and b"sk-live" not in text and b"t0k" not in text, path


def test_a_resumed_run_takes_its_secret_again(store_dir: Path) -> None:
    run = tj.init(project="p", id="r", dir=store_dir, config=CONFIG, settings={"silent": True})
    run.finish()
    again = tj.init(
        project="p", id="r", dir=store_dir, resume="must", config=CONFIG, settings={"silent": True}
    )
    assert again.config["api_key"] == "sk-live-123"  # the stored *** is no change refused
    again.finish()


def test_masking_can_be_turned_off(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir, config=CONFIG, settings={"mask_secrets": False, "silent": True})
    run.finish()
    assert json.loads((store_dir / "p" / run.id / store.CONFIG).read_text())["api_key"] == "sk-live-123"


@pytest.fixture
def online(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MlflowServer:
    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return mlflow_server


def test_the_server_gets_the_masked_values(online: MlflowServer, mlflow_client: Any, store_dir: Path) -> None:
    project = f"secrets-{uuid.uuid4().hex[:8]}"
    run = tj.init(project=project, dir=store_dir, config=CONFIG, settings={"silent": True})
    run.log({"loss": 1.0})
    run.finish()
    experiment = mlflow_client.get_experiment_by_name(project)
    [found] = mlflow_client.search_runs([experiment.experiment_id])
    assert found.data.params["api_key"] == "***" and found.data.params["db.db_password"] == "***"
    assert found.data.params["lr"] == "0.1"
    assert "sk-live" not in found.data.tags["tracker.config"]
    uploaded = json.loads(
        Path(mlflow_client.download_artifacts(found.info.run_id, "config.json")).read_text()
    )
    assert uploaded["api_key"] == "***" and uploaded["db"]["db_password"] == "***"


# ------------------------------------------------------------------------------------ saved code

CODE_CASES = [
    ('os.environ["HF_TOKEN"] = "hf_abcdef"', 'os.environ["HF_TOKEN"] = "***"'),
    ("wandb.login(key='0123456789abcdef')", "wandb.login(key='***')"),
    ('init(config={"api_key": "sk-1", "lr": 0.1})', 'init(config={"api_key": "***", "lr": 0.1})'),
    ('db_password=f"pw{n}"', 'db_password=f"***"'),
    ("%env WANDB_API_KEY=abc123", "%env WANDB_API_KEY=***"),
    ('!export MY_SECRET="zzz"', '!export MY_SECRET="***"'),
    ('if token == "x": pass', 'if token == "x": pass'),  # a comparison gives nothing away
    ('author = "Jane"; key = "plain"', 'author = "Jane"; key = "plain"'),  # not secret-looking names
]


@pytest.mark.parametrize(("code", "masked"), CODE_CASES)
def test_secret_literals_in_code_are_masked(code: str, masked: str) -> None:
    assert mask_code(code) == masked


def test_known_secret_values_are_masked_wherever_they_appear() -> None:
    known = secret_values(CONFIG, ["--password", "hunter2", "--token=abc", "--api-key=xyzw"])
    assert known == ["sk-live-123", "hunter2", "xyzw"]  # longest first; "abc" is too short to look for
    assert (
        mask_code("print(cfg['db']['db_password'], 'sk-live-123!')", known)
        == "print(cfg['db']['db_password'], '***!')"
    )


SCRIPT = """
import tracker_jupyter as tj
api_key = "sk-script-777"
run = tj.init(project="p", id="c", dir={store!r}, save_code=True, config={{"token": "tok-script-888"}},
              settings={{"silent": True, "mask_secrets": {mask}}})
run.finish()
"""


@pytest.mark.parametrize("mask", [True, False])
def test_a_saved_script_copy_is_masked_unless_masking_is_off(tmp_path: Path, mask: bool) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(store=str(tmp_path / "store"), mask=mask))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "store" / "p" / "c" / store.META).read_text())
    copy = (tmp_path / "store" / "p" / "c" / meta["code_path"]).read_text()
    assert ("sk-script-777" in copy) is (not mask) and ("tok-script-888" in copy) is (not mask)
    if mask:
        assert 'api_key = "***"' in copy and '"token": "***"' in copy


def test_the_session_history_of_a_notebook_is_masked(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    with interactive_shell(tmp_path / "ipython") as shell:
        ok(shell, f"import tracker_jupyter as tj\nrun = tj.init(project='p', id='n', dir={str(store_dir)!r}, "
                  "save_code=True, config={'api_key': 'sk-cell-999'}, settings={'silent': True})")  # fmt: skip
        ok(shell, "os_token = 'tok-cell-555'\nprint('the key is', run.config['api_key'])")
        ok(shell, "{'password': 'pw-json-333', 'n': 1}")  # an execute_result with a repr
        ok(shell, "run.finish()")
    text = (store_dir / "p" / "n" / "code" / "_session_history.ipynb").read_text()
    assert "sk-cell-999" not in text and "tok-cell-555" not in text and "pw-json-333" not in text
    assert "the key is ***" in text and "os_token = '***'" in text


def test_a_notebook_copy_is_masked_and_still_a_valid_notebook() -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            'token = "tok-nb-4444"\nprint(token)',
            outputs=[
                nbformat.v4.new_output("stream", name="stdout", text="tok-nb-4444\n"),
                nbformat.v4.new_output(
                    "execute_result",
                    data={
                        "text/plain": "{'secret': 'tok-nb-4444'}",
                        "application/json": {"secret": "s-3", "a": 1},
                    },
                    execution_count=1,
                ),
            ],
            execution_count=1,
        ),
        nbformat.v4.new_markdown_cell("the token tok-nb-4444 goes in the environment"),
    ]
    masked = notebook.masked_notebook(nbformat.writes(nb), lambda text: mask_code(text, ["tok-nb-4444"]))
    assert "tok-nb-4444" not in masked and "s-3" not in masked
    again = nbformat.reads(masked, as_version=4)
    nbformat.validate(again)
    assert again.cells[0].source == 'token = "***"\nprint(token)'
    assert again.cells[0].outputs[1].data["application/json"] == {"secret": "***", "a": 1}
