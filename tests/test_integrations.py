"""sync_tensorboard, monitor_gym and magic with the real libraries: writers, environments, subprocesses."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError

from .conftest import run_script


def history(store_dir: Path, run: tj.Run) -> list[dict]:
    return list(tj.Api(store_dir).run(run.id).scan_history())


def tb_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard itself reads from the event files in ``logdir``: scalars, and scalar tensors (TF 2)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    found = {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }
    for tag in accumulator.Tags()["tensors"]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
            found[tag] = [(e.step, float(make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)]
    return found


# ------------------------------------------------------------------------------------------ tensorboard


@pytest.mark.slow
def test_tensorboardx_writer_created_before_and_after_init(store_dir: Path, tmp_path: Path):
    from tensorboardX import SummaryWriter

    early = SummaryWriter(str(tmp_path / "tb" / "early"))
    early.add_scalar("loss", 9.0, 0)  # before init: TensorBoard only
    run = tj.init(project="p", dir=store_dir, sync_tensorboard=True)
    late = SummaryWriter(str(tmp_path / "tb" / "late"))
    for step in range(3):
        early.add_scalar("loss", 1.0 / (step + 1), step + 1)
        early.add_scalar("acc", 0.5 + step / 10, step + 1)
        late.add_scalar("val/loss", 2.0 + step, step * 10)
    early.flush()
    run.finish()
    early.add_scalar("loss", 7.0, 99)  # after finish: TensorBoard only
    early.close()
    late.close()

    rows = history(store_dir, run)
    early_rows = [r for r in rows if "loss" in r]
    assert [(r["global_step"], r["loss"]) for r in early_rows] == [
        (1, 1.0),
        (2, 0.5),
        (3, pytest.approx(1 / 3)),
    ]
    assert [r["acc"] for r in early_rows] == [pytest.approx(0.5), pytest.approx(0.6), pytest.approx(0.7)]
    assert [(r["global_step"], r["val/loss"]) for r in rows if "val/loss" in r] == [
        (0, 2.0),
        (10, 3.0),
        (20, 4.0),
    ]
    assert [r["_step"] for r in rows] == list(range(len(rows)))  # the run's step never goes back
    assert all(9.0 not in r.values() and 7.0 not in r.values() for r in rows)

    files = Path(run.dir) / "tensorboard"
    assert {p.name for p in files.iterdir()} == {"early", "late"}
    copied = tb_scalars(files / "late")
    assert copied["val/loss"] == [(0, 2.0), (10, 3.0), (20, 4.0)]


def test_torch_writer_steps_going_backwards_are_kept(store_dir: Path, tmp_path: Path):
    from torch.utils.tensorboard import SummaryWriter

    run = tj.init(project="p", dir=store_dir, tensorboard=True)  # the older name of the switch
    writer = SummaryWriter(str(tmp_path / "runs" / "exp"))
    for step in (5, 6, 2, 3):  # a restarted loop: TensorBoard steps go back
        writer.add_scalar("loss", float(step), step)
    writer.add_scalar("new_style", 1.5, 7, new_style=True)
    writer.add_histogram("weights", np.array([1.0, 2.0, 3.0]), 7)  # not a scalar: kept in the event file only
    run.log({"mine": 1})
    writer.close()
    run.finish()

    rows = history(store_dir, run)
    assert [(r["global_step"], r["loss"]) for r in rows if "loss" in r] == [
        (5, 5.0),
        (6, 6.0),
        (2, 2.0),
        (3, 3.0),
    ]
    assert [r["new_style"] for r in rows if "new_style" in r] == [1.5]
    assert not any("weights" in r for r in rows)
    assert any(r.get("mine") == 1 for r in rows)
    assert tb_scalars(Path(run.dir) / "tensorboard" / "exp")["loss"] == [
        (5, 5.0),
        (6, 6.0),
        (2, 2.0),
        (3, 3.0),
    ]


def test_same_tag_from_train_and_val_writers_stays_two_series(store_dir: Path, tmp_path: Path):
    from torch.utils.tensorboard import SummaryWriter

    run = tj.init(project="p", dir=store_dir, sync_tensorboard=True)
    train = SummaryWriter(str(tmp_path / "runs" / "exp" / "train"))
    val = SummaryWriter(str(tmp_path / "runs" / "exp" / "val"))
    nested = SummaryWriter(str(tmp_path / "runs" / "exp"))  # the parent of the first log directory
    for epoch in range(3):
        train.add_scalar("loss", 1.0 + epoch, epoch)
        val.add_scalar("loss", 10.0 + epoch, epoch)
        val.add_scalar("acc", 0.5, epoch)  # a tag no other log directory writes keeps its name
    nested.add_scalar("loss", 99.0, 3)
    train.add_scalar("loss", 4.0, 3)  # the first writer keeps its plain key
    for writer in (train, val, nested):
        writer.close()
    run.finish()

    rows = history(store_dir, run)

    def series(key: str) -> list[tuple[int, float]]:
        return [(r["global_step"], r[key]) for r in rows if key in r]

    assert series("loss") == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]
    assert series("val/loss") == [(0, 10.0), (1, 11.0), (2, 12.0)]
    assert series("acc") == [(0, 0.5), (1, 0.5), (2, 0.5)]
    assert series("exp/loss") == [(3, 99.0)]
    copied = Path(run.dir) / "tensorboard"
    assert tb_scalars(copied / "exp" / "train")["loss"] == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]
    assert tb_scalars(copied / "exp" / "val")["loss"] == [(0, 10.0), (1, 11.0), (2, 12.0)]


def test_tensorboard_unpatched_at_finish(store_dir: Path, tmp_path: Path):
    from tensorboardX import event_file_writer

    original = event_file_writer.EventFileWriter.add_event
    run = tj.init(project="p", dir=store_dir, sync_tensorboard=True)
    assert event_file_writer.EventFileWriter.add_event is not original
    run.finish()
    assert event_file_writer.EventFileWriter.add_event is original


@pytest.mark.slow
def test_tensorboard_writer_imported_after_init_in_a_script(tmp_path: Path):
    code = textwrap.dedent(
        f"""
        import sys
        import tracker_jupyter as tj
        run = tj.init(project="p", dir={str(tmp_path / "store")!r}, sync_tensorboard=True)
        assert "tensorboardX" not in sys.modules, "init() must not import the writer libraries"
        from tensorboardX import SummaryWriter
        writer = SummaryWriter({str(tmp_path / "tb")!r})
        for step in range(4):
            writer.add_scalar("x", step * 2.0, step)
        writer.close()
        run.finish()
        print(run.id)
        """
    )
    result = run_script(code, tmp_path)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip().splitlines()[-1]
    rows = list(tj.Api(tmp_path / "store").run(run_id).scan_history())
    assert [(r["global_step"], r["x"]) for r in rows] == [(0, 0.0), (1, 2.0), (2, 4.0), (3, 6.0)]


TF_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


@pytest.mark.slow
def test_tf_summary_writers_are_mirrored(tmp_path: Path):
    code = textwrap.dedent(
        f"""
        import sys, warnings
        import tensorflow as tf
        import tracker_jupyter as tj
        tb = {str(tmp_path / "tb")!r}
        before = tf.summary.create_file_writer(tb + "/before")  # its log directory is not known to the run
        run = tj.init(project="p", dir={str(tmp_path / "store")!r}, sync_tensorboard=True)
        train = tf.summary.create_file_writer(tb + "/train")
        val = tf.summary.create_file_writer(tb + "/val")
        for step in range(3):
            with train.as_default(step=step):
                tf.summary.scalar("loss", 1.0 + step)
                tf.summary.scalar("lr", 0.1)  # float32 in the event file: 0.1 in the run
                tf.summary.histogram("weights", tf.constant([1.0, 2.0]))  # not a scalar
                tf.summary.text("note", "not a scalar")
            with val.as_default():
                tf.summary.scalar("loss", 10.0 + step, step=step)
            with before.as_default():
                tf.summary.scalar("loss", 100.0 + step, step=step)

        @tf.function
        def traced(x):
            with train.as_default():
                tf.summary.scalar("in_graph", x, step=7)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            traced(tf.constant(1.0))
            traced(tf.constant(2.0))
        print("warnings:", [str(w.message) for w in caught if "tracker" in str(w.message)])
        with train.as_default(step=3):
            tf.summary.scalar("loss", 4.0)  # not flushed by the user: finish() flushes it
        run.finish()
        with train.as_default(step=9):
            tf.summary.scalar("loss", 99.0)  # after finish: TensorBoard only
        print(run.id)
        """
    )
    result = run_script(code, tmp_path, env=TF_QUIET, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    run_id = lines[-1]
    [warned] = [line for line in lines if line.startswith("warnings:")]
    assert warned.count("inside a tf.function") == 1 and run_id in warned

    rows = list(tj.Api(tmp_path / "store").run(run_id).scan_history())

    def series(key: str) -> list[tuple[int, float]]:
        return [(r["global_step"], r[key]) for r in rows if key in r]

    assert series("loss") == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]
    assert series("lr") == [(0, 0.1), (1, 0.1), (2, 0.1)]
    assert series("val/loss") == [(0, 10.0), (1, 11.0), (2, 12.0)]
    assert series("tf.summary/loss") == [(0, 100.0), (1, 101.0), (2, 102.0)]
    assert not any(key in r for r in rows for key in ("weights", "note", "in_graph"))

    copied = tmp_path / "store" / "p" / run_id / "files" / "tensorboard"
    assert sorted(p.name for p in copied.iterdir()) == ["train", "val"]
    train = tb_scalars(copied / "train")
    assert [(step, pytest.approx(value)) for step, value in train["loss"]] == series("loss")
    assert [step for step, _ in train["in_graph"]] == [7, 7]  # kept in the event file


@pytest.mark.slow
def test_keras_tensorboard_callback_is_mirrored(tmp_path: Path):
    code = textwrap.dedent(
        f"""
        import os
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import keras, numpy as np
        import tracker_jupyter as tj
        run = tj.init(project="p", dir={str(tmp_path / "store")!r}, sync_tensorboard=True)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        x = np.random.rand(32, 3).astype("float32")
        callback = keras.callbacks.TensorBoard({str(tmp_path / "logs")!r})
        model.fit(x, x.sum(axis=1), epochs=3, validation_split=0.25, verbose=0, callbacks=[callback])
        run.finish()
        print(run.id)
        """
    )
    result = run_script(code, tmp_path, env=TF_QUIET, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = list(tj.Api(tmp_path / "store").run(result.stdout.split()[-1]).scan_history())
    assert [r["global_step"] for r in rows if "epoch_loss" in r] == [0, 1, 2]
    assert [r["global_step"] for r in rows if "validation/epoch_loss" in r] == [0, 1, 2]


def test_sync_tensorboard_without_writer_library_names_the_extra(store_dir: Path, monkeypatch):
    for name in ("tensorboardX", "tensorboard", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)  # what Python does for a package that cannot be imported
    with pytest.raises(UsageError, match=r"tracker-jupyter\[tensorboard\]"):
        tj.init(project="p", dir=store_dir, sync_tensorboard=True)


@pytest.mark.parametrize("argument", ["sync_tensorboard", "tensorboard", "monitor_gym"])
@pytest.mark.parametrize("value", ["yes", 1, [True]])
def test_integration_switches_must_be_bool(store_dir: Path, argument: str, value):
    with pytest.raises(UsageError, match=argument):
        tj.init(project="p", dir=store_dir, **{argument: value})


# ------------------------------------------------------------------------------------------------ magic

ARGPARSE_SCRIPT = """
import argparse, json, sys
import tracker_jupyter as tj

early = argparse.ArgumentParser()
early.add_argument("--seed", type=int, default=0)
early_args, rest = early.parse_known_args()      # parsed before init: found in __main__
run = tj.init(project="p", dir=sys.argv[-1], config={"lr": 0.5}, magic=MAGIC)
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--out", type=argparse.FileType("w"), default=None)
sub = parser.add_subparsers(dest="command")
train = sub.add_parser("train")
train.add_argument("--batch", type=int, default=32)
args = parser.parse_args(rest[:-1])              # parsed after init
run.finish()
print(json.dumps({"id": run.id, "config": tj.Api(sys.argv[-1]).run(run.id).config}))
"""


def run_argparse_script(tmp_path: Path, magic: str, *argv: str) -> dict:
    script = tmp_path / "train.py"
    script.write_text(ARGPARSE_SCRIPT.replace("MAGIC", magic))
    import subprocess

    result = subprocess.run(
        [sys.executable, str(script), *argv, str(tmp_path / "store")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])["config"]


def test_magic_captures_argparse_flags_of_a_script(tmp_path: Path):
    config = run_argparse_script(tmp_path, "True", "--seed", "7", "--epochs", "5", "train", "--batch", "8")
    assert config["seed"] == 7
    assert config["epochs"] == 5
    assert config["batch"] == 8
    assert config["command"] == "train"
    assert config["lr"] == 0.5  # explicit config= wins over the flag's default
    assert config["out"] is None


def test_magic_dict_json_and_yaml_select_parts(tmp_path: Path):
    config = run_argparse_script(tmp_path, "{'args': False}", "--epochs", "5")
    assert "epochs" not in config and "seed" not in config
    config = run_argparse_script(tmp_path, "'{\"keras\": false}'", "--epochs", "5")
    assert config["epochs"] == 5
    (tmp_path / "magic.yaml").write_text("args: false\nkeras: true\n")
    config = run_argparse_script(tmp_path, repr(str(tmp_path / "magic.yaml")), "--epochs", "5")
    assert "epochs" not in config


def test_magic_options_configure_the_parts(tmp_path: Path):
    config = run_argparse_script(
        tmp_path, "{'args': {'exclude': ['seed', 'batch']}}", "--seed", "7", "--epochs", "5", "train"
    )
    assert config["epochs"] == 5 and config["command"] == "train"
    assert "seed" not in config and "batch" not in config  # flags not to record (a token, a password...)
    (tmp_path / "magic.yaml").write_text("args:\n  exclude: [epochs]\nkeras:\n  log_batches: 2\n")
    config = run_argparse_script(tmp_path, repr(str(tmp_path / "magic.yaml")), "--seed", "7", "--epochs", "5")
    assert config["seed"] == 7 and "epochs" not in config


def test_magic_is_undone_at_finish(store_dir: Path):
    import argparse

    original = argparse.ArgumentParser.parse_known_args
    run = tj.init(project="p", dir=store_dir, magic=True)
    assert argparse.ArgumentParser.parse_known_args is not original
    run.finish()
    assert argparse.ArgumentParser.parse_known_args is original
    assert not any(type(f).__name__ == "WhenImported" for f in sys.meta_path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (3, "magic must be"),
        (["args"], "magic must be"),
        ({"argz": True}, "unknown part"),
        ({"args": "yes"}, r"magic\['args'\] must be true or false, or a mapping of its options"),
        (
            {"keras": {"every": 2}},
            r"magic\['keras'\]: unknown option\(s\) every; its options are log_batches",
        ),
        ({"keras": {"log_batches": -1}}, r"log_batches'\] must be a whole number 0 or more"),
        ({"keras": {"log_batches": True}}, r"log_batches'\] must be a whole number"),
        ({"args": {"exclude": "seed"}}, r"exclude'\] must be a list of flag names"),
        ("{not json", "not valid JSON"),
        ("no/such/magic.yaml", "neither a JSON object nor an existing YAML file"),
        ("[1, 2]", "neither a JSON object"),
    ],
)
def test_magic_bad_values(store_dir: Path, value, message: str):
    with pytest.raises(UsageError, match=message):
        tj.init(project="p", dir=store_dir, magic=value)


def test_magic_yaml_that_is_not_a_mapping(store_dir: Path, tmp_path: Path):
    (tmp_path / "list.yaml").write_text("- args\n")
    with pytest.raises(UsageError, match="magic must be"):
        tj.init(project="p", dir=store_dir, magic=str(tmp_path / "list.yaml"))
    (tmp_path / "broken.yaml").write_text("args: [\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        tj.init(project="p", dir=store_dir, magic=str(tmp_path / "broken.yaml"))


@pytest.mark.slow
def test_magic_logs_keras_fit_epochs(tmp_path: Path):
    code = textwrap.dedent(
        f"""
        import os, sys, json
        os.environ["KERAS_BACKEND"] = "torch"
        import tracker_jupyter as tj
        run = tj.init(project="p", dir={str(tmp_path / "store")!r}, magic=True)
        assert "keras" not in sys.modules
        import keras, numpy as np
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
        x = np.random.rand(32, 3).astype("float32")
        model.fit(x, x.sum(axis=1), epochs=3, batch_size=8, validation_split=0.25, verbose=0)
        run.finish()
        assert "fit" not in vars(keras.Model)
        print(run.id)
        """
    )
    result = run_script(code, tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = list(tj.Api(tmp_path / "store").run(result.stdout.split()[-1]).scan_history())
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert all({"loss", "mae", "val_loss", "val_mae"} <= set(r) for r in rows)


@pytest.mark.slow
def test_magic_keras_log_batches(tmp_path: Path):
    code = textwrap.dedent(
        f"""
        import os
        os.environ["KERAS_BACKEND"] = "torch"
        import keras, numpy as np
        import tracker_jupyter as tj
        run = tj.init(project="p", dir={str(tmp_path / "store")!r}, magic={{"keras": {{"log_batches": 2}}}})
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        x = np.random.rand(32, 3).astype("float32")
        model.fit(x, x.sum(axis=1), epochs=2, batch_size=8, verbose=0)  # 4 batches an epoch
        run.finish()
        print(run.id)
        """
    )
    result = run_script(code, tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = list(tj.Api(tmp_path / "store").run(result.stdout.split()[-1]).scan_history())
    assert [(r["epoch"], r.get("batch")) for r in rows] == [
        (0, 1),
        (0, 3),
        (0, None),
        (1, 1),
        (1, 3),
        (1, None),
    ]
    assert all("loss" in r for r in rows)


# -------------------------------------------------------------------------------------------------- gym


@pytest.mark.slow
def test_monitor_gym_logs_recorded_videos_of_a_real_environment(store_dir: Path, tmp_path: Path):
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    from tracker_jupyter.media import latest_media

    run = tj.init(project="p", dir=store_dir, monitor_gym=True)
    env = RecordVideo(
        gym.make("CartPole-v1", render_mode="rgb_array"), str(tmp_path / "videos"),
        episode_trigger=lambda episode: True, disable_logger=True,
    )  # fmt: skip
    for episode in range(2):
        env.reset(seed=episode)
        done, steps = False, 0
        while not done and steps < 20:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done, steps = terminated or truncated, steps + 1
        run.log({"episode": episode, "length": steps})
    env.close()
    newest = latest_media(run, "video")
    run.finish()

    rows = history(store_dir, run)
    videos = [r["videos"] for r in rows if "videos" in r]
    assert len(videos) >= 2
    for video in videos:
        assert video["format"] == "mp4" and video["path"].startswith("files/media/videos/videos_")
        stored = Path(store_dir) / "p" / run.id / video["path"]
        assert stored.stat().st_size == video["size"] > 1000
        assert stored.read_bytes()[4:8] == b"ftyp"  # an mp4 container
    assert newest is not None and newest["path"] == videos[-1]["path"]
    assert latest_media(Path(store_dir) / "p" / run.id, "video")["path"] == videos[-1]["path"]


def test_monitor_gym_unpatched_at_finish(store_dir: Path):
    from gymnasium.wrappers import RecordVideo

    original = RecordVideo.stop_recording
    run = tj.init(project="p", dir=store_dir, monitor_gym=True)
    assert RecordVideo.stop_recording is not original
    run.finish()
    assert RecordVideo.stop_recording is original


def test_monitor_gym_without_gymnasium_names_the_extra(store_dir: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(UsageError, match=r"tracker-jupyter\[gym\]"):
        tj.init(project="p", dir=store_dir, monitor_gym=True)


def test_importing_the_package_imports_no_integration(tmp_path: Path):
    code = (
        "import sys, tracker_jupyter\n"
        "heavy = ('tracker_jupyter.integrations', 'tracker_jupyter.media', 'tensorboardX', 'tensorboard',\n"
        "         'gymnasium', 'keras', 'torch', 'numpy', 'PIL')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    result = run_script(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
