"""wandb with mode="offline": the Python side hands each record to the wandb-core service process."""

from __future__ import annotations

from pathlib import Path

from contenders import Session

NAME = "wandb"
MODULE = "wandb"
DIST = "wandb"


def environ(workdir: Path) -> dict[str, str]:
    # Every wandb directory points into workdir so nothing lands in ~/.config or ~/.cache.
    return {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(workdir),
        "WANDB_CACHE_DIR": str(workdir / "cache"),
        "WANDB_CONFIG_DIR": str(workdir / "config"),
        "WANDB_DATA_DIR": str(workdir / "data"),
        "WANDB_ARTIFACT_DIR": str(workdir / "artifacts"),
    }


def start(workdir: Path, config: dict[str, object]) -> Session:
    import wandb

    run = wandb.init(project="bench", dir=str(workdir), mode="offline", config=config)
    # The service outlives run.finish() until teardown (normally at exit); waiting for it here is what
    # lets its peak RSS show up in RUSAGE_CHILDREN.
    return Session(log=run.log, finish=run.finish, teardown=wandb.teardown)
