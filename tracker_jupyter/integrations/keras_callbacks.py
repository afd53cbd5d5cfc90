"""Keras callbacks in the reference's shapes: ``MetricsLogger``, ``ModelCheckpoint`` and the older
``Callback`` (``WandbMetricsLogger``, ``WandbModelCheckpoint``, ``WandbCallback`` there).

The classes subclass Keras' own and are built when first asked for (``build()``), so nothing imports Keras
before the user's code does. Each logs to the run that is current when it is created.

- ``MetricsLogger(log_freq="epoch", initial_global_step=0)``: each epoch's logs as ``epoch/<name>``
  against ``epoch/epoch`` (with ``epoch/learning_rate``), or with ``log_freq="batch"`` / an int every that
  many batches as ``batch/<name>`` against ``batch/batch_step``, as the reference defines them.
- ``ModelCheckpoint(filepath, monitor="val_loss", ...)``: Keras' checkpointing, and each checkpoint it
  writes logged as a version of the model artifact ``run_<id>_model`` with the alias ``epoch_<N>`` (or
  ``epoch_<N>_batch_<M>`` when saving every few batches), as the reference does: ``use_model()`` and, on an
  MLflow server, the model registry see every checkpoint.
- ``Callback(monitor="val_loss", mode="auto", save_model=True)``: each epoch's logs with ``epoch``; the
  best ``monitor`` value and its epoch in the summary (``best_val_loss``, ``best_epoch``), and the best
  model saved as ``model-best.keras`` in ``run.dir``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from tracker_jupyter.artifacts import Artifact
from tracker_jupyter.core.holder import holder
from tracker_jupyter.exceptions import UsageError

_built: dict[str, type] = {}


def _current_run(what: str) -> Any:
    run = holder.run
    if run is None:
        raise UsageError(f"{what}() logs to the current run: call tracker_jupyter.init() before creating it.")
    return run


def _learning_rate(model: Any, step: int) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    rate = getattr(optimizer, "learning_rate", None)
    if rate is None:
        return None
    try:
        value = rate(step) if callable(rate) and not hasattr(rate, "numpy") else rate
        value = value.numpy() if hasattr(value, "numpy") else value
        return float(value)
    except Exception:  # a schedule or optimizer this cannot read: no learning rate, never a failed fit
        return None


def build() -> dict[str, type]:
    """The callback classes, subclassing the installed Keras' (imported here, on first use)."""
    if not _built:
        import keras

        _built.update(
            MetricsLogger=_metrics_logger(keras),
            ModelCheckpoint=_model_checkpoint(keras),
            Callback=_callback(keras),
        )
    return _built


def _metrics_logger(keras: Any) -> type:
    class MetricsLogger(keras.callbacks.Callback):  # type: ignore[misc]
        """Log the epoch's metrics (``epoch/...``), or every ``log_freq`` batches' (``batch/...``)."""

        def __init__(
            self, log_freq: str | int = "epoch", initial_global_step: int = 0, *args: Any, **kwargs: Any
        ):
            super().__init__(*args, **kwargs)
            if log_freq == "batch":
                log_freq = 1
            if log_freq != "epoch" and (
                isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1
            ):
                raise UsageError(
                    f"MetricsLogger(log_freq=...) must be 'epoch', 'batch' or a positive int, got {log_freq!r}."
                )
            self.run = _current_run("MetricsLogger")
            self.batch_wise = isinstance(log_freq, int)
            self.log_freq: int = log_freq if isinstance(log_freq, int) else 0
            self.global_batch = 0
            self.global_step = initial_global_step
            axis = "batch/batch_step" if self.batch_wise else "epoch/epoch"
            self.run.define_metric(axis)
            self.run.define_metric(axis.split("/")[0] + "/*", step_metric=axis)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            row = {f"epoch/{key}": value for key, value in (logs or {}).items()}
            row["epoch/epoch"] = epoch
            rate = _learning_rate(self.model, self.global_step)
            if rate is not None:
                row["epoch/learning_rate"] = rate
            if not self.run.finished:
                self.run.log(row)

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.global_step += 1
            if self.batch_wise and batch % self.log_freq == 0 and not self.run.finished:
                row = {f"batch/{key}": value for key, value in (logs or {}).items()}
                row["batch/batch_step"] = self.global_batch
                rate = _learning_rate(self.model, self.global_step)
                if rate is not None:
                    row["batch/learning_rate"] = rate
                self.run.log(row)
                self.global_batch += self.log_freq

    return MetricsLogger


def _model_checkpoint(keras: Any) -> type:
    class ModelCheckpoint(keras.callbacks.ModelCheckpoint):  # type: ignore[misc]
        """Keras' ``ModelCheckpoint``; every checkpoint it writes is also logged as a model artifact."""

        def __init__(
            self, filepath: str | os.PathLike[str], monitor: str = "val_loss", *args: Any, **kwargs: Any
        ):
            super().__init__(os.fspath(filepath), monitor, *args, **kwargs)
            self.run = _current_run("ModelCheckpoint")
            self._seen: dict[str, float] = {}
            self._epoch = 0

        def _log_new_checkpoints(self, alias: str) -> None:
            folder = os.path.dirname(os.path.abspath(self.filepath)) or "."
            for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                path = os.path.join(folder, name)
                if not os.path.isfile(path) or not name.endswith((".keras", ".h5")):
                    continue
                changed = os.path.getmtime(path)
                if self._seen.get(path) != changed and not self.run.finished:
                    self._seen[path] = changed
                    artifact = Artifact(f"run_{self.run.id}_model", type="model")
                    artifact.add_file(path)
                    self.run.log_artifact(artifact, aliases=[alias])

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            super().on_epoch_begin(epoch, logs)
            self._epoch = epoch

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            super().on_epoch_end(epoch, logs)
            self._log_new_checkpoints(f"epoch_{epoch + 1}")

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            super().on_train_batch_end(batch, logs)
            if self.save_freq != "epoch":
                self._log_new_checkpoints(f"epoch_{self._epoch + 1}_batch_{batch + 1}")

    return ModelCheckpoint


def _callback(keras: Any) -> type:
    class Callback(keras.callbacks.Callback):  # type: ignore[misc]
        """The reference's older all-in-one callback: epoch logs, the best ``monitor`` value, the best model."""

        def __init__(
            self, monitor: str = "val_loss", mode: str = "auto", save_model: bool = True, **kwargs: Any
        ):
            super().__init__()
            self.run = _current_run("Callback")
            if mode not in ("auto", "min", "max"):
                raise UsageError(f"Callback(mode=...) must be 'auto', 'min' or 'max', got {mode!r}.")
            self.monitor = monitor
            self.maximize = mode == "max" or (
                mode == "auto" and ("acc" in monitor or monitor.startswith("fmeasure"))
            )
            self.best = -math.inf if self.maximize else math.inf
            self.save_model = save_model

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = dict(logs or {})
            if self.run.finished:
                return
            self.run.log({**logs, "epoch": epoch})
            value = logs.get(self.monitor)
            if isinstance(value, (int, float)) and math.isfinite(value):
                better = value > self.best if self.maximize else value < self.best
                if better:
                    self.best = value
                    self.run.summary.update({f"best_{self.monitor}": value, "best_epoch": epoch})
                    if self.save_model:
                        self.model.save(os.path.join(self.run.dir, "model-best.keras"))

    return Callback
