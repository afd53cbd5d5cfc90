"""Table and Histogram: the reference's call shapes, what is stored in the run, and reading it back."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError


def _rows(store_dir: Path, run: tj.Run) -> list[dict]:
    return list(tj.Api(store_dir).run(f"{run.project}/{run.id}").scan_history())


# ------------------------------------------------------------------------------------------ Histogram


def test_histogram_from_values_is_stored_as_counts_and_edges(store_dir: Path) -> None:
    np = pytest.importorskip("numpy")
    values = np.random.default_rng(0).normal(size=10_000)
    run = tj.init(project="p", dir=store_dir)
    run.log({"weights": tj.Histogram(values, num_bins=20)})
    run.log({"weights": tj.Histogram(np_histogram=np.histogram(values, bins=5))})
    run.finish()
    first, second = (row["weights"] for row in _rows(store_dir, run))
    counts, edges = np.histogram(values, bins=20)
    assert first == {"_type": "histogram", "values": counts.tolist(), "bins": edges.tolist()}
    assert len(second["values"]) == 5 and len(second["bins"]) == 6 and sum(second["values"]) == 10_000
    assert run.summary["weights"]["_type"] == "histogram"


def test_histogram_counts_what_it_leaves_out_and_refuses_bad_input() -> None:
    hist = tj.Histogram([1.0, 2.0, float("nan"), float("inf"), 3.0], num_bins=2)
    assert sum(hist.histogram) == 3 and hist.to_json()["dropped"] == 2
    with pytest.raises(UsageError, match="num_bins"):
        tj.Histogram([1, 2], num_bins=513)
    with pytest.raises(UsageError, match="one edge more than counts"):
        tj.Histogram(np_histogram=([1, 2], [0.0, 1.0]))
    with pytest.raises(UsageError, match="needs the values"):
        tj.Histogram()
    with pytest.raises(UsageError, match="must be numbers"):
        tj.Histogram(["a", "b"])
    assert isinstance(UsageError("x"), ValueError)  # code that catches the reference's ValueError still does


# ---------------------------------------------------------------------------------------------- Table


def test_table_call_shapes_match_the_reference() -> None:
    table = tj.Table(columns=["id", "label", "score"])
    table.add_data(1, "cat", 0.9)
    table.add_data(2, "dog", None)
    assert table.get_column("label") == ["cat", "dog"]
    assert list(table.iterrows()) == [(0, [1, "cat", 0.9]), (1, [2, "dog", None])]
    assert table.get_index() == [0, 1] and len(table) == 2
    table.add_column("ok", [True, False])
    assert table.columns == ["id", "label", "score", "ok"] and table.data[1] == [2, "dog", None, False]
    with pytest.raises(UsageError, match="expects 4 columns"):
        table.add_data(1, 2)
    with pytest.raises(UsageError, match="holds number values"):
        table.add_data("three", "x", 0.1, True)
    with pytest.raises(UsageError, match="expected 2 values"):
        table.add_column("short", [1])
    with pytest.raises(UsageError, match="expects 3 columns: \\['Input', 'Output', 'Expected'\\]"):
        tj.Table(data=[[1, 2]])  # the reference's default columns
    assert tj.Table(data=[[1, 2, 3]]).columns == ["Input", "Output", "Expected"]


def test_table_from_numpy_and_pandas(store_dir: Path) -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    table = tj.Table(dataframe=frame)
    assert table.columns == ["x", "y"] and table.data == [[1, "a"], [2, "b"], [3, "c"]]
    assert tj.Table(data=frame).data == table.data
    assert tj.Table(columns=["a", "b"], data=np.arange(4).reshape(2, 2)).data == [[0, 1], [2, 3]]
    assert table.get_dataframe().equals(frame)
    assert table.get_column("x", convert_to="numpy").tolist() == [1, 2, 3]


def test_a_logged_table_is_one_file_in_mlflow_s_shape_and_reads_back(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir)
    when = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)
    table = tj.Table(columns=["text", "score", "when"], data=[["<b>hi</b>", 0.5, when], ["x", None, when]])
    run.log({"preds": table, "loss": 1.0})
    run.finish()
    (row,) = _rows(store_dir, run)
    ref = row["preds"]
    assert ref["_type"] == "table-file" and ref["ncols"] == 3 and ref["nrows"] == 2
    assert ref["path"].startswith("files/media/tables/preds_0_") and ref["path"].endswith(".table.json")
    stored = json.loads((Path(run.run_dir) / ref["path"]).read_text())
    assert stored == {
        "columns": ["text", "score", "when"],
        "data": [["<b>hi</b>", 0.5, 1767312000000], ["x", None, 1767312000000]],
    }
    assert ref["size"] == (Path(run.run_dir) / ref["path"]).stat().st_size
    again = tj.Table.from_file(Path(run.run_dir) / ref["path"])
    assert again.columns == table.columns and again.get_column("text") == ["<b>hi</b>", "x"]


def test_images_in_cells_are_stored_as_files_and_referenced(store_dir: Path) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    run = tj.init(project="p", dir=store_dir)
    table = tj.Table(columns=["image", "label"])
    for label in range(2):
        table.add_data(tj.Image(np.full((4, 4), label * 200, dtype=np.uint8)), label)
    run.log({"samples": table})
    run.finish()
    (row,) = _rows(store_dir, run)
    stored = json.loads((Path(run.run_dir) / row["samples"]["path"]).read_text())
    cells = [cell for cell, _ in stored["data"]]
    assert all(cell["_type"] == "image" and (Path(run.run_dir) / cell["path"]).is_file() for cell in cells)
    assert cells[0]["sha256"] != cells[1]["sha256"]


def test_log_modes(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir)
    immutable = tj.Table(columns=["a"], data=[[1]])
    mutable = tj.Table(columns=["a"], data=[[1]], log_mode="MUTABLE")
    growing = tj.Table(columns=["a"], data=[[1]], log_mode="INCREMENTAL")
    run.log({"i": immutable, "m": mutable, "g": growing})
    with pytest.warns(UserWarning, match="IMMUTABLE"):
        immutable.add_data(2)
    mutable.add_data(2)
    growing.add_data(2)
    run.log({"i": immutable, "m": mutable, "g": growing})
    run.finish()
    first, second = _rows(store_dir, run)
    assert second["i"] == first["i"]  # the same file again: the change is not stored
    assert second["m"]["path"] != first["m"]["path"] and second["m"]["nrows"] == 2
    assert second["g"]["_type"] == "incremental-table-file" and second["g"]["nrows"] == 1
    assert second["g"]["previous_increments_paths"] == [first["g"]["path"]]
    increment = json.loads((Path(run.run_dir) / second["g"]["path"]).read_text())
    assert increment["data"] == [[2]]


def test_a_table_past_the_row_limit_is_a_clear_error_and_the_run_goes_on(
    store_dir: Path, monkeypatch
) -> None:
    monkeypatch.setattr(tj.Table, "MAX_ROWS", 100)
    run = tj.init(project="p", dir=store_dir)
    big = tj.Table(columns=["x"], data=[[i] for i in range(101)])
    with pytest.raises(UsageError, match=r"101 rows; a logged table keeps at most 100 \(Table.MAX_ROWS\)"):
        run.log({"big": big, "loss": 1.0})
    run.log({"loss": 2.0})
    run.finish()
    assert [row["loss"] for row in _rows(store_dir, run)] == [2.0]


def test_nan_cells_survive(store_dir: Path) -> None:
    run = tj.init(project="p", dir=store_dir)
    run.log({"t": tj.Table(columns=["v"], data=[[float("nan")], [1.5]])})
    run.finish()
    (row,) = _rows(store_dir, run)
    stored = json.loads((Path(run.run_dir) / row["t"]["path"]).read_text())
    assert math.isnan(stored["data"][0][0]) and stored["data"][1][0] == 1.5


def test_a_list_of_images_stores_each_and_references_them(store_dir: Path) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    run = tj.init(project="p", dir=store_dir)
    images = [
        tj.Image(np.full((3, 3), shade, dtype=np.uint8), caption=f"shade {shade}") for shade in (0, 99, 255)
    ]
    run.log({"samples": images})
    run.finish()
    (row,) = _rows(store_dir, run)
    stored = row["samples"]
    assert stored["_type"] == "media-list" and stored["kind"] == "image" and stored["count"] == 3
    paths = [item["path"] for item in stored["items"]]
    assert len(set(paths)) == 3 and all((Path(run.run_dir) / path).is_file() for path in paths)
    assert [item["caption"] for item in stored["items"]] == ["shade 0", "shade 99", "shade 255"]


def test_stored_values_read_back_as_objects(store_dir: Path) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    run = tj.init(project="p", dir=store_dir)
    growing = tj.Table(columns=["a"], data=[[1]], log_mode="INCREMENTAL")
    run.log({"t": growing, "h": tj.Histogram([1, 2, 2, 3], num_bins=3), "img": tj.Image(np.zeros((2, 2)))})
    growing.add_data(2)
    run.log({"t": growing, "imgs": [tj.Image(np.zeros((2, 2)))]})
    run.finish()
    record = tj.Api(store_dir).run(f"p/{run.id}")
    assert record.table("t").data == [[1], [2]]  # the increments, joined
    assert record.table("t", step=0).data == [[1]]
    first = next(iter(record.scan_history()))
    assert record.value(first["h"]).histogram == [1, 2, 1]
    assert record.value(first["img"]).is_file()
    with pytest.raises(UsageError, match="no table logged as 'h'"):
        record.table("h")


def test_a_table_synced_to_mlflow_is_read_by_mlflow_s_own_load_table(
    mlflow_server, mlflow_client, store_dir: Path, monkeypatch, tmp_path: Path
) -> None:
    import uuid

    monkeypatch.setenv("TRACKER_BASE_URL", mlflow_server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    project = f"tables-{uuid.uuid4().hex[:8]}"
    run = tj.init(project=project, dir=store_dir, settings={"silent": True})
    table = tj.Table(columns=["text", "score"], data=[["a", 0.5], ["b", float("nan")]])
    run.log({"preds": table, "loss": 1.0})
    run.finish()
    (row,) = _rows(store_dir, run)
    artifact = row["preds"]["path"]
    experiment = mlflow_client.get_experiment_by_name(project)
    [found] = mlflow_client.search_runs([experiment.experiment_id])
    assert json.loads(found.data.tags["mlflow.loggedArtifacts"]) == [{"path": artifact, "type": "table"}]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)  # load_table searches through the fluent API
    frame = mlflow_client.load_table(
        experiment.experiment_id, artifact_file=artifact, run_ids=[found.info.run_id]
    )
    assert list(frame.columns) == ["text", "score"] and frame["text"].tolist() == ["a", "b"]
    assert frame["score"].iloc[0] == 0.5 and frame["score"].isna().iloc[1]  # NaN travels as null
