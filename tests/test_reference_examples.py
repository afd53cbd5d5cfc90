"""The reference documents' own examples (seeds 001-003), run as scripts with only the import changed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import tracker_jupyter as tj

from .conftest import run_script

EXAMPLES = {
    # seed 001, "How do I launch multiple runs from one script?"
    "for_loop_reinit": """
        import wandb
        for x in range(10):
            run = wandb.init(project="runs-from-for-loop", reinit=True)
            for y in range (100):
                wandb.log({"metric": x+y})
            run.finish()
    """,
    # seed 001, the same with a context manager
    "for_loop_with_run": """
        import wandb
        for x in range(10):
            run = wandb.init(reinit=True)
            with run:
                for y in range(100):
                    run.log({"metric": x+y})
    """,
    # seed 001, "Get the readable run name"
    "readable_name": """
        import wandb

        wandb.init()
        run_name = wandb.run.name
        print("NAME", run_name)
    """,
    # seed 001, "Set the run name to the generated run ID"
    "name_from_id": """
        import wandb

        wandb.init()
        wandb.run.name = wandb.run.id
        wandb.run.save()
    """,
    # seed 001, "Save logs offline"
    "offline": """
        import wandb
        import os

        os.environ["WANDB_API_KEY"] = "YOUR_KEY_HERE"
        os.environ["WANDB_MODE"] = "dryrun"

        config = {
          "dataset": "CIFAR10",
          "machine": "offline cluster",
          "model": "CNN",
          "learning_rate": 0.01,
          "batch_size": 128,
        }

        wandb.init(project="offline-demo")

        for i in range(100):
          wandb.log({"accuracy": i})
    """,
    # seed 002, "Launch multiple runs from the same script"
    "context_manager_runs": """
        import wandb
        for x in range(10):
            with wandb.init(project="my-projo") as run:
                for y in range(100):
                    run.log({"metric": x+y})
    """,
    # seed 003, the usage example
    "config_context": """
        import wandb

        config = {"lr": 0.01, "batch_size": 32}
        with wandb.init(config=config) as run:
            # 正確度と損失を run にログします
            acc = 0.95  # 例: 正確度
            loss = 0.05  # 例: 損失
            run.log({"accuracy": acc, "loss": loss})
    """,
}


def _run_example(name: str, tmp_path: Path):
    code = textwrap.dedent(EXAMPLES[name]).replace("import wandb", "import tracker_jupyter as wandb")
    done = run_script(code, tmp_path, env={"TRACKER_DIR": str(tmp_path / "store"), "TRACKER_SILENT": "1"})
    assert done.returncode == 0, done.stderr
    return done, tj.Api(tmp_path / "store")


@pytest.mark.parametrize("name", ["for_loop_reinit", "for_loop_with_run", "context_manager_runs"])
def test_multiple_runs_from_one_script(name: str, tmp_path: Path):
    _, api = _run_example(name, tmp_path)
    runs = api.runs()
    assert len(runs) == 10 and all(r.state == "finished" for r in runs)
    finals = sorted(r.summary["metric"] for r in runs)
    assert finals == [x + 99 for x in range(10)]
    assert all(len(list(r.scan_history())) == 100 for r in runs)
    if name != "for_loop_with_run":
        assert {r.project for r in runs} == {"runs-from-for-loop" if "reinit" in name else "my-projo"}


def test_readable_name(tmp_path: Path):
    done, api = _run_example("readable_name", tmp_path)
    [run] = api.runs()
    assert done.stdout.split() == ["NAME", run.name]


def test_name_from_id(tmp_path: Path):
    _, api = _run_example("name_from_id", tmp_path)
    [run] = api.runs()
    assert run.name == run.id and run.state == "finished"


def test_offline_example(tmp_path: Path):
    _, api = _run_example("offline", tmp_path)
    [run] = api.runs("offline-demo")
    assert [r["accuracy"] for r in list(run.scan_history())] == list(range(100))


def test_config_context_example(tmp_path: Path):
    _, api = _run_example("config_context", tmp_path)
    [run] = api.runs()
    assert run.config == {"lr": 0.01, "batch_size": 32}
    assert run.summary == {"accuracy": 0.95, "loss": 0.05}
