"""Video and Image values: stored under the run, referenced from the history, found by latest_media."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError
from tracker_jupyter.media import Image, Video, latest_media


def logged(store_dir: Path, value, key: str = "m") -> tuple[dict, Path]:
    run = tj.init(project="p", dir=store_dir)
    run.log({"loss": 1.0})
    run.log({key: value, "loss": 0.5})
    run.finish()
    row = list(tj.Api(store_dir).run(run.id).scan_history())[1]
    run_dir = store_dir / "p" / run.id
    return row[key], run_dir / row[key]["path"]


def test_image_from_numpy_is_a_png_under_the_run(store_dir: Path):
    from PIL import Image as PILImage

    pixels = np.zeros((48, 64, 3), dtype=np.uint8)
    pixels[:, :32] = 255
    ref, path = logged(store_dir, Image(pixels, caption="half white"), key="samples/a b")
    assert ref["_type"] == "image" and ref["format"] == "png" and ref["caption"] == "half white"
    assert (ref["width"], ref["height"]) == (64, 48)
    assert ref["path"].startswith("files/media/images/samples_a_b_1_")  # key made safe, step 1
    with PILImage.open(path) as image:
        assert image.size == (64, 48) and image.getpixel((0, 0)) == (255, 255, 255)
    assert ref["size"] == path.stat().st_size


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.random.rand(8, 9),  # floats 0..1, grey
        lambda: np.ones((8, 9, 1), dtype=np.int32) * 300,  # ints clipped to 255
        lambda: __import__("PIL.Image", fromlist=["Image"]).new("RGBA", (9, 8)),
    ],
)
def test_image_sources(store_dir: Path, make):
    ref, path = logged(store_dir, Image(make()))
    assert (ref["width"], ref["height"]) == (9, 8) and path.is_file()


def test_image_from_matplotlib_figure_and_file(store_dir: Path, tmp_path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(2, 1), dpi=50)
    axes.plot([0, 1], [1, 0])
    ref, path = logged(store_dir, Image(figure))
    plt.close(figure)
    assert (ref["width"], ref["height"]) == (100, 50) and path.read_bytes()[:4] == b"\x89PNG"
    source = tmp_path / "pic.png"
    source.write_bytes(path.read_bytes())
    ref2, path2 = logged(store_dir, Image(source))
    assert ref2["sha256"] == ref["sha256"] and path2.read_bytes() == source.read_bytes()


def test_video_from_frames_gif_and_mp4(store_dir: Path):
    frames = (np.random.rand(6, 3, 16, 20) * 255).astype(np.uint8)  # (T, C, H, W)
    ref, path = logged(store_dir, Video(frames, fps=8, format="gif"))
    assert ref["format"] == "gif" and (ref["frames"], ref["width"], ref["height"]) == (6, 20, 16)
    assert path.read_bytes()[:3] == b"GIF"
    ref, path = logged(store_dir, Video(frames.transpose(0, 2, 3, 1), fps=8))  # (T, H, W, C), mp4 default
    assert ref["format"] == "mp4" and path.read_bytes()[4:8] == b"ftyp"


def test_video_file_and_latest_media(store_dir: Path, tmp_path: Path):
    source = tmp_path / "clip.gif"
    frames = (np.random.rand(3, 8, 8, 3) * 255).astype(np.uint8)
    from PIL import Image as PILImage

    images = [PILImage.fromarray(f) for f in frames]
    images[0].save(source, save_all=True, append_images=images[1:])
    run = tj.init(project="p", dir=store_dir)
    assert latest_media(run) is None
    run.log({"clip": Video(source, caption="c")})
    run.log({"pic": Image(frames[0])})
    assert latest_media(run)["key"] == "pic"
    video = latest_media(run, "video")
    assert video["key"] == "clip" and video["step"] == 0 and video["caption"] == "c"
    assert (store_dir / "p" / run.id / video["path"]).read_bytes() == source.read_bytes()
    run.finish()
    from_disk = latest_media(store_dir / "p" / run.id, "video")
    assert from_disk["path"] == video["path"] and from_disk["step"] == 0


def test_media_in_a_disabled_run_writes_nothing(tmp_path: Path):
    run = tj.init(mode="disabled")
    run.log({"pic": Image(np.zeros((2, 2)))})
    assert latest_media(run, "image")["path"] is None
    run.finish()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Image("missing.png"), "no such file"),
        (lambda: Image(np.zeros((2, 2, 2))), r"must be \(H, W\)"),
        (lambda: Image(object()), "takes a numpy array"),
        (lambda: Image(np.zeros((2, 2)), caption=3), "caption"),
        (lambda: Image(np.array([["a"]])), "must be numbers"),
        (lambda: Video(np.zeros((2, 4, 4))), "4-d array"),
        (lambda: Video(np.zeros((2, 4, 4, 5))), "1 or 3 channels"),
        (lambda: Video(np.zeros((2, 4, 4, 3)), fps=0), "fps"),
        (lambda: Video(np.zeros((2, 4, 4, 3)), format="avi"), "'gif' or 'mp4'"),
        (lambda: Video("x.txt"), "no such file"),
        (lambda: Video([1, 2]), "file path or a numpy array"),
    ],
)
def test_bad_media_values(make, message: str):
    with pytest.raises(UsageError, match=message):
        make()


def test_video_file_of_another_format(tmp_path: Path):
    (tmp_path / "clip.avi").write_bytes(b"0")
    with pytest.raises(UsageError, match="format must be one of"):
        Video(tmp_path / "clip.avi")
