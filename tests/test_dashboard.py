"""The run widget and the runs dashboard, built without a kernel, then in a real kernel via nbclient.

Without a kernel ipywidgets talks to ``comm.DummyComm``; the tests that count messages replace
``comm.create_comm`` with a recorder of what would have been sent (the only stand-in here: the real
transport is exercised by the nbclient tests below and by tests/test_widget_browser.py).
"""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import tracker_jupyter
from tracker_jupyter.api import Api
from tracker_jupyter.display import panel
from tracker_jupyter.display import runs as runs_dashboard
from tracker_jupyter.display import view as _view
from tracker_jupyter.display import widget as dashboard
from tracker_jupyter.display.charts import escape

XSS = '<img src=x onerror="window.__xss=1">'


class Recorder(dashboard.Publisher):
    """Keeps what would have been displayed, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []

    def show(self, bundle: dict[str, Any], display_id: str | None) -> None:
        self.events.append(("show", display_id, bundle))

    def update(self, bundle: dict[str, Any], display_id: str) -> None:
        self.events.append(("update", display_id, bundle))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every comm message the widgets send (there is no kernel to send them to)."""
    import comm

    messages: list[dict[str, Any]] = []

    class RecordingComm(comm.DummyComm):
        def publish_msg(
            self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
        ) -> None:
            messages.append({"type": msg_type, "data": data, "time": time.monotonic()})

    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(*a, **k))
    # no browser builds these widgets: show them at once, and replace them at once at finish
    monkeypatch.setattr(dashboard, "WIDGET_AFTER_S", 0.0)
    monkeypatch.setattr(dashboard, "SETTLE_S", 0.0)
    return messages


class KernelShell:
    """Stands in for a kernel's IPython shell, for what the dashboard reads of one: that it has a
    kernel, the running cell's number and (``events``) IPython's own event manager."""

    kernel = object()

    def __init__(self, execution_count: int = 1, *, events: bool = False) -> None:
        self.execution_count = execution_count
        if events:
            from IPython.core.events import EventManager, available_events

            self.events = EventManager(self, available_events)


def _run(store: Path, **kwargs: Any) -> tracker_jupyter.Run:
    settings = {"flush_interval": 0.05, **kwargs.pop("settings", {})}
    return tracker_jupyter.init(project="p", dir=store, mode="offline", settings=settings, **kwargs)


def _watched(store: Path, **kwargs: Any) -> tuple[tracker_jupyter.Run, Recorder, dashboard.WidgetDashboard]:
    """A run, the recorder of its displays, and its widget (redrawn only when a test asks)."""
    run = _run(store, **kwargs)
    recorder = Recorder()
    return run, recorder, dashboard.WidgetDashboard(run, publisher=recorder, fps=4, start_timer=False)


def _images(html: str) -> list[str]:
    """The SVG documents inlined in ``html`` as data-URI images."""
    return [
        base64.b64decode(data).decode()
        for data in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    ]


def _rows(start: int, n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"_step": s, "_timestamp": 1_000_000 + s, "loss": 1 / (s + 1), **extra}
        for s in range(start, start + n)
    ]


# ------------------------------------------------------------------------------------------ feed


def test_feed_is_bounded_and_keeps_logged_order() -> None:
    feed = dashboard.RunFeed(capacity=64)
    for start in range(0, 200_000, 5_000):
        rows = _rows(start, 5_000, acc=0.5, note="text")
        for row in rows[::100]:
            row["val/loss"] = -row["_step"]
        feed.ingest(rows)
    assert list(feed.series) == ["loss", "acc", "val/loss"]  # "note" is text: not charted
    assert all(len(s) <= 64 for s in feed.series.values())
    assert feed.rows == 200_000 and feed.last_step == 199_999
    assert feed.series["val/loss"].count == 2_000 and feed.series["val/loss"].vmin == -199_900


def test_feed_caps_the_number_of_series() -> None:
    feed = dashboard.RunFeed(max_series=5)
    feed.ingest([{"_step": 0, "_timestamp": 0, **{f"m{i}": i for i in range(9)}}])
    assert len(feed.series) == 5 and feed.uncharted == 4


def test_history_read_beside_live_deliveries_counts_each_row_once(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _rows(0, 100)) + '{"_step": 100, "lo')
    size, first, last = _view.history_extent(path)
    assert (size, first, last) == (path.stat().st_size, 0, 99)  # the torn tail is not a row
    feed = dashboard.RunFeed()
    feed.origin, feed._skip_through = first, last
    feed.ingest(_rows(90, 20))  # the writer delivers a batch that overlaps the file before it is read
    feed.preload(_view.rows_before(path, size), chunk=7)
    loss = feed.series["loss"]
    assert loss.count == 110 and feed.last_step == 109 and loss.vmax == 1.0 and loss.last == 1 / 110
    xs = [x for x, _ in loss.points()]
    assert xs == sorted(xs) and xs[0] == 0


def test_steps_per_second() -> None:
    feed = dashboard.RunFeed()
    feed.ingest([{"_step": 0, "_timestamp": 10_000.0, "x": 1}])
    feed.ingest([{"_step": 500, "_timestamp": 12_000.0, "x": 1}])
    assert feed.steps_per_second(now=12.5) == 250
    assert feed.steps_per_second(now=30) is None  # idle for a while: no rate


# ---------------------------------------------------------------------------------------- widget


def test_widget_layout_and_live_bundle(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    run = _run(tmp_path, config={"lr": 0.01}, tags=["baseline"])
    recorder = Recorder()
    widget = dashboard.WidgetDashboard(run, publisher=recorder, fps=4, start_timer=False)
    widget.show(None)
    [(kind, display_id, bundle)] = recorder.events
    assert kind == "show" and display_id == widget.display_id
    assert set(bundle) == {"text/plain", "text/html", dashboard.MIME_WIDGET}
    assert bundle[dashboard.MIME_WIDGET]["model_id"] == widget.box.model_id
    assert "running" in bundle["text/html"] and run.name in bundle["text/plain"]
    children = [type(c).__name__ for c in widget.box.children]
    assert children == ["HTML", "ChartPanel", "VBox", "VBox"]
    assert widget.panel.widget.media == {}
    assert widget.media.layout.display == "none"  # no media logged yet
    # one accordion per part, all closed, so any of them can be opened beside the others
    parts = widget.details.children
    assert [part.titles for part in parts] == [
        ("Latest values",),
        ("Config",),
        ("Artifacts",),
        ("System",),
        ("Output",),
    ]
    assert all(part.selected_index is None for part in parts)
    assert widget.panel.widget.data["series"] == {} and widget.view == panel.DEFAULT_VIEW
    assert widget.panel.widget.run_name == run.name
    assert "lr" in widget.config.value and "tracker sync" in widget.header.value


def test_widget_shows_images_in_the_media_panel_and_the_newest_video(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    import numpy as np

    run = _run(tmp_path)
    widget = dashboard.WidgetDashboard(run, publisher=Recorder(), fps=4, start_timer=False)
    pixels = np.zeros((8, 12, 3), dtype=np.uint8)
    pixels[:, :6] = 255
    run.log({"sample": tracker_jupyter.Image(pixels, caption="<b>half white</b>"), "loss": 1.0})
    run.sink.flush()
    widget.redraw(force=True)
    stored = next(iter(tracker_jupyter.Api(tmp_path).run(run.id).scan_history()))["sample"]
    [entry] = widget.panel.widget.media["sample"]["steps"]
    assert widget.panel.widget.media["sample"]["kind"] == "image"
    assert (entry["step"], entry["w"], entry["h"], entry["caption"]) == (0, 12, 8, "<b>half white</b>")
    png = (Path(run.run_dir) / stored["path"]).read_bytes()
    assert entry["src"] == "data:image/png;base64," + base64.b64encode(png).decode()
    assert widget.media.layout.display == "none"  # the video player stays hidden: no video yet

    frames = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    run.log({"episode": tracker_jupyter.Video(frames, fps=4, format="mp4")})
    run.sink.flush()
    widget.redraw(force=True)
    label, viewer = widget.media.children
    assert type(viewer).__name__ == "Video" and viewer.format == "mp4" and viewer.controls
    assert viewer.value[4:8] == b"ftyp"  # an mp4 file, as stored
    assert "latest video" in label.value and "step 1" in label.value
    redraws_before = widget.messages
    widget.redraw(force=True)  # the same video is not sent again
    assert widget.media.children[1] is viewer and widget.messages - redraws_before <= 3
    run.finish()
    snapshot = dashboard.snapshot_bundle(run)["text/html"]
    assert "latest video" in snapshot and "episode" in snapshot  # named, with where its file is


def test_media_state_holds_galleries_histograms_tables_and_charts(tmp_path: Path) -> None:
    import numpy as np

    from tracker_jupyter.display import media_panel

    run = _run(tmp_path, settings={"show_widget": False})
    feed = _view.RunFeed()
    feed.media = media_panel.MediaFeed()
    run.sink.subscribe(feed.ingest)
    image = lambda v: tracker_jupyter.Image(np.full((4, 6, 3), v, dtype=np.uint8), caption=f"v{v}")  # noqa: E731
    table = tracker_jupyter.Table(columns=["x", "y", XSS], data=[[i, i * i, "<b>"] for i in range(30)])
    for step in range(100):
        row: dict[str, Any] = {"h": tracker_jupyter.Histogram(np.arange(10) + step), "loss": 1.0}
        if step % 10 == 0:
            row["pics"] = [image(step), image(step + 1)]
        row["one"] = image(step % 256)
        run.log(row)
    run.log({"t": table, "curve": tracker_jupyter.plot.line(table, "x", "y", title="y over x")})
    run.sink.flush()
    state = media_panel.media_state(feed.media, Path(run.run_dir))
    assert {k: v["kind"] for k, v in state.items()} == {
        "h": "histogram", "pics": "gallery", "one": "image", "t": "table", "curve": "chart",
    }  # fmt: skip
    steps = [e["step"] for e in state["one"]["steps"]]
    # thinned to at most MAX_STEPS, keeping the first and the newest
    assert (
        len(steps) <= media_panel.MAX_STEPS and steps[0] == 0 and steps[-1] == 99 and steps == sorted(steps)
    )
    assert [len(e["items"]) for e in state["pics"]["steps"]] == [2] * 10
    assert state["pics"]["steps"][3]["items"][1]["caption"] == "v31"
    last = state["h"]["steps"][-1]
    assert sum(last["values"]) == 10 and len(last["bins"]) == len(last["values"]) + 1
    [t] = state["t"]["steps"]
    assert t["columns"] == ["x", "y", XSS] and t["rows"] == 30 and t["data"][3] == [3, 9, "<b>"]
    [chart] = state["curve"]["steps"]
    assert (chart["chart"], chart["title"], chart["fields"]) == ("line", "y over x", {"x": "x", "y": "y"})
    assert len(chart["data"]) == 30 and "loss" not in state
    run.finish()


def test_snapshot_keeps_a_small_newest_image(tmp_path: Path) -> None:
    import numpy as np

    run = _run(tmp_path)
    for step in range(3):
        pixels = np.full((4, 6, 3), 60 * step, dtype=np.uint8)
        run.log({"sample": tracker_jupyter.Image(pixels, caption=f"<i>shade {step}</i>"), "loss": 1.0})
    run.log({"t": tracker_jupyter.Table(columns=["a"], data=[[i] for i in range(30)])})
    run.finish()
    html = dashboard.snapshot_bundle(run)["text/html"]
    # the newest image, enlarged by whole pixels (4 × 6 px shown 4×, pixelated), its caption as text
    [(image, width, height)] = re.findall(
        r'<img src="data:image/png;base64,([^"]+)" width="(\d+)" height="(\d+)"', html
    )
    assert (width, height) == ("24", "16") and "image-rendering:pixelated" in html
    assert base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "&lt;i&gt;shade 2&lt;/i&gt;" in html and "shade 1" not in html and "6×4 · step 2" in html
    assert html.count("<tr>") >= 10 and "10 of 30 rows" in html  # the table's first rows


def test_snapshot_draws_plot_charts(tmp_path: Path) -> None:
    run = _run(tmp_path)
    table = tracker_jupyter.Table(columns=["x", "y", "class"],
                                  data=[[i / 10, (i % 7) / 7, f"c{i % 2}"] for i in range(40)])  # fmt: skip
    run.log({
        "curve": tracker_jupyter.plot.line(table, "x", "y", stroke="class", title="<b>by class</b>"),
        "cm": tracker_jupyter.plot.confusion_matrix(y_true=[0, 1, 1, 0, 1], preds=[0, 1, 0, 0, 1],
                                                    class_names=["no", "yes"]),
        "bars": tracker_jupyter.plot.bar(tracker_jupyter.Table(columns=["k", "n"], data=[["a", 1]]), "k", "n"),
    })  # fmt: skip
    run.finish()
    html = dashboard.snapshot_bundle(run)["text/html"]
    part = html[html.index(">media <") :]
    # the line chart: a line per class, against x, with a legend; the title is text
    [svg] = [i for i in _images(part) if "<path" in i]
    assert svg.count("<path") == 2 and "&lt;b&gt;by class&lt;/b&gt;" in part
    assert part.count('class="tj-legend-item"') == 2 and ">x</div>" in part
    # the confusion matrix as a shaded table of counts; a bar chart's data as a table
    assert "actual \\ predicted" in part and part.count("background:rgba(31,119,180,") == 4
    assert "bar chart: its data" in part


def test_lineage_shows_in_the_widget_snapshot_and_runs_table(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w")
    producer = _run(tmp_path)
    producer.log_model(tmp_path / "weights.bin", name="net")
    producer.finish()
    consumer = _run(tmp_path)
    widget = dashboard.WidgetDashboard(consumer, publisher=Recorder(), fps=4, start_timer=False)
    consumer.use_artifact("net:latest")
    consumer.log({"x": 1})
    widget.redraw(force=True)
    assert "net:v0" in widget.artifacts.value and "used · model" in widget.artifacts.value
    consumer.finish()
    snapshot = dashboard.snapshot_bundle(consumer)["text/html"]
    assert "Artifacts (1)" in snapshot and "net:v0" in snapshot
    records = Api(dir=tmp_path).runs(consumer.project)
    table = runs_dashboard.runs_table(records)
    assert "artifacts" in table.columns
    assert {r["id"]: r["artifacts"] for r in table.rows} == {producer.id: "↑ net:v0", consumer.id: "↓ net:v0"}


def test_widget_fps_is_honoured_up_to_the_cap(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    run = _run(tmp_path, settings={"widget_fps": 50})
    assert dashboard._fps(run) == dashboard.MAX_FPS
    for fps, pause in ((10, 0.1), (2, 0.5), (4, 0.25)):
        widget = dashboard.WidgetDashboard(run, publisher=Recorder(), fps=fps, start_timer=False)
        assert widget.refresh_s == pytest.approx(pause)
        widget.teardown()
    run.finish()


def test_widget_redraws_at_most_fps_times_a_second(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    run = _run(tmp_path)
    widget = dashboard.WidgetDashboard(run, publisher=Recorder(), fps=5)
    start_messages = len(sent)
    start_redraws = widget.redraws
    began = time.monotonic()
    step = 0
    while time.monotonic() - began < 1.0:  # bursts of rows: the writer hands over a batch every 50 ms
        for _ in range(300):
            run.log({"loss": math.exp(-step / 1e4), "acc": step % 7})
            step += 1
        time.sleep(0.003)
    elapsed = time.monotonic() - began
    redraws = widget.redraws - start_redraws
    assert 1 <= redraws <= 5 * elapsed + 2  # the cap is the point; one redraw shows the timer ran at all
    # header, charts, latest values (+ config every 2 s): a handful of messages per redraw
    updates = [m for m in sent[start_messages:] if m["data"] and m["data"].get("method") == "update"]
    assert len(updates) <= 4 * redraws + 4
    assert max(len(json.dumps(m["data"])) for m in updates) < 40_000
    run.finish()


def test_widget_series_stay_bounded_with_many_steps(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    run = _run(tmp_path)
    widget = dashboard.WidgetDashboard(run, publisher=Recorder(), fps=4, start_timer=False)
    for step in range(20_000):
        run.log({"loss": 1 / (step + 1)})
    run.sink.flush()
    widget.redraw(force=True)
    small = len(json.dumps(widget.panel.widget.data))
    for step in range(20_000, 100_000):
        run.log({"loss": 1 / (step + 1)})
    run.sink.flush()
    widget.redraw(force=True)
    assert len(widget.feed.series["loss"]) <= widget.feed.capacity
    assert len(json.dumps(widget.panel.widget.data)) < small * 1.3
    run.finish()


def test_finish_leaves_the_static_snapshot_and_closes_the_comms(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    run = _run(tmp_path, config={"lr": 0.01, "api_key": "sk-live-123"})
    recorder = Recorder()
    widget = dashboard.WidgetDashboard(run, publisher=recorder, fps=4)
    widget.show(None)
    for step in range(5_000):
        run.log({"loss": 1 / (step + 1), "acc": step / 5_000})
    run.summary["best"] = 0.99
    run.finish()

    kind, display_id, bundle = recorder.events[-1]
    assert (kind, display_id) == ("update", widget.display_id)
    assert set(bundle) == {"text/plain", "text/html"}  # no widget view left behind
    html = bundle["text/html"]
    assert "finished" in html and html.count('class="tj-chart"') == 2
    assert "<svg" not in html and [svg.count("<path") for svg in _images(html)] == [1, 1]
    assert "best" in html and "0.99" in html and "lr" in html
    assert "sk-live-123" not in html and "sk-live-123" not in bundle["text/plain"]
    assert "loss: last 0.0002" in bundle["text/plain"]
    assert widget.feed.last_step == 4_999  # every row made it into the snapshot
    assert widget.header.value.count("finished") == 1  # the widget drew the final state before closing
    assert all(w.comm is None for w in widget._all_widgets())
    assert sum(1 for m in sent if m["type"] == "comm_close") == len(widget._all_widgets())
    assert not widget._thread.is_alive()


def test_user_text_is_escaped_everywhere(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    run = _run(
        tmp_path,
        name=XSS,
        notes=XSS,
        tags=["<b>bold</b>"],
        group="<i>g</i>",
        config={XSS.replace(".", ""): XSS},
    )
    recorder = Recorder()
    widget = dashboard.WidgetDashboard(run, publisher=recorder, fps=4, start_timer=False)
    run.log({XSS.replace(".", ""): 1.0})
    run.sink.flush()
    widget.redraw(force=True)
    run.finish()
    markup = [widget.header.value, widget.latest.value, widget.config.value]
    assert widget.panel.widget.run_name == XSS  # the browser writes it as text (textContent), never markup
    markup.append(recorder.events[-1][2]["text/html"])
    for html in markup:
        for part in [html, *_images(html)]:
            assert "<img src=x" not in part and "<b>bold" not in part and "<i>g" not in part
    assert "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" in widget.header.value


def test_online_header_links_to_the_server_and_shows_sync_status(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    run = _run(tmp_path)
    run.update_meta(
        mode="online",
        url="https://user:pw@mlflow.example/#/experiments/1/runs/abc",
        sync={"synced": 120, "pending": 3, "error": f"HTTP 503 {XSS} token=abc123"},
    )
    html = _view.render_header(_view.run_info(run))
    assert 'href="https://***@mlflow.example/#/experiments/1/runs/abc"' in html
    assert "synced 120 · pending 3" in html and "last sync error" in html
    assert "<img" not in html and "abc123" not in html and "user:pw" not in html
    run.update_meta(url="javascript:alert(1)")
    assert "href" not in _view.render_header(_view.run_info(run))
    run.parts.sync_status = lambda: {"synced": 7, "pending": 0, "error": None}
    assert "synced 7 · pending 0" in _view.render_header(_view.run_info(run))
    run.finish()


def _browser_state(messages: list[dict[str, Any]], tmp_path: Path) -> dict[str, dict[int, list[Any]]]:
    """What the browser holds after ``messages``: the live charts' own store (``static/charts.js``, run
    in Playwright's Node.js) fed the ``data`` states and ``delta`` messages the kernel sent, in order."""
    from playwright._impl._driver import compute_driver_executable

    feed = []
    for message in messages:
        data = message["data"] or {}  # only the chart panel has a "data" trait and custom messages
        state = data.get("state", {})
        if (message["type"] == "comm_open" and "data" in state) or (
            data.get("method") == "update" and "data" in state
        ):
            feed.append({"data": state["data"]})
        elif data.get("method") == "custom":
            feed.append({"custom": data["content"]})
    recorded = tmp_path / "messages.json"
    recorded.write_text(json.dumps(feed))
    charts_js = Path(panel.STATIC / "charts.js").as_uri()
    script = f"""
import {{ readFileSync }} from "node:fs";
import {{ storeFor }} from {json.dumps(charts_js)};
const feed = JSON.parse(readFileSync({json.dumps(str(recorded))}, "utf8"));
const handlers = {{}};
const state = {{ uid: "test", data: feed[0].data }};
const model = {{ get: (k) => state[k], on: (ev, cb) => (handlers[ev] ||= []).push(cb), send: () => {{}} }};
const store = storeFor(model);
for (const m of feed.slice(1)) {{
  if (m.data) {{ state.data = m.data; handlers["change:data"].forEach((f) => f()); }}
  else handlers["msg:custom"].forEach((f) => f(m.custom));
}}
const out = {{}};
for (const [name, s] of store.series) out[name] = Object.fromEntries(s.buckets);
console.log(JSON.stringify(out));
"""
    node = compute_driver_executable()[0]
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=True
    )
    return {name: {int(i): b for i, b in held.items()} for name, held in json.loads(done.stdout).items()}


def test_the_browser_holds_what_the_feed_holds_after_deltas(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    run = _run(tmp_path)
    widget = dashboard.WidgetDashboard(run, publisher=Recorder(), fps=4, start_timer=False)
    deltas = 0
    for chunk in range(40):  # 40 redraws over 20k steps: the buckets merge several times on the way
        for step in range(chunk * 500, (chunk + 1) * 500):
            run.log({"train/loss": 1 / (step + 1), "val/acc": step % 97, "lr": 0.1})
        run.sink.flush()
        before = len(sent)
        widget.redraw()
        deltas += sum(1 for m in sent[before:] if (m["data"] or {}).get("method") == "custom")
    assert deltas >= 30  # the redraws were deltas, not full states
    merged = sum(1 for m in sent if "h" in json.dumps((m["data"] or {}).get("content", {})))
    assert merged  # the buckets merged on the way, and the browser merged its copy
    held = _browser_state(sent, tmp_path)
    with widget.feed.lock:
        expected = {
            name: {b[0]: b for b in panel.series_wire(s)["b"]} for name, s in widget.feed.series.items()
        }
    assert held == expected
    # a page that missed deltas asks for the whole state, and gets it at the next redraw
    widget.panel.widget._handle_custom_msg({"type": "resync"}, [])
    before = len(sent)
    assert widget.redraw()
    assert [m["data"]["state"]["data"]["seq"] for m in sent[before:] if "data" in m["data"].get("state", {})]
    # once the buckets are wide, each delta, merges included, carries only the few buckets that changed
    sizes = [len(json.dumps(m["data"])) for m in sent if (m["data"] or {}).get("method") == "custom"]
    assert max(sizes[-20:]) < len(json.dumps(widget.panel.updates.full())) / 10
    run.finish()


def test_the_browser_view_settings_are_checked_and_drive_the_snapshot(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    run, recorder, widget = _watched(tmp_path)
    for step in range(50):
        run.log({"train/ppl": 400 * 0.9**step + 1, "val/ppl": 420 * 0.9**step + 1, "x": -1.0})
    # as the browser would send it, with junk mixed in
    widget.panel.widget.view = {
        "x": "relative", "log": True, "smoothing": 5, "filter": "ppl", "closed": ["val"], "evil": "<b>",
    }  # fmt: skip
    assert widget.view == {
        "x": "relative",
        "log": True,
        "smoothing": 0.99,
        "filter": "ppl",
        "closed": ["val"],
        "pair": False,
    }
    widget.panel.widget.view = {"x": "<script>", "smoothing": "lots"}
    assert widget.view == panel.DEFAULT_VIEW
    widget.panel.widget.view = {"x": "relative", "log": True, "smoothing": 0.6, "closed": ["val"]}
    run.finish()
    html = recorder.events[-1][2]["text/html"]
    assert re.findall(r'<details class="tj-section" data-section="[^"]*"( open)?><summary[^>]*>(\w+)', html) == [
        (" open", "charts"), (" open", "train"), ("", "val"),
    ]  # fmt: skip
    assert html.count("relative time · log y · smoothing 0.60") == 2
    assert "none on the log scale" in html  # x is always negative


def test_train_val_pairs_overlaid_in_the_snapshot_when_the_view_asks(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    run, recorder, widget = _watched(tmp_path)
    for step in range(30):
        run.log({"train/loss": 1 / (step + 1), "val/loss": 1.2 / (step + 1), "train/acc": step / 30,
                 "loss": 2.0, "val_loss": 2.5, XSS: 1.0})  # fmt: skip
    widget.panel.widget.view = {"pair": True}
    run.finish()
    html = recorder.events[-1][2]["text/html"]
    sections = re.findall(
        r'<details class="tj-section" data-section="[^"]*"( open)?><summary[^>]*>([^<]+?) <span', html
    )
    assert [name for _, name in sections] == ["charts", "train · val", "train"]
    titles = re.findall(r'class="tj-chart-title"[^>]*>([^<]*)<', html)
    # Keras' loss + val_loss and train/loss + val/loss are one chart each; train/acc has no pair
    assert sorted(titles) == sorted([escape(XSS), "loss", "loss", "train/acc"])
    assert [svg.count("<path") for svg in _images(html)].count(2) == 2
    assert html.count('class="tj-legend-item"') == 4 and "<img src=x" not in html


def test_a_metric_with_a_step_metric_is_drawn_against_it(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    run, recorder, widget = _watched(tmp_path)
    run.define_metric("epoch")
    run.define_metric("val/*", step_metric="epoch")
    for step in range(200):
        row: dict[str, Any] = {"train/loss": 1 / (step + 1)}
        if step % 20 == 19:
            row.update({"epoch": step // 20, "val/acc": step / 200})
        run.log(row)
    run.sink.flush()
    widget.redraw(force=True)
    assert widget.panel.widget.steps_of == {"val/acc": "epoch"}
    run.finish()
    html = recorder.events[-1][2]["text/html"]
    tiles = dict(
        re.findall(r'class="tj-chart-title"[^>]*>([^<]*)<.*?>(step|epoch)(?: ·[^<]*)?</div>', html, re.S)
    )
    assert tiles == {"train/loss": "step", "val/acc": "epoch", "epoch": "step"}
    # every chart against epoch, when the browser chose it
    view = {"x": "metric:epoch"}
    again = _view.render_snapshot(run, widget.feed, None, panel.clean_view(view))
    assert again.count(">epoch</div>") == 3


def test_system_metrics_are_charted_in_their_own_section_by_time(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    run, recorder, widget = _watched(tmp_path)
    for step in range(50):
        run.log({"loss": 1 / (step + 1)})
    # samples as the sampler writes them, beside the history (the user's steps are not theirs)
    start = int(run.start_time * 1000)
    lines = [json.dumps({"_step": i, "_timestamp": start + 10_000 * i,
                         "system/cpu_utilization_percentage": 10.0 * i, "system/gpu_0_name": "x"})
             for i in range(6)]  # fmt: skip
    path = Path(run.run_dir) / "system.jsonl"
    path.write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])  # the fifth still being written
    run.sink.flush()
    widget.redraw(force=True)
    cpu = widget.feed.series["system/cpu_utilization_percentage"]
    assert cpu.count == 4 and cpu.last == 30.0 and "system/gpu_0_name" not in widget.feed.series
    assert widget.feed.last_step == 49  # the run's steps and steps/s are left alone
    path.write_text("\n".join(lines) + "\n")
    widget._config_at = 0.0
    widget.redraw(force=True)
    assert cpu.count == 6 and "system/cpu_utilization_percentage" in widget.panel.widget.data["series"]
    run.finish()
    html = recorder.events[-1][2]["text/html"]
    sections = re.findall(
        r'<details class="tj-section" data-section="[^"]*"( open)?><summary[^>]*>([^<]+?) <span', html
    )
    assert [name for _, name in sections] == ["charts", "system"]
    system_part = html[html.index(">system <") :]
    labels = re.findall(r"text-align:center;opacity:0.78\">([^<]*)<", system_part)
    assert labels == ["0s", "30s", "relative time"]  # drawn against time (0 to 50 s), not samples


def test_the_sampler_s_last_sample_reaches_the_snapshot(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    run = _run(tmp_path)
    path = Path(run.run_dir) / "system.jsonl"
    start = int(run.start_time * 1000)

    def last_sample(_run: Any) -> None:  # as the sampler's own finish hook writes it: after the widget's
        sample = {"_step": 0, "_timestamp": start + 1000, "system/cpu_utilization_percentage": 97.5}
        path.write_text(json.dumps(sample) + "\n")

    run.on_finish(last_sample)  # registered before the widget's, so it runs after it
    recorder = Recorder()
    dashboard.WidgetDashboard(run, publisher=recorder, fps=4, start_timer=False)
    run.log({"loss": 1.0})
    run.finish()
    updates = [bundle["text/html"] for kind, _, bundle in recorder.events if kind == "update"]
    assert ">system <" not in updates[-2] and ">system <" in updates[-1]
    assert "last <b>97.5</b>" in updates[-1]


def test_resumed_run_shows_earlier_history(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    run = _run(tmp_path, id="resumable")
    for step in range(300):
        run.log({"loss": float(step)})
    run.finish()
    run = _run(tmp_path, id="resumable", resume="must")
    widget = dashboard.WidgetDashboard(run, publisher=Recorder(), fps=4, start_timer=False)
    for step in range(300, 400):
        run.log({"loss": float(step)})
    run.finish()
    assert widget.feed.series["loss"].count == 400 and widget.feed.series["loss"].vmin == 0.0


# ------------------------------------------------------------------------------- entry points


def test_attach_shows_one_widget_per_run_and_one_view_per_cell(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    run = _run(tmp_path)
    recorder = Recorder()
    dashboard.attach(run, KernelShell(3), publisher=recorder)
    dashboard.show(run, KernelShell(3), publisher=recorder)  # the Run's repr at the end of the same cell
    dashboard.show(run, KernelShell(4), publisher=recorder)
    assert [e[0] for e in recorder.events] == ["show", "show"]
    assert recorder.events[0][1] == recorder.events[1][1]  # same display_id: finish replaces both views
    assert isinstance(run.parts.dashboard, dashboard.WidgetDashboard)
    run.finish()
    assert recorder.events[-1][0] == "update"


def test_a_later_cell_that_logs_gets_a_live_view_and_a_line_at_finish(
    tmp_path: Path, sent: list[dict[str, Any]]
) -> None:
    shell = KernelShell(3, events=True)
    run = _run(tmp_path)
    recorder = Recorder()
    dashboard.attach(run, shell, publisher=recorder)
    run.log({"loss": 1.0})  # the init cell itself: no second view
    for cell, logs in ((4, True), (5, False), (6, True)):
        shell.execution_count = cell
        shell.events.trigger("pre_run_cell", None)
        if cell == 6:
            run.define_metric("loss", summary="min")  # replaces the summary hook: the view survives
        for i in range(3 if logs else 0):
            run.log({"loss": 1.0 / (cell + i)})
    shows = [e for e in recorder.events if e[0] == "show"]
    main_id = shows[0][1]
    assert [e[1] for e in shows] == [main_id, f"{main_id}-cell4", f"{main_id}-cell6"]
    assert all(dashboard.MIME_WIDGET in e[2] for e in shows)  # the same widget, shown again
    assert shows[1][2][dashboard.MIME_WIDGET] == shows[0][2][dashboard.MIME_WIDGET]
    run.finish()
    updates = {e[1]: e[2] for e in recorder.events if e[0] == "update"}
    assert "tracker-run-snapshot" in updates[main_id]["text/html"]
    for follower in (f"{main_id}-cell4", f"{main_id}-cell6"):
        assert "tj-finished-line" in updates[follower]["text/html"]
        assert "finished · step 6" in updates[follower]["text/plain"]
        assert "loss min 0.125" in updates[follower]["text/plain"]
    assert shell.events.callbacks["pre_run_cell"] == []  # nothing left behind in the shell


def test_a_run_shorter_than_a_render_never_puts_a_widget_on_screen(
    tmp_path: Path, sent: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "WIDGET_AFTER_S", 0.4)
    monkeypatch.setattr(dashboard, "SETTLE_S", 0.3)

    quick = _run(tmp_path)
    recorder = Recorder()
    dashboard.attach(quick, KernelShell(1), publisher=recorder)
    quick.log({"loss": 1.0})
    quick.finish()
    kinds = [(kind, dashboard.MIME_WIDGET in bundle) for kind, _, bundle in recorder.events]
    assert kinds == [("show", False), ("update", False)]  # the header, then the snapshot
    assert "tracker-run-snapshot" in recorder.events[-1][2]["text/html"]

    slow, recorder = _run(tmp_path), Recorder()
    dashboard.attach(slow, KernelShell(1), publisher=recorder)
    deadline = time.monotonic() + 5
    while not any(dashboard.MIME_WIDGET in b for _, _, b in recorder.events) and time.monotonic() < deadline:
        time.sleep(0.02)
    shown_at = time.monotonic()
    slow.finish()  # right after the widget went up: finish lets the browser build it first
    assert time.monotonic() - shown_at >= 0.25
    kinds = [(kind, dashboard.MIME_WIDGET in bundle) for kind, _, bundle in recorder.events]
    assert kinds == [("show", False), ("update", True), ("update", False)]


def test_a_cell_of_several_runs_leaves_a_row_per_run(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    shell, recorder = KernelShell(7), Recorder()
    ids = []
    for i in range(3):
        run = _run(tmp_path, name=f"trial-{i}")
        dashboard.attach(run, shell, publisher=recorder)
        for step in range(20):
            run.log({"loss": 1 / (step + 1), "acc": step / 20, "lr": 0.1})
        run.finish()
        ids.append(next(e[1] for e in recorder.events if e[0] == "show" and e[1] not in ids))
    final = {display_id: bundle for kind, display_id, bundle in recorder.events if kind == "update"}
    rows = [final[i]["text/html"] for i in ids]
    # the first run's full snapshot became the row with the column titles when the second one started
    assert all('class="tj-compact-run"' in row and "tracker-run-snapshot" not in row for row in rows)
    assert ["summary</div>" in row for row in rows] == [True, False, False]
    assert all(len(_images(row)) == 3 and "trial-" in row for row in rows)
    assert "loss <b>0.05</b>" in rows[2] and "20</div>" in rows[2]  # summary value, steps
    # a new cell: a full snapshot again
    shell.execution_count = 8
    run = _run(tmp_path, name="alone")
    dashboard.attach(run, shell, publisher=recorder)
    run.log({"loss": 1.0})
    run.finish()
    assert "tracker-run-snapshot" in recorder.events[-1][2]["text/html"]


def test_a_failing_log_callback_never_reaches_the_caller(tmp_path: Path) -> None:
    run = _run(tmp_path, settings={"show_widget": False})
    calls: list[int] = []

    def boom() -> None:
        calls.append(run.step)
        raise RuntimeError("display gone")

    run._on_next_log(boom)
    run._on_next_log(boom)  # one pending at a time
    run.log({"x": 1})
    run.log({"x": 2}, step=5)
    assert calls == [0] and run.summary["x"] == 2  # once, during the first log()
    run.finish()


def test_show_widget_setting_turns_attach_off(tmp_path: Path) -> None:
    run = _run(tmp_path, settings={"show_widget": False})
    recorder = Recorder()
    dashboard.attach(run, KernelShell(1), publisher=recorder)
    assert recorder.events == [] and not hasattr(run, "_dashboard")
    run.finish()


def test_terminal_falls_back_to_text_shown_at_start_and_finish(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class TerminalShell:
        execution_count = 1

    run = _run(tmp_path)
    recorder = Recorder()
    dashboard.attach(run, TerminalShell(), publisher=recorder)
    assert isinstance(run.parts.dashboard, dashboard.TextDashboard)
    for step in range(100):
        run.log({"loss": 1 / (step + 1)})
    time.sleep(0.3)
    run.finish()
    assert [e[0] for e in recorder.events] == ["show", "show"]
    assert "text/plain" in recorder.events[0][2]
    assert (
        "finished" in recorder.events[-1][2]["text/plain"]
        and "loss: last 0.01" in recorder.events[-1][2]["text/plain"]
    )
    assert "tracker: could not" not in capsys.readouterr().err


def test_without_ipywidgets_a_kernel_gets_html_updated_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets now raises ImportError
    run = _run(tmp_path)
    recorder = Recorder()
    dashboard.attach(run, KernelShell(1), publisher=recorder)
    for step in range(50):
        run.log({"loss": float(step)})
        time.sleep(0.03)
    run.finish()
    kinds = [e[0] for e in recorder.events]
    assert kinds[0] == "show" and set(kinds[1:]) == {"update"}
    assert len({e[1] for e in recorder.events}) == 1  # all the same display, updated in place
    assert 2 <= len(kinds) <= 1 + 1.5 / dashboard.TEXT_REFRESH_S + 2
    assert all("text/plain" in e[2] and "text/html" in e[2] for e in recorder.events)
    assert "finished" in recorder.events[-1][2]["text/html"]


def test_show_a_finished_run_displays_its_snapshot(tmp_path: Path) -> None:
    run = _run(tmp_path)
    for step in range(20):
        run.log({"loss": float(step)})
    run.finish()
    recorder = Recorder()
    dashboard.show(run, None, publisher=recorder)
    [(kind, display_id, bundle)] = recorder.events
    assert kind == "show" and display_id is None and len(_images(bundle["text/html"])) == 1
    assert len(_images(run._repr_mimebundle_()["text/html"])) == 1


def test_run_display_and_rich_repr_delegate_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[Any] = []
    monkeypatch.setattr(dashboard, "show", shown.append)
    run = _run(tmp_path)
    run.display()
    run._ipython_display_()
    assert shown == [run, run]
    bundle = run._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"} and "running" in bundle["text/html"]
    run.finish()


def test_display_in_a_plain_script_prints_text(tmp_path: Path) -> None:
    from tests.conftest import run_script

    code = (
        "import sys, tracker_jupyter\n"
        "run = tracker_jupyter.init(project='p', dir='store', mode='offline', settings={'silent': True})\n"
        "run.log({'loss': 0.5})\nrun.finish()\nrun.display()\n"
        "assert 'ipywidgets' not in sys.modules\n"
    )
    result = run_script(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout and "loss: last 0.5" in result.stdout and "{" not in result.stdout


def test_disabled_run_displays_without_data(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    run = tracker_jupyter.init(project="p", mode="disabled")
    recorder = Recorder()
    dashboard.attach(run, KernelShell(1), publisher=recorder)
    run.log({"loss": 1.0})
    run.finish()
    assert "disabled" in recorder.events[-1][2]["text/html"]


# ------------------------------------------------------------------------------------ runs table


@pytest.fixture
def records(tmp_path: Path) -> list[Any]:
    specs = [
        ("alpha", {"lr": 0.1, "password": "hunter2"}, ["baseline"], 0),
        ("beta", {"lr": 0.01, "password": "hunter2"}, ["tuned"], 0),
        (XSS, {"lr": 0.001, "password": "hunter2"}, ["tuned", "<b>x</b>"], 1),
    ]
    for i, (name, config, tags, exit_code) in enumerate(specs):
        run = _run(tmp_path / "store", name=name, config=config, tags=tags, group="g", job_type="train")
        for step in range(50 * (i + 1)):
            run.log({"loss": 1 / (step + 1) + i, "acc": step / 100})
        run.finish(exit_code=exit_code)
    return Api(tmp_path / "store").runs("p")


def test_runs_table_columns_filter_and_sort(records: list[Any]) -> None:
    table = runs_dashboard.runs_table(records, sort="summary.loss", descending=False)
    assert [r["name"] for r in table.rows] == ["alpha", "beta", XSS]
    assert table.columns[:7] == ["name", "state", "start", "duration", "tags", "group", "job_type"]
    assert "config.lr" in table.columns and "summary.loss" in table.columns
    assert table.columns.index("config.lr") < table.columns.index("config.password")  # varying first
    assert {r["name"] for r in runs_dashboard.runs_table(records, filter="tuned").rows} == {"beta", XSS}
    assert [r["name"] for r in runs_dashboard.runs_table(records, filter="state=failed").rows] == [XSS]
    assert [r["name"] for r in runs_dashboard.runs_table(records, filter="lr=0.01").rows] == ["beta"]
    assert [r["name"] for r in runs_dashboard.runs_table(records, filter="tags=baseline g").rows] == ["alpha"]
    assert runs_dashboard.runs_table(records, filter="nothing-matches").rows == []


def test_runs_table_markup_is_escaped_and_masks_secrets(records: list[Any]) -> None:
    table = runs_dashboard.runs_table(records, metric="loss")
    html = table._repr_mimebundle_()["text/html"]
    assert "<img src=x" not in html and "<b>x" not in html and "hunter2" not in html
    assert "&lt;img" in html and html.count("<tr>") == 2 + 3  # the group and title rows, three runs
    overlays = _images(html)
    # the static comparison: one chart per metric (loss first), a line per selected run
    assert len(table.selected) == 3 and [svg.count("<path") for svg in overlays] == [3, 3]
    titles = re.findall(r'class="tj-chart-title"[^>]*>([^<]*)<', html)
    assert titles == ["loss", "acc"] and html.count('class="tj-legend-item"') == 6
    assert all("<img" not in svg and XSS not in svg for svg in overlays)
    assert "3 runs" in repr(table)


def test_runs_table_reads_well(tmp_path: Path) -> None:
    for name in ("a", "b"):
        run = _run(tmp_path / "store", name=name, config={"lr": 0.1 if name == "a" else 0.2})
        run.log({"loss": 1.0})
        run.finish()
    records = Api(tmp_path / "store").runs("p")
    table = runs_dashboard.runs_table(records)
    # nothing set a group, a job type or tags: those columns are left out
    assert table.columns[:4] == ["name", "state", "start", "duration"]
    assert not {"group", "job_type", "tags"} & set(table.columns)
    html = table.html()
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    assert headers[:4] == ["", "run", "config", "summary"] and "lr" in headers and "started" in headers
    assert "config.lr" not in headers
    start = records[0].start_time
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)) in html  # to the second


def test_runs_keep_their_colour_whatever_is_selected_or_filtered(records: list[Any]) -> None:
    colors = runs_dashboard.runs_table(records).colors
    assert len(set(colors.values())) == 3
    oldest_first = sorted(records, key=lambda r: r.start_time)
    assert [colors[r.id] for r in oldest_first] == list(runs_dashboard.PALETTE[:3])
    assert runs_dashboard.runs_table(records, filter="tuned", sort="name").colors == colors


def test_runs_overlay_is_downsampled_history(records: list[Any]) -> None:
    table = runs_dashboard.runs_table(records, metric="loss")
    run_id = next(r["id"] for r in table.rows if r["name"] == "beta")
    series = table.series(run_id, "loss")
    assert series.count == 100 and series.last == pytest.approx(1 / 100 + 1)
    assert table.series(run_id, "no-such-metric").count == 0


def test_runs_widget_with_no_runs(sent: list[dict[str, Any]]) -> None:
    board = runs_dashboard.RunsDashboard(runs_dashboard.runs_table([]))
    assert board.widget.rows == [] and board.widget.runs == [] and board.widget.total == 0
    assert board.widget.data["series"] == {}
    bundle = board.bundle()
    assert dashboard.MIME_WIDGET in bundle and "<table" in bundle["text/html"]
    assert bundle["text/plain"] == "0 runs"


def test_runs_widget_keeps_the_selection_and_colours_across_filter_and_sort(
    records: list[Any], sent: list[dict[str, Any]]
) -> None:
    board = runs_dashboard.RunsDashboard(runs_dashboard.runs_table(records), metric="acc")
    widget = board.widget
    ids = {r.name: r.id for r in records}
    colors = {run["id"]: run["color"] for run in widget.runs}
    assert len(widget.selected) == 3 and len(set(colors.values())) == 3
    assert len(widget.data["series"]) == 3 * 2  # loss and acc of each run
    assert {row["color"] for row in widget.rows} == set(colors.values())
    titles = [c["title"] for c in widget.columns]
    assert titles[:4] == ["name", "state", "started", "duration"] and "lr" in titles
    # the filter hides a selected run: it stays selected, and its lines stay in the charts
    widget.query = {"filter": "tuned", "sort": "start", "descending": True}
    assert {row["name"] for row in widget.rows} == {"beta", XSS} and len(widget.selected) == 3
    assert len(widget.runs) == 3
    widget.query = {"filter": "tuned", "sort": "name", "descending": False}
    assert [row["name"] for row in widget.rows] == [XSS, "beta"]
    assert widget.rows[0]["cells"][0] == XSS  # text, which the browser shows as text
    # deselecting one run changes no other run's colour
    widget.selected = [ids["beta"], ids["alpha"]]
    assert [run["id"] for run in widget.runs] == [ids["beta"], ids["alpha"]]
    assert {run["id"]: run["color"] for run in widget.runs} == {i: colors[i] for i in widget.selected}
    assert {k.split("\x1f")[0] for k in widget.data["series"]} == {ids["beta"], ids["alpha"]}
    # what the browser sends is checked: unknown ids and a bogus sort column are ignored
    widget.selected = ["nope", ids["beta"], 7]
    widget.query = {"filter": "", "sort": "<script>", "descending": "yes"}
    assert [run["id"] for run in widget.runs] == [ids["beta"]] and len(widget.rows) == 3


# ------------------------------------------------------------------------------------ real kernel


def _execute(tmp_path: Path, cells: list[str]) -> tuple[Any, list[tuple[int, str, dict[str, Any]]]]:
    """Run ``cells`` in a fresh kernel; returns the notebook as saved and every message seen, by cell."""
    import nbformat
    from nbclient import NotebookClient

    seen: list[tuple[int, str, dict[str, Any]]] = []

    class Client(NotebookClient):
        def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
            seen.append((cell_index, msg["msg_type"], msg["content"]))
            return super().process_message(msg, cell, cell_index)

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    Client(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    path = tmp_path / "executed.ipynb"
    nbformat.write(notebook, path)
    return nbformat.read(path, as_version=4), seen


def _text(cell: Any, name: str) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == name)


@pytest.mark.kernel
def test_kernel_shows_the_widget_and_saves_the_snapshot(tmp_path: Path) -> None:
    cells = [
        "import time, tracker_jupyter\n"
        f"run = tracker_jupyter.init(project='p', dir='store', mode='offline', name={XSS!r},\n"
        "                           settings={'widget_fps': 10, 'flush_interval': 0.05})\n"
        "print('user print 0')",
        "for i in range(30):\n    run.log({'loss': 1 / (i + 1)})\n    time.sleep(0.02)\nprint('user print 1')",
        "run.finish()\nprint('user print 2')",
        "run",
        "from tracker_jupyter import Api\nfrom tracker_jupyter.display import runs\nruns.show_runs(Api('store').runs('p'), metric='loss')",
    ]
    notebook, seen = _execute(tmp_path, cells)

    [shown] = [content for cell, kind, content in seen if cell == 0 and kind == "display_data"]
    main_id = shown["transient"]["display_id"]
    # The run's header stood alone for its first moments; the widget then took its place.
    assert dashboard.MIME_WIDGET not in shown["data"] and "tj-header" in shown["data"]["text/html"]
    updates = [content for _, kind, content in seen if kind == "update_display_data"]
    [widget] = [u for u in updates if dashboard.MIME_WIDGET in u["data"]]
    assert widget["transient"]["display_id"] == main_id
    # The timer thread's updates reached the client while the logging cell was still busy.
    assert any(cell == 1 and kind == "comm_msg" for cell, kind, _ in seen)
    # The cell that logged showed a live view of the same widget, below its own prints' cell.
    [follow] = [content for cell, kind, content in seen if cell == 1 and kind == "display_data"]
    assert follow["data"][dashboard.MIME_WIDGET] == widget["data"][dashboard.MIME_WIDGET]
    assert follow["transient"]["display_id"] != main_id
    # At finish the init cell's view became the snapshot and the follower's a one-line summary.
    final = {u["transient"]["display_id"]: u for u in updates}
    assert set(final) == {main_id, follow["transient"]["display_id"]}
    assert "tracker-run-snapshot" in final[main_id]["data"]["text/html"]
    [line] = [o for o in notebook.cells[1].outputs if o.output_type == "display_data"]
    assert "tj-finished-line" in line.data["text/html"] and "<img" not in line.data["text/html"]
    assert "finished · step 29" in line.data["text/plain"] and "loss 0.0333" in line.data["text/plain"]

    first = notebook.cells[0]
    displays = [o for o in first.outputs if o.output_type == "display_data"]
    assert len(displays) == 1 and set(displays[0].data) == {"text/plain", "text/html"}
    html = displays[0].data["text/html"]
    assert "tracker-run-snapshot" in html and "finished" in html and "<img src=x" not in html
    assert [svg.count("<path") for svg in _images(html)] == [1]
    assert "step 29" in displays[0].data["text/plain"]
    # The user's prints are where they were, and init()/finish() printed no lines beside the widget.
    assert [_text(notebook.cells[i], "stdout") for i in range(3)] == [f"user print {i}\n" for i in range(3)]
    assert _text(first, "stderr") == "" and _text(notebook.cells[2], "stderr") == ""
    assert not any(o.output_type == "error" for cell in notebook.cells for o in cell.outputs)
    [again] = notebook.cells[3].outputs  # the repr of a finished run is its snapshot
    assert "tracker-run-snapshot" in again.data["text/html"]
    [runs] = notebook.cells[4].outputs  # the runs dashboard is a widget, with a static form beside it
    assert dashboard.MIME_WIDGET in runs.data and "tj-runs" in runs.data["text/html"]

    # nbconvert's HTML of the notebook as JupyterLab saves it (without the widgets' state, its default):
    # the outputs' static HTML shows the run names and charts, never a widget's repr
    from nbconvert import HTMLExporter

    notebook.metadata.pop("widgets", None)
    page, _ = HTMLExporter().from_notebook_node(notebook)
    assert "tracker-run-snapshot" in page and page.count("&lt;img src=x onerror=") >= 3  # run, line, table
    assert "<img src=x" not in page
    assert page.count("data:image/svg+xml;base64,") >= 3  # the run's chart, the runs' two
    assert 'class="tj-runs"' in page and "tj-finished-line" in page
    assert not re.search(r"VBox\(|ChartPanel\(|RunsPanel\(|Error displaying widget", page)


@pytest.mark.kernel
def test_kernel_follow_setting_off_keeps_one_view(tmp_path: Path) -> None:
    cells = [
        "import tracker_jupyter\n"
        "run = tracker_jupyter.init(project='p', dir='store', mode='offline',\n"
        "                           settings={'widget_follow': False})",
        "for i in range(5):\n    run.log({'loss': float(i)})",
        "run.define_metric('loss', summary='min')\nrun.log({'loss': -1.0})\nrun.finish()",
    ]
    notebook, seen = _execute(tmp_path, cells)
    assert [kind for cell, kind, _ in seen if kind == "display_data"] == ["display_data"]
    assert [o.output_type for o in notebook.cells[1].outputs] == []
    assert [o.output_type for o in notebook.cells[2].outputs] == []
    [display] = notebook.cells[0].outputs
    assert "tracker-run-snapshot" in display.data["text/html"]


@pytest.mark.kernel
def test_kernel_charts_the_sampler_s_system_metrics(tmp_path: Path) -> None:
    # the real sampler (a helper process), which the suite turns off elsewhere
    cells = [
        "import time, tracker_jupyter\n"
        "run = tracker_jupyter.init(project='p', dir='store', mode='offline',\n"
        "                           settings={'system_metrics': True, 'system_metrics_interval': 0.5})\n"
        "for i in range(30):\n    run.log({'loss': 1 / (i + 1)})\n    time.sleep(0.1)\n"
        "board = run.parts.dashboard\n"
        "live = sorted(k for k in board.feed.series if k.startswith('system/'))\n"
        "run.finish()\nprint(len(live), 'system/cpu_utilization_percentage' in live)",
    ]
    notebook, _ = _execute(tmp_path, cells)
    assert _text(notebook.cells[0], "stdout").split()[1] == "True"  # in the live charts as it ran
    assert int(_text(notebook.cells[0], "stdout").split()[0]) >= 5
    [display] = [o for o in notebook.cells[0].outputs if o.output_type == "display_data"]
    html = display.data["text/html"]
    sections = re.findall(
        r'<details class="tj-section" data-section="[^"]*"( open)?><summary[^>]*>([^<]+?) <span', html
    )
    assert [name for _, name in sections] == ["charts", "system"]
    assert "cpu_utilization_percentage" in html[html.index(">system <") :]


@pytest.mark.kernel
def test_kernel_without_ipywidgets_updates_html_in_place(tmp_path: Path) -> None:
    cells = [
        "import sys, time\nsys.modules['ipywidgets'] = None  # as if it were not installed\n"
        "import tracker_jupyter\n"
        "run = tracker_jupyter.init(project='p', dir='store', mode='offline', settings={'flush_interval': 0.05})",
        "for i in range(25):\n    run.log({'loss': float(i)})\n    time.sleep(0.1)\nprint('user print')",
        "run.finish()",
    ]
    notebook, seen = _execute(tmp_path, cells)
    [shown] = [content for cell, kind, content in seen if cell == 0 and kind == "display_data"]
    assert set(shown["data"]) == {"text/plain", "text/html"}
    updates = [content for cell, kind, content in seen if cell == 1 and kind == "update_display_data"]
    assert 1 <= len(updates) <= 2.5 / dashboard.TEXT_REFRESH_S + 1  # live, and at most once a second
    [display] = [o for o in notebook.cells[0].outputs if o.output_type == "display_data"]
    assert "finished" in display.data["text/html"] and "loss: last 24" in display.data["text/plain"]
    assert _text(notebook.cells[1], "stdout") == "user print\n"
    assert not any(o.output_type == "error" for cell in notebook.cells for o in cell.outputs)
