"""MLflow against a local SQLite store with async logging, its fastest local configuration."""

from __future__ import annotations

import itertools
from pathlib import Path

from contenders import Session

NAME = "mlflow"
MODULE = "mlflow"
DIST = "mlflow"


def environ(workdir: Path) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "true",
    }


def start(workdir: Path, config: dict[str, object]) -> Session:
    import mlflow

    mlflow.config.enable_async_logging(True)
    mlflow.set_experiment("bench")
    mlflow.start_run()
    mlflow.log_params(config)
    steps = itertools.count()
    log_metrics = mlflow.log_metrics

    # Without an explicit step every record lands on step 0; the other trackers count steps themselves.
    def log(metrics: dict[str, float]) -> None:
        log_metrics(metrics, step=next(steps))

    return Session(log=log, finish=mlflow.end_run)
