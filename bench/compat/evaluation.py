"""An sklearn-style evaluation: a confusion matrix, curves and a prediction table."""

import importlib
import os

import numpy as np

wandb = importlib.import_module(os.environ.get("COMPAT_TRACKER", "wandb"))

run = wandb.init(project="compat", job_type="eval", mode="offline", dir=os.environ["COMPAT_DIR"])
rng = np.random.default_rng(0)
y_true = rng.integers(0, 3, 60)
probs = rng.dirichlet(np.ones(3), 60)
probs[np.arange(60), y_true] += 0.5
probs /= probs.sum(axis=1, keepdims=True)
preds = probs.argmax(axis=1)
table = wandb.Table(columns=["id", "truth", "pred", "confidence"])
for i in range(60):
    table.add_data(i, int(y_true[i]), int(preds[i]), float(probs[i].max()))
wandb.log(
    {
        "predictions": table,
        "confusion": wandb.plot.confusion_matrix(
            y_true=y_true.tolist(), preds=preds.tolist(), class_names=["a", "b", "c"]
        ),
        "pr": wandb.plot.pr_curve(y_true, probs, labels=["a", "b", "c"]),
        "roc": wandb.plot.roc_curve(y_true, probs, labels=["a", "b", "c"]),
        "accuracy": float((preds == y_true).mean()),
    }
)
run.finish()
