"""A trainer that defines metrics: a custom x axis, best and min summaries, nested logs."""

import importlib
import os

wandb = importlib.import_module(os.environ.get("COMPAT_TRACKER", "wandb"))

run = wandb.init(project="compat", mode="offline", dir=os.environ["COMPAT_DIR"])
wandb.define_metric("epoch")
wandb.define_metric("val/*", step_metric="epoch")
wandb.define_metric("val/acc", summary="max")
wandb.define_metric("train/loss", summary="min")
for epoch in range(4):
    for step in range(3):
        wandb.log({"train/loss": 1.0 / (1 + epoch * 3 + step)})
    wandb.log({"val/acc": [0.5, 0.7, 0.65, 0.6][epoch], "val/loss": 0.3 - 0.05 * epoch, "epoch": epoch})
run.summary["best_epoch"] = 1
run.finish()
