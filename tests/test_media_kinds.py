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
