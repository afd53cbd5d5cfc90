"""A torch training loop in the style of public training scripts: watch, images, a histogram."""

import importlib
import os

import numpy as np
import torch

wandb = importlib.import_module(os.environ.get("COMPAT_TRACKER", "wandb"))

run = wandb.init(
    project="compat", config={"lr": 0.05, "epochs": 3}, mode="offline", dir=os.environ["COMPAT_DIR"]
)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
wandb.watch(model, log="all", log_freq=5)
optimizer = torch.optim.SGD(model.parameters(), lr=wandb.config.lr)
data, target = torch.randn(32, 8), torch.randint(0, 2, (32,))
for epoch in range(wandb.config.epochs):
    for _batch in range(5):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
        wandb.log({"train/loss": loss.item(), "epoch": epoch})
    samples = [
        wandb.Image(np.full((8, 8, 3), 40 * i, dtype=np.uint8), caption=f"sample {i}") for i in range(3)
    ]
    wandb.log({"samples": samples, "weights": wandb.Histogram(model[0].weight.detach().numpy())})
run.finish()
