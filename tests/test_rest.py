"""The MLflow REST client against real MLflow servers (fixtures in tests/mlflow_server.py).

Reads go back through MLflow's own ``MlflowClient`` where it matters that MLflow sees what we wrote. Retries
and odd answers use a tiny real HTTP server on 127.0.0.1 that answers from a script and forwards the rest to
the real MLflow server; nothing here mocks the server.
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.mlflow_server import MlflowServer, free_port
from tracker_jupyter.exceptions import AuthenticationError, CommError, UsageError
from tracker_jupyter.online.rest.client import (
    BATCH_LIMITS,
    Credentials,
    ItemFailure,
    Metric,
    MlflowRest,
    RetryPolicy,
    Timeout,
)

FAST_RETRY = RetryPolicy(max_attempts=3, backoff_initial=0.5, backoff_max=8.0, jitter=0.0, deadline=60.0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class RecordingSession(requests.Session):
    """A real session that also keeps (method, url, body) of every request it sends."""

    def __init__(self, after: Callable[[str, str, requests.Response], None] | None = None) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, Any]] = []
        self._after = after

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append((method, url, kwargs.get("data")))
        response = super().request(method, url, *args, **kwargs)
        if self._after is not None:
            self._after(method, url, response)
        return response

    def batches(self) -> list[dict[str, Any]]:
        return [json.loads(data) for _, url, data in self.sent if url.endswith("/runs/log-batch")]


class SleepRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# ---- a scripted HTTP server -----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stall:
    """Wait this long, then forward the request."""

    seconds: float


class ScriptedServer:
    """A real HTTP server on 127.0.0.1: answers the next scripted step, forwards to ``upstream`` when none."""

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream
        self.script: deque[Answer | Stall] = deque()
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._handle(self)

            do_POST = do_PUT = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.seen.append((handler.command, handler.path, dict(handler.headers)))
            step = self.script.popleft() if self.script else None
        if isinstance(step, Stall):
            time.sleep(step.seconds)
            step = None
        if step is None:
            step = self._forward(handler.command, handler.path, body, handler.headers.get("Content-Type"))
        try:
            handler.send_response(step.status)
            for name, value in step.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(step.body)))
            handler.end_headers()
            handler.wfile.write(step.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the timeout tests)

    def _forward(self, method: str, path: str, body: bytes, content_type: str | None) -> Answer:
        if self.upstream is None:
            return Answer(200, b"{}", {"Content-Type": "application/json"})
        headers = {"Content-Type": content_type} if content_type else {}
        reply = requests.request(method, self.upstream + path, data=body, headers=headers, timeout=30)
        return Answer(
            reply.status_code, reply.content, {"Content-Type": reply.headers.get("Content-Type", "")}
        )


@pytest.fixture
def flaky(mlflow_server: MlflowServer) -> Iterator[ScriptedServer]:
    with ScriptedServer(upstream=mlflow_server.url) as server:
        yield server


# ---- fixtures on the real server ------------------------------------------------------------------------


@pytest.fixture
def session() -> Iterator[RecordingSession]:
    with RecordingSession() as recording:
        yield recording


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


ClientFactory = Callable[..., MlflowRest]


@pytest.fixture
def make_client(sleeps: SleepRecorder) -> Iterator[ClientFactory]:
    """Clients with fast retries and recorded sleeps, closed after the test."""
    made: list[MlflowRest] = []

    def make(base_url: str, auth: Any = None, **options: Any) -> MlflowRest:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("sleep", sleeps)
        made.append(MlflowRest(base_url, auth, **options))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def rest(mlflow_server: MlflowServer, session: RecordingSession, sleeps: SleepRecorder) -> MlflowRest:
    return MlflowRest(mlflow_server.url, session=session, retry=FAST_RETRY, sleep=sleeps)


@pytest.fixture
def experiment_id(rest: MlflowRest) -> str:
    return rest.create_experiment(unique("exp"))


@pytest.fixture
def run(rest: MlflowRest, experiment_id: str) -> dict[str, Any]:
    return rest.create_run(experiment_id, run_name="a-run")


# ---- value objects ----------------------------------------------------------------------------------------


def test_credentials_never_show_secrets() -> None:
    basic = Credentials.coerce(("ada", "s3cret-pass"))
    token = Credentials.coerce("tok-123456")
    assert repr(basic) == "Credentials(username='ada', password=***, token=None)"
    assert repr(token) == "Credentials(username=None, password=None, token=***)"
    assert "s3cret" not in str(basic) and "tok-123456" not in str(token)
    with pytest.raises(UsageError, match="both a username and a password"):
        Credentials(username="ada")
    with pytest.raises(UsageError, match="not both"):
        Credentials(username="ada", password="x", token="y")
    with pytest.raises(UsageError, match="got int"):
        Credentials.coerce(42)  # type: ignore[arg-type]


def test_url_credentials_move_out_of_the_url(make_client: ClientFactory, mlflow_server: MlflowServer) -> None:
    client = make_client(mlflow_server.url.replace("http://", "http://ada:pa%40ss@") + "/")
    assert client.base_url == mlflow_server.url
    assert client.credentials == Credentials("ada", "pa@ss")
    assert "pa@ss" not in repr(client)
    with pytest.raises(UsageError, match="http://host:5000"):
        MlflowRest("file:///tmp/mlruns")


def test_retry_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=3.0, jitter=0.5)
    assert [policy.backoff(n, rand=lambda: 0.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff(2, rand=lambda: 1.0) == 0.5
    with pytest.raises(UsageError):
        RetryPolicy(max_attempts=0)


# ---- health, experiments --------------------------------------------------------------------------------


def test_health_and_run_page_url(rest: MlflowRest, mlflow_server: MlflowServer) -> None:
    rest.health()
    assert (
        rest.run_page_url("7", "abc123")
        == f"{mlflow_server.url}/#/experiments/7/runs/abc123?workflowType=machine_learning"
    )


def test_health_of_nothing_fails_at_once_without_retrying(
    make_client: ClientFactory, sleeps: SleepRecorder
) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(CommError, match="connection failed") as caught:
        client.health()
    assert caught.value.status is None
    assert caught.value.url == f"{client.base_url}/health"
    assert sleeps.calls == []


def test_experiment_get_create(rest: MlflowRest) -> None:
    name = unique("exp")
    assert rest.get_experiment_by_name(name) is None
    experiment_id = rest.create_experiment(name, tags={"team": "vision"})
    found = rest.get_experiment_by_name(name)
    assert found is not None
    assert found["experiment_id"] == experiment_id
    assert found["artifact_location"] == f"mlflow-artifacts:/{experiment_id}"
    assert {"key": "team", "value": "vision"} in found["tags"]
    assert rest.get_or_create_experiment(name) == experiment_id
    with pytest.raises(UsageError, match="RESOURCE_ALREADY_EXISTS") as caught:
        rest.create_experiment(name)
    assert "INSERT INTO" not in str(caught.value)  # the server's SQL lines are left out


def test_get_or_create_experiment_loses_the_race_gracefully(
    make_client: ClientFactory, mlflow_server: MlflowServer, mlflow_client: Any
) -> None:
    name = unique("race")
    created_elsewhere: list[str] = []

    def another_process_wins(method: str, url: str, response: requests.Response) -> None:
        # Right after our look-up found nothing, someone else creates the experiment.
        if "get-by-name" in url and response.status_code == 404 and not created_elsewhere:
            created_elsewhere.append(mlflow_client.create_experiment(name))

    with RecordingSession(after=another_process_wins) as racing:
        client = make_client(mlflow_server.url, session=racing)
        assert client.get_or_create_experiment(name) == created_elsewhere[0]
    assert [url.rsplit("/", 1)[1].split("?")[0] for _, url, _ in racing.sent] == [
        "get-by-name",
        "create",
        "get-by-name",
    ]


def test_get_or_create_experiment_from_many_threads_gives_one_id(mlflow_server: MlflowServer) -> None:
    name = unique("threads")
    barrier = threading.Barrier(4)
    ids: list[str] = []

    def worker() -> None:
        with MlflowRest(mlflow_server.url) as client:
            barrier.wait()
            ids.append(client.get_or_create_experiment(name))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ids) == 4 and len(set(ids)) == 1


def test_get_or_create_refuses_a_deleted_experiment(rest: MlflowRest, mlflow_client: Any) -> None:
    name = unique("deleted")
    mlflow_client.delete_experiment(rest.create_experiment(name))
    with pytest.raises(UsageError, match="is deleted"):
        rest.get_or_create_experiment(name)


# ---- runs ----------------------------------------------------------------------------------------------------


def test_run_create_update_get(rest: MlflowRest, experiment_id: str, mlflow_client: Any) -> None:
    run = rest.create_run(experiment_id, run_name="first", start_time_ms=1_700_000_000_000, tags={"k": "v"})
    info = run["info"]
    assert info["experiment_id"] == experiment_id
    assert info["status"] == "RUNNING"
    assert info["start_time"] == 1_700_000_000_000
    assert info["artifact_uri"] == f"mlflow-artifacts:/{experiment_id}/{info['run_id']}/artifacts"

    updated = rest.update_run(info["run_id"], "FINISHED", end_time_ms=1_700_000_005_000, run_name="renamed")
    assert (updated["status"], updated["end_time"], updated["run_name"]) == (
        "FINISHED",
        1_700_000_005_000,
        "renamed",
    )

    theirs = mlflow_client.get_run(info["run_id"])
    assert theirs.info.status == "FINISHED"
    assert theirs.info.run_name == "renamed"
    assert theirs.data.tags["k"] == "v"
    ours = rest.get_run(info["run_id"])
    assert ours["info"]["end_time"] == 1_700_000_005_000


def test_create_run_stamps_a_start_time(rest: MlflowRest, experiment_id: str) -> None:
    before = int(time.time() * 1000)
    start = rest.create_run(experiment_id)["info"]["start_time"]
    assert before <= start <= int(time.time() * 1000)


def test_update_run_refuses_an_unknown_status_before_sending(
    rest: MlflowRest, session: RecordingSession
) -> None:
    with pytest.raises(UsageError, match="FINISHED"):
        rest.update_run("whatever", "DONE")
    assert session.sent == []


def test_search_runs_pages(rest: MlflowRest, experiment_id: str) -> None:
    run_ids = {rest.create_run(experiment_id, tags={"group": "g1"})["info"]["run_id"] for _ in range(3)}
    rest.create_run(experiment_id, tags={"group": "other"})
    first = rest.search_runs([experiment_id], "tags.group = 'g1'", max_results=2)
    assert len(first.runs) == 2 and first.next_page_token
    second = rest.search_runs(
        [experiment_id], "tags.group = 'g1'", max_results=2, page_token=first.next_page_token
    )
    assert second.next_page_token is None
    assert {r["info"]["run_id"] for r in first.runs + second.runs} == run_ids
    with pytest.raises(UsageError, match="INVALID_PARAMETER_VALUE"):
        rest.search_runs([experiment_id], "bogus ~~ 3")


def test_404_maps_to_comm_error_with_status(rest: MlflowRest, session: RecordingSession) -> None:
    with pytest.raises(CommError) as caught:
        rest.get_run("0" * 32)
    error = caught.value
    assert error.status == 404
    assert error.url is not None and error.url.endswith("/api/2.0/mlflow/runs/get")
    assert "RESOURCE_DOES_NOT_EXIST" in str(error) and "not found" in str(error)
    assert len(session.sent) == 1  # a 4xx is never retried


def test_wrong_base_path_says_no_mlflow_api_there(
    make_client: ClientFactory, mlflow_server: MlflowServer
) -> None:
    client = make_client(mlflow_server.url + "/not-mlflow")
    with pytest.raises(CommError, match="No MLflow API answered at this address") as caught:
        client.get_experiment_by_name("x")
    assert caught.value.status == 404


def test_tags_set_and_delete(rest: MlflowRest, run: dict[str, Any]) -> None:
    run_id = run["info"]["run_id"]
    rest.set_tag(run_id, "mlflow.note.content", "notes *here*")
    tags = {t["key"]: t["value"] for t in rest.get_run(run_id)["data"]["tags"]}
    assert tags["mlflow.note.content"] == "notes *here*"
    rest.delete_tag(run_id, "mlflow.note.content")
    rest.delete_tag(run_id, "mlflow.note.content")  # already gone: fine by default
    keys = {t["key"] for t in rest.get_run(run_id)["data"]["tags"]}
    assert "mlflow.note.content" not in keys and "mlflow.runName" in keys
    with pytest.raises(CommError) as caught:
        rest.delete_tag(run_id, "mlflow.note.content", missing_ok=False)
    assert caught.value.status == 404
    with pytest.raises(CommError) as caught:
        rest.delete_tag("f" * 32, "anything")  # no such run: missing_ok does not hide that
    assert caught.value.status == 404


# ---- log_batch ------------------------------------------------------------------------------------------


def test_log_batch_splits_within_the_server_limits(
    rest: MlflowRest, run: dict[str, Any], session: RecordingSession, mlflow_client: Any
) -> None:
    run_id = run["info"]["run_id"]
    metrics = [
        Metric(f"m{k}", k + step / 1000, 1_700_000_000_000 + step, step)
        for k in range(5)
        for step in range(500)
    ]
    params = {f"p{i}": str(i) for i in range(250)}
    tags = {f"t{i}": "x" * 500 for i in range(150)}

    assert rest.log_batch(run_id, metrics, params, tags) == []

    batches = session.batches()
    assert len(batches) == 3  # 2900 items, 250 params: three requests are the least possible
    for batch in batches:
        assert len(batch["metrics"]) <= BATCH_LIMITS.metrics
        assert len(batch["params"]) <= BATCH_LIMITS.params and len(batch["tags"]) <= BATCH_LIMITS.tags
        assert len(batch["metrics"]) + len(batch["params"]) + len(batch["tags"]) <= BATCH_LIMITS.items
    bodies = [data for _, url, data in session.sent if url.endswith("/runs/log-batch")]
    assert all(len(body) < BATCH_LIMITS.body_bytes for body in bodies)

    theirs = mlflow_client.get_run(run_id)
    assert theirs.data.params == params
    assert {k: v for k, v in theirs.data.tags.items() if k.startswith("t")} == tags
    for k in range(5):
        history = mlflow_client.get_metric_history(run_id, f"m{k}")
        assert sorted(m.step for m in history) == list(range(500))
        assert {m.step: m.value for m in history}[499] == pytest.approx(k + 0.499)


def test_log_batch_keeps_bodies_under_one_megabyte(
    rest: MlflowRest, run: dict[str, Any], session: RecordingSession
) -> None:
    tags = {f"big{i}": "y" * 7000 for i in range(100)}  # 700 KB of tags
    params = {f"p{i}": "z" * 5000 for i in range(100)}  # and 500 KB of params: must not share one body
    assert rest.log_batch(run["info"]["run_id"], params=params, tags=tags) == []
    bodies = [data for _, url, data in session.sent if url.endswith("/runs/log-batch")]
    assert len(bodies) == 2
    assert all(len(body) < BATCH_LIMITS.body_bytes for body in bodies)
    data = rest.get_run(run["info"]["run_id"])["data"]
    assert len(data["params"]) == 100 and sum(t["key"].startswith("big") for t in data["tags"]) == 100


def test_log_batch_replay_is_idempotent(rest: MlflowRest, run: dict[str, Any]) -> None:
    run_id = run["info"]["run_id"]
    metrics = [Metric("loss", 1.0 / (step + 1), 1_700_000_000_000 + step, step) for step in range(20)]
    assert rest.log_batch(run_id, metrics, {"lr": "0.01"}, {"phase": "train"}) == []
    assert rest.log_batch(run_id, metrics, {"lr": "0.01"}, {"phase": "train"}) == []  # the same replayed
    history = rest.get_metric_history(run_id, "loss")
    assert sorted(history, key=lambda m: m.step) == metrics


def test_changed_param_is_an_item_failure_and_the_rest_lands(rest: MlflowRest, run: dict[str, Any]) -> None:
    run_id = run["info"]["run_id"]
    assert rest.log_batch(run_id, params={"lr": "0.01", "epochs": "3"}) == []
    failures = rest.log_batch(
        run_id,
        [Metric("acc", 0.5, 1_700_000_000_000, 0)],
        params={"lr": "0.02", "epochs": "3", "batch": "64"},
        tags={"phase": "eval"},
    )
    assert [(f.kind, f.key, f.count) for f in failures] == [("param", "lr", 1)]
    assert "Changing param values is not allowed" in failures[0].message
    data = rest.get_run(run_id)["data"]
    assert {p["key"]: p["value"] for p in data["params"]} == {"lr": "0.01", "epochs": "3", "batch": "64"}
    assert {"key": "phase", "value": "eval"} in data["tags"]
    assert [(m.step, m.value) for m in rest.get_metric_history(run_id, "acc")] == [(0, 0.5)]


def test_bad_key_is_reported_once_and_the_rest_lands(
    rest: MlflowRest, run: dict[str, Any], session: RecordingSession, mlflow_client: Any
) -> None:
    run_id = run["info"]["run_id"]
    metrics = []
    for step in range(300):
        metrics.append(Metric("loss", float(step), 1_700_000_000_000 + step, step))
        if step % 10 == 3:
            metrics.append(Metric("bad key!", 1.0, 1_700_000_000_000 + step, step))
    failures = rest.log_batch(run_id, metrics, params={"good": "1"}, tags={"fine": "yes"})

    assert failures == [ItemFailure("metric", "bad key!", failures[0].message, count=30)]
    assert "Names may only contain" in failures[0].message
    assert len(mlflow_client.get_metric_history(run_id, "loss")) == 300
    theirs = mlflow_client.get_run(run_id)
    assert theirs.data.params == {"good": "1"} and theirs.data.tags["fine"] == "yes"
    # Bisection plus one request per known-bad key per piece: far fewer than one request per item.
    assert len(session.batches()) <= 30


def test_log_batch_to_a_deleted_run_raises(rest: MlflowRest, run: dict[str, Any], mlflow_client: Any) -> None:
    mlflow_client.delete_run(run["info"]["run_id"])
    with pytest.raises(UsageError, match="must be in the 'active' state"):
        rest.log_batch(run["info"]["run_id"], [Metric("loss", 1.0, 1, 0)])


def test_non_finite_values_are_stored_not_zeroed(rest: MlflowRest, run: dict[str, Any]) -> None:
    # Sent as bare JSON tokens, MLflow would store NaN as 0 at step 0; as strings they are kept.
    run_id = run["info"]["run_id"]
    points = [Metric("x", math.nan, 10, 0), Metric("x", math.inf, 11, 1), Metric("x", -math.inf, 12, 2)]
    assert rest.log_batch(run_id, points) == []
    history = sorted(rest.get_metric_history(run_id, "x"), key=lambda m: m.step)
    assert [(m.step, m.timestamp) for m in history] == [(0, 10), (1, 11), (2, 12)]
    assert math.isnan(history[0].value)
    assert history[1].value == pytest.approx(1.7976931348623157e308)  # MLflow clamps infinities
    assert history[2].value == pytest.approx(-1.7976931348623157e308)


def test_bad_local_values_are_item_failures(rest: MlflowRest, run: dict[str, Any]) -> None:
    failures = rest.log_batch(
        run["info"]["run_id"],
        [Metric("ok", 1.0, 5, 0), Metric("text", "high", 5, 0)],  # type: ignore[arg-type]
    )
    assert [(f.kind, f.key) for f in failures] == [("metric", "text")]
    assert [m.value for m in rest.get_metric_history(run["info"]["run_id"], "ok")] == [1.0]


def test_metric_history_follows_page_tokens(
    rest: MlflowRest, run: dict[str, Any], session: RecordingSession
) -> None:
    run_id = run["info"]["run_id"]
    rest.log_batch(run_id, [Metric("loss", float(step), 1000 + step, step) for step in range(250)])
    session.sent.clear()
    history = rest.get_metric_history(run_id, "loss", page_size=100)
    assert sorted(m.step for m in history) == list(range(250))
    assert len(session.sent) == 3


# ---- artifacts ------------------------------------------------------------------------------------------


def test_upload_artifact_reads_back(
    rest: MlflowRest, run: dict[str, Any], mlflow_client: Any, tmp_path: Path
) -> None:
    run_id, artifact_uri = run["info"]["run_id"], run["info"]["artifact_uri"]
    source = tmp_path / "config.json"
    source.write_text('{"lr": 0.01}')
    rest.upload_artifact(artifact_uri, "config.json", source)
    rest.upload_artifact(artifact_uri, "code/my notes.txt", b"hello \xe2\x9c\x93")
    stream = io.BytesIO(b"xxxxPAYLOAD")
    stream.seek(4)  # a file object is sent from where it stands
    rest.upload_artifact(artifact_uri, "code/stream.bin", stream)

    listed = sorted(a.path for a in mlflow_client.list_artifacts(run_id, "code"))
    assert listed == ["code/my notes.txt", "code/stream.bin"]
    out = Path(mlflow_client.download_artifacts(run_id, "", str(tmp_path / "out")))
    assert json.loads((out / "config.json").read_text()) == {"lr": 0.01}
    assert (out / "code" / "my notes.txt").read_bytes() == b"hello \xe2\x9c\x93"
    assert (out / "code" / "stream.bin").read_bytes() == b"PAYLOAD"


def test_upload_artifact_refuses_bad_paths_and_unserved_locations(
    rest: MlflowRest, run: dict[str, Any]
) -> None:
    artifact_uri = run["info"]["artifact_uri"]
    for bad in ("../escape.txt", "/abs.txt", "a//b.txt", ""):
        with pytest.raises(UsageError, match="relative_path"):
            rest.upload_artifact(artifact_uri, bad, b"x")
    with pytest.raises(UsageError, match="ambiguous"):
        rest.upload_artifact(artifact_uri, "a.txt", "text")  # type: ignore[arg-type]
    with pytest.raises(CommError, match="cannot write to over HTTP"):
        rest.upload_artifact("s3://bucket/1/abc/artifacts", "a.txt", b"x")


def test_upload_artifact_is_retried_with_the_whole_file(
    make_client: ClientFactory,
    flaky: ScriptedServer,
    sleeps: SleepRecorder,
    run: dict[str, Any],
    mlflow_client: Any,
    tmp_path: Path,
) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(bytes(range(256)) * 64)
    flaky.script.append(Answer(502, b"bad gateway"))
    client = make_client(flaky.url)
    client.upload_artifact(run["info"]["artifact_uri"], "weights.bin", source)
    assert sleeps.calls == [0.5]
    local = mlflow_client.download_artifacts(run["info"]["run_id"], "weights.bin", str(tmp_path / "out"))
    assert Path(local).read_bytes() == source.read_bytes()


# ---- retries ----------------------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff_then_succeeds(
    make_client: ClientFactory, flaky: ScriptedServer, sleeps: SleepRecorder, rest: MlflowRest
) -> None:
    flaky.script.extend(
        [Answer(503, b"busy"), Answer(500, b'{"error_code": "INTERNAL_ERROR", "message": "x"}')]
    )
    client = make_client(flaky.url)
    name = unique("retried")
    experiment_id = client.create_experiment(name)
    assert sleeps.calls == [0.5, 1.0]
    assert len(flaky.seen) == 3
    found = rest.get_experiment_by_name(name)  # straight to the real server
    assert found is not None and found["experiment_id"] == experiment_id


def test_429_honours_retry_after(
    make_client: ClientFactory, flaky: ScriptedServer, sleeps: SleepRecorder
) -> None:
    flaky.script.append(Answer(429, b"slow down", {"Retry-After": "7"}))
    client = make_client(flaky.url)
    assert client.get_experiment_by_name(unique("none")) is None
    assert sleeps.calls == [7.0]


def test_retry_after_beyond_the_deadline_gives_up_at_once(
    make_client: ClientFactory, flaky: ScriptedServer, sleeps: SleepRecorder
) -> None:
    flaky.script.append(Answer(503, b"maintenance", {"Retry-After": "3600"}))
    client = make_client(flaky.url)
    with pytest.raises(CommError) as caught:
        client.get_experiment_by_name("x")
    assert caught.value.status == 503 and "maintenance" in str(caught.value)
    assert sleeps.calls == [] and len(flaky.seen) == 1


def test_retries_run_out(make_client: ClientFactory, flaky: ScriptedServer, sleeps: SleepRecorder) -> None:
    flaky.script.extend([Answer(503, b"down")] * 5)
    client = make_client(flaky.url)
    with pytest.raises(CommError, match="after 3 attempts: HTTP 503: down") as caught:
        client.get_experiment_by_name("x")
    assert caught.value.status == 503
    assert len(flaky.seen) == 3 and sleeps.calls == [0.5, 1.0]


def test_4xx_is_not_retried(make_client: ClientFactory, flaky: ScriptedServer, sleeps: SleepRecorder) -> None:
    flaky.script.append(Answer(409, b'{"error_code": "ABORTED", "message": "conflict"}'))
    client = make_client(flaky.url)
    with pytest.raises(CommError, match="ABORTED: conflict") as caught:
        client.get_experiment_by_name("x")
    assert caught.value.status == 409 and len(flaky.seen) == 1 and sleeps.calls == []


def test_connection_refused_is_retried_then_reported(
    make_client: ClientFactory, sleeps: SleepRecorder
) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(CommError, match="after 3 attempts: connection failed") as caught:
        client.get_run("abc")
    assert caught.value.status is None and sleeps.calls == [0.5, 1.0]


def test_read_timeout_is_retried(
    make_client: ClientFactory, flaky: ScriptedServer, sleeps: SleepRecorder
) -> None:
    flaky.script.append(Stall(1.0))
    client = make_client(flaky.url, timeout=Timeout(connect=2.0, read=0.3))
    name = unique("slow")
    assert client.get_experiment_by_name(name) is None
    assert sleeps.calls == [0.5] and len(flaky.seen) == 2


def test_html_answer_is_not_taken_for_json(make_client: ClientFactory) -> None:
    with ScriptedServer() as portal:
        portal.script.append(Answer(200, b"<html>Please sign in</html>", {"Content-Type": "text/html"}))
        client = make_client(portal.url)
        with pytest.raises(CommError, match="not a login page"):
            client.get_experiment_by_name("x")


def test_bearer_token_is_sent_as_authorization_header(make_client: ClientFactory) -> None:
    with ScriptedServer() as capture:
        make_client(capture.url, "tok-abc").set_tag("r", "k", "v")
        make_client(capture.url, ("ada", "pw")).set_tag("r", "k", "v")
    assert capture.seen[0][2]["Authorization"] == "Bearer tok-abc"
    assert capture.seen[1][2]["Authorization"] == "Basic YWRhOnB3"


def test_host_header_refusal_is_explained(make_client: ClientFactory, mlflow_server: MlflowServer) -> None:
    with requests.Session() as odd_host:
        odd_host.headers["Host"] = "tracker.example.com"
        client = make_client(mlflow_server.url, session=odd_host)
        with pytest.raises(AuthenticationError, match="--allowed-hosts") as caught:
            client.get_experiment_by_name("x")
    assert caught.value.status == 403
    assert "Invalid Host header" in str(caught.value)


# ---- basic auth -------------------------------------------------------------------------------------------


def test_auth_missing_credentials(make_client: ClientFactory, mlflow_auth_server: MlflowServer) -> None:
    with pytest.raises(AuthenticationError, match="needs a login") as caught:
        make_client(mlflow_auth_server.url).get_experiment_by_name("Default")
    assert caught.value.status == 401
    assert isinstance(caught.value, CommError) and isinstance(caught.value, PermissionError)


def test_auth_wrong_password(make_client: ClientFactory, mlflow_auth_server: MlflowServer) -> None:
    client = make_client(mlflow_auth_server.url, (mlflow_auth_server.admin[0], "not-the-password"))
    with pytest.raises(AuthenticationError, match="Check the username and password") as caught:
        client.get_or_create_experiment(unique("auth"))
    assert caught.value.status == 401
    assert "not-the-password" not in str(caught.value)


def test_auth_bearer_token_is_refused_by_basic_auth(
    make_client: ClientFactory, mlflow_auth_server: MlflowServer
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        make_client(mlflow_auth_server.url, "some-token").get_experiment_by_name("Default")
    assert caught.value.status == 401 and "some-token" not in str(caught.value)


def test_auth_valid_credentials_work(make_client: ClientFactory, mlflow_auth_server: MlflowServer) -> None:
    user, password = mlflow_auth_server.admin
    url_with_login = mlflow_auth_server.url.replace("http://", f"http://{user}:{password}@")
    for client in (make_client(mlflow_auth_server.url, (user, password)), make_client(url_with_login)):
        experiment_id = client.get_or_create_experiment(unique("auth"))
        run = client.create_run(experiment_id, "with-login")
        assert client.log_batch(run["info"]["run_id"], [Metric("loss", 0.5, 1, 0)], {"lr": "1"}) == []
        client.upload_artifact(run["info"]["artifact_uri"], "a.txt", b"secret-free")
        assert [m.value for m in client.get_metric_history(run["info"]["run_id"], "loss")] == [0.5]


def test_auth_permission_denied_is_403(make_client: ClientFactory, mlflow_auth_server: MlflowServer) -> None:
    admin = make_client(mlflow_auth_server.url, mlflow_auth_server.admin)
    reader = (unique("reader"), "reader-password-1")
    created = requests.post(
        f"{mlflow_auth_server.url}/api/2.0/mlflow/users/create",
        json={"username": reader[0], "password": reader[1]},
        auth=mlflow_auth_server.admin,
        timeout=30,
    )
    assert created.status_code == 200, created.text
    run = admin.create_run(admin.get_or_create_experiment(unique("owned")))
    with pytest.raises(AuthenticationError, match="lacks the permission") as caught:
        make_client(mlflow_auth_server.url, reader).set_tag(run["info"]["run_id"], "k", "v")
    assert caught.value.status == 403 and "Permission denied" in str(caught.value)


# ---- the server fixture itself ------------------------------------------------------------------------


def test_server_restart_keeps_port_and_store(
    make_client: ClientFactory, mlflow_server: MlflowServer, rest: MlflowRest
) -> None:
    name = unique("restart")
    experiment_id = rest.create_experiment(name)
    with mlflow_server.stopped(kill=True):
        assert not mlflow_server.is_running
        with pytest.raises(CommError, match="connection failed"):
            make_client(mlflow_server.url).get_experiment_by_name(name)
    assert mlflow_server.is_running
    found = rest.get_experiment_by_name(name)
    assert found is not None and found["experiment_id"] == experiment_id
