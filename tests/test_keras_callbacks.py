"""The Keras callbacks, with real Keras 3 (TensorFlow backend): what each stores in the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError

pytestmark = pytest.mark.slow  # imports TensorFlow

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model


def _data():
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def test_metrics_logger_epoch_and_batch_and_the_reference_s_names(store_dir: Path) -> None:
    from tracker_jupyter.integration.keras import MetricsLogger, WandbMetricsLogger

    assert WandbMetricsLogger is MetricsLogger
    x, y = _data()
    run = tj.init(project="k", dir=store_dir)
    _model().fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[MetricsLogger()])
    run.finish()
    rows = list(tj.Api(store_dir).run(run.id).scan_history())
    assert [row["epoch/epoch"] for row in rows] == [0, 1, 2]
    assert all({"epoch/loss", "epoch/val_loss", "epoch/learning_rate"} <= set(row) for row in rows)
    assert rows[0]["epoch/learning_rate"] == pytest.approx(0.01)
    assert {"name": "epoch/*", "step_metric": "epoch/epoch", "step_sync": True} in run.meta["metrics"]

    batch_run = tj.init(project="k", dir=store_dir)
    _model().fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[WandbMetricsLogger(log_freq=2)])
    batch_run.finish()
    rows = list(tj.Api(store_dir).run(batch_run.id).scan_history())
    assert [row["batch/batch_step"] for row in rows if "batch/loss" in row] == [0, 2, 4, 6]  # every 2nd of 8
    assert "epoch/loss" in rows[-1]  # and the epoch's row, as the reference logs it
    with pytest.raises(UsageError, match="log_freq"):
        MetricsLogger(log_freq=0)


def test_model_checkpoint_logs_each_checkpoint_as_a_model_version(store_dir: Path, tmp_path: Path) -> None:
    from tracker_jupyter.integration.keras import WandbModelCheckpoint

    x, y = _data()
    run = tj.init(project="k", dir=store_dir)
    checkpoint = WandbModelCheckpoint(str(tmp_path / "ckpt" / "model-{epoch:02d}.keras"), monitor="loss")
    (tmp_path / "ckpt").mkdir()
    _model().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[checkpoint])
    run.finish()
    api = tj.Api(dir=store_dir)
    versions = api.artifacts("model", f"k/run_{run.id}_model")
    assert [(v.version, v.aliases) for v in versions] == [("v0", ["epoch_1"]), ("v1", ["epoch_2"])]
    assert [sorted(v.manifest.entries) for v in versions] == [["model-01.keras"], ["model-02.keras"]]
    later = tj.init(project="k", dir=store_dir)
    path = later.use_model(f"run_{run.id}_model:epoch_2")
    assert path.endswith("model-02.keras")
    assert keras.models.load_model(path).count_params() == _model().count_params()
    later.finish()
    assert [a.name for a in api.run(run.id).logged_artifacts()] == [
        f"run_{run.id}_model:v0",
        f"run_{run.id}_model:v1",
    ]


def test_the_older_callback_keeps_the_best_epoch_and_model(store_dir: Path) -> None:
    from tracker_jupyter.integration.keras import WandbCallback

    x, y = _data()
    run = tj.init(project="k", dir=store_dir)
    _model().fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[WandbCallback()])
    run.finish()
    record = tj.Api(store_dir).run(run.id)
    rows = list(record.scan_history())
    losses = [row["val_loss"] for row in rows]
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert record.summary["best_val_loss"] == min(losses) and record.summary["best_epoch"] == losses.index(
        min(losses)
    )
    assert (Path(run.dir) / "model-best.keras").is_file()


def test_a_callback_needs_a_run() -> None:
    from tracker_jupyter.integration.keras import MetricsLogger

    if tj.run is not None:
        tj.run.finish()
    with pytest.raises(UsageError, match=r"call tracker_jupyter\.init"):
        MetricsLogger()
