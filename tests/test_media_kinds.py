"""Audio, Html, Plotly and Object3D: stored as files of their own, referenced from the history row."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError


def _logged(store_dir: Path, **values: object) -> tuple[tj.Run, dict]:
    run = tj.init(project="p", dir=store_dir)
    run.log(dict(values))
    run.finish()
    (row,) = list(tj.Api(store_dir).run(f"p/{run.id}").scan_history())
    return run, row


def test_audio_samples_become_a_wav_file(store_dir: Path) -> None:
    np = pytest.importorskip("numpy")
    tone = np.sin(np.linspace(0, 2 * np.pi * 440, 8000))
    run, row = _logged(store_dir, tone=tj.Audio(tone, sample_rate=8000, caption="a4"))
    ref = row["tone"]
    assert (
        ref["_type"] == "audio"
        and ref["format"] == "wav"
        and ref["caption"] == "a4"
        and ref["duration"] == 1.0
    )
    with wave.open(str(Path(run.run_dir) / ref["path"])) as sound:
        assert (sound.getframerate(), sound.getnchannels(), sound.getnframes()) == (8000, 1, 8000)
    with pytest.raises(UsageError, match="sample_rate"):
        tj.Audio(tone)
    with pytest.raises(UsageError, match="no such file"):
        tj.Audio("missing.wav")


def test_html_is_stored_as_given(store_dir: Path, tmp_path: Path) -> None:
    page = "<html><head></head><body><script>alert(1)</script></body></html>"
    run, row = _logged(store_dir, page=tj.Html(page, inject=False))
    assert (Path(run.run_dir) / row["page"]["path"]).read_text() == page
    file = tmp_path / "report.html"
    file.write_text("<p>hi</p>")
    assert tj.Html(str(file)).html == "<p>hi</p>"
    with pytest.raises(UsageError, match="takes a string of HTML"):
        tj.Html(3)


def test_plotly_figures_are_stored_as_their_json(store_dir: Path) -> None:
    go = pytest.importorskip("plotly.graph_objects")
    figure = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    run, row = _logged(store_dir, chart=tj.Plotly(figure))
    stored = json.loads((Path(run.run_dir) / row["chart"]["path"]).read_text())
    assert stored["data"][0]["y"] == [3, 4]
    assert row["chart"]["path"].endswith(".plotly.json")
    with pytest.raises(UsageError, match="plotly figure"):
        tj.Plotly({"data": []})


def test_point_clouds_and_model_files(store_dir: Path, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    points = np.random.default_rng(1).uniform(size=(50, 6))
    model = tmp_path / "cube.obj"
    model.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    run, row = _logged(store_dir, cloud=tj.Object3D(points), cube=tj.Object3D(str(model)))
    assert row["cloud"]["points"] == 50
    assert json.loads((Path(run.run_dir) / row["cloud"]["path"]).read_text()) == points.tolist()
    assert (Path(run.run_dir) / row["cube"]["path"]).read_text().startswith("v 0 0 0")
    with pytest.raises(UsageError, match=r"\(N, 3\), \(N, 4\) or \(N, 6\)"):
        tj.Object3D(np.zeros((4, 2)))
    with pytest.raises(UsageError, match="format must be one of"):
        tj.Object3D(str(tmp_path / "x.ply"))


def test_image_takes_the_reference_s_arguments(store_dir: Path) -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    from PIL import Image as PILImage

    chw = torch.zeros((3, 4, 6))
    chw[0] = 1.0  # red, floats in 0..1
    float_255 = np.full((4, 4), 128.0)  # floats in 0..255, as the reference documents
    mask = np.zeros((4, 6), dtype=np.int64)
    mask[:, 3:] = 1
    boxes = {"predictions": {"box_data": [{"position": {"minX": 0.1, "maxX": 0.5, "minY": 0.2, "maxY": 0.6},
                                           "class_id": 1, "scores": {"p": 0.9}}], "class_labels": {1: "cat"}}}  # fmt: skip
    run, row = _logged(
        store_dir,
        tensor=tj.Image(chw, caption="red", masks={"truth": {"mask_data": mask, "class_labels": {0: "bg", 1: "cat"}}},
                        boxes=boxes, classes=["bg", "cat"]),
        gray=tj.Image(float_255, file_type="jpg"),
        rgba=tj.Image(np.zeros((2, 2, 4), dtype=np.uint8), mode="RGB"),
    )  # fmt: skip
    tensor = row["tensor"]
    assert (tensor["width"], tensor["height"]) == (6, 4) and tensor["classes"][1] == {"id": 1, "name": "cat"}
    with PILImage.open(Path(run.run_dir) / tensor["path"]) as image:
        assert image.getpixel((0, 0))[:3] == (255, 0, 0)
    with PILImage.open(Path(run.run_dir) / tensor["masks"]["truth"]["path"]) as stored_mask:
        assert stored_mask.getpixel((5, 0)) == 1 and stored_mask.getpixel((0, 0)) == 0
    assert tensor["boxes"]["predictions"]["class_labels"] == {"1": "cat"}
    assert tensor["boxes"]["predictions"]["box_data"][0]["position"]["maxX"] == 0.5
    assert row["gray"]["format"] == "jpg"
    with PILImage.open(Path(run.run_dir) / row["gray"]["path"]) as image:
        assert abs(image.getpixel((1, 1)) - 128) <= 2  # 128.0 stays 128, not clipped to white
    with PILImage.open(Path(run.run_dir) / row["rgba"]["path"]) as image:
        assert image.mode == "RGB"
    with pytest.raises(UsageError, match="file_type"):
        tj.Image(float_255, file_type="tiff")
    with pytest.raises(UsageError, match="mask_data must be a 2-d array"):
        tj.Image(float_255, masks={"m": {"mask_data": np.zeros((2, 2, 2), dtype=int)}})
    with pytest.raises(UsageError, match="needs a 'position'"):
        tj.Image(float_255, boxes={"p": {"box_data": [{"class_id": 1}]}})


def test_an_image_past_the_size_limit_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    np = pytest.importorskip("numpy")
    from tracker_jupyter.media import image

    monkeypatch.setattr(image, "MAX_BYTES", 1000)
    with pytest.raises(
        UsageError, match=r"20×20 pixels is 0 MiB; an image may have at most 0 MiB. Resize it"
    ):
        tj.Image(np.zeros((20, 20, 3), dtype=np.uint8))
    tj.Image(np.zeros((10, 10, 3), dtype=np.uint8))  # 300 bytes: fine
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2000)
    with pytest.raises(UsageError, match=r"the file .*big\.png"):
        tj.Image(str(big))
