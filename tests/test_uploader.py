"""Sync at team scale, against a real MLflow server: the background uploader that finishes after the run's
process ends (or is killed), the per-run lock, the cursor after a kill, parallel `tracker sync`, and the
adaptive limit that backs off when the server says it is full."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

import tracker_jupyter as tj
from tests.conftest import run_script
from tests.support.mlflow_server import MlflowServer
from tracker_jupyter.online import upload, uploader
from tracker_jupyter.online.rest.client import Credentials
from tracker_jupyter.online.rest.errors import is_overload
from tracker_jupyter.online.rest.limiter import AdaptiveLimit

from .test_rest import Answer, ScriptedServer
from .test_sync import history as points
from .test_sync import mlflow_run, unique

TRACKER = Path(sys.executable).with_name("tracker")
POOL_FULL = json.dumps({
    "error_code": "BAD_REQUEST",
    "message": "(sqlalchemy.exc.TimeoutError) QueuePool limit of size 5 overflow 10 reached, connection timed "
    "out, timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)",
}).encode()  # fmt: skip


class CountingProxy(ScriptedServer):
    """Forwards to the server; counts the logged points (not system metrics) of every log-batch it forwards, the requests in
    flight at once, and can hold each log-batch ``delay`` seconds or answer some as a full database pool."""

    def __init__(self, upstream: str, *, delay: float = 0.0, pool_full: int = 0) -> None:
        super().__init__(upstream=upstream)
        self.delay = delay
        self.pool_full = pool_full  # this many log-batch requests, sent while another is in flight, refused
        self.points = 0
        self.batches = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.refused = 0
        self.count_lock = threading.Lock()

    def _forward(self, method: str, path: str, body: bytes, content_type: str | None) -> Answer:
        if "runs/log-batch" not in path:
            return super()._forward(method, path, body, content_type)
        with self.count_lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            refuse = self.refused < self.pool_full and self.in_flight > 1
            if refuse:
                self.refused += 1
        try:
            if refuse:
                return Answer(400, POOL_FULL, {"Content-Type": "application/json"})
            time.sleep(self.delay)
            answer = super()._forward(method, path, body, content_type)
            if answer.status == 200:
                with self.count_lock:
                    metrics = json.loads(body).get("metrics") or []
                    self.points += sum(not m["key"].startswith("system/") for m in metrics)
                    self.batches += 1
            return answer
        finally:
            with self.count_lock:
                self.in_flight -= 1


def offline_run(store: Path, project: str, rows: int, keys: tuple[str, ...] = ("a", "b")) -> Path:
    run = tj.init(project=project, dir=store, mode="offline")
    for i in range(rows):
        run.log({key: i for key in keys})
    run.finish()
    assert run.run_dir is not None
    return run.run_dir


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def uploaded(client: Any, project: str, run_id: str, key: str, rows: int) -> bool:
    try:
        found = mlflow_run(client, project, run_id)
    except (AssertionError, ValueError):
        return False
    return found.info.status == "FINISHED" and len(client.get_metric_history(found.info.run_id, key)) == rows


def uploader_log(store: Path) -> str:
    path = store / ".sync" / uploader.LOG
    return path.read_text() if path.is_file() else ""


# ------------------------------------------------------------------------------ pure parts


def test_adaptive_limit_halves_on_overload_and_grows_back_one_at_a_time() -> None:
    gate = AdaptiveLimit(8, cut_every=0.0)
    gate.overloaded()
    assert gate.limit == 4
    gate.overloaded()
    gate.overloaded()
    gate.overloaded()
    assert gate.limit == 1 and gate.cuts == 4  # never below one request
    gate.accepted()
    assert gate.limit == 2  # +1/limit per accepted request: one more slot per limit's worth of them
    for _ in range(3):
        gate.accepted()
    assert gate.limit == 3
    for _ in range(100):
        gate.accepted()
    assert gate.limit == 8  # never above the setting
    with pytest.raises(ValueError, match="at least 1"):
        AdaptiveLimit(0)


def test_adaptive_limit_bounds_the_requests_in_flight() -> None:
    gate = AdaptiveLimit(3)
    now, most = [0], [0]
    lock = threading.Lock()

    def request() -> None:
        with gate.slot():
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            time.sleep(0.02)
            with lock:
                now[0] -= 1

    threads = [threading.Thread(target=request) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 3


def test_a_full_database_pool_counts_as_overload_other_400s_do_not() -> None:
    def answer(status: int, body: bytes) -> requests.Response:
        response = requests.Response()
        response.status_code, response._content = status, body
        return response

    assert is_overload(answer(400, POOL_FULL))
    assert is_overload(answer(429, b"")) and is_overload(answer(503, b""))
    assert not is_overload(answer(400, b'{"error_code": "INVALID_PARAMETER_VALUE", "message": "bad key"}'))
    assert not is_overload(answer(500, b"")) and not is_overload(answer(200, b"{}"))


# ------------------------------------------------------------------------------ the uploader


def test_finish_hands_the_rest_to_an_uploader_that_finishes_after_the_script_exits(
    mlflow_server: MlflowServer, mlflow_client: Any, tmp_path: Path
) -> None:
    project = unique("handoff")
    with CountingProxy(mlflow_server.url, delay=0.1) as proxy:
        done = run_script(
            "import tracker_jupyter as tj\n"
            f"run = tj.init(project={project!r}, dir='store', settings={{'sync_timeout': 0.5}})\n"
            "for i in range(6000):\n"
            "    run.log({'a': i, 'b': -i})\n"
            "run.finish()\n"
            "print('RUN', run.id, run.parts.sync_status().get('uploader'))\n",
            tmp_path, env={"TRACKER_BASE_URL": proxy.url},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        run_id, pid = done.stdout.split()[1:3]
        assert "the background uploader (pid" in done.stderr and "tracker sync --status" in done.stderr
        store = tmp_path / "store"
        wait_until(lambda: uploaded(mlflow_client, project, run_id, "b", 6000), 120, "the uploader's sync")
        # each point once, but for the one request the exiting script may have had in flight
        assert 12000 <= proxy.points <= 13000
    found = mlflow_run(mlflow_client, project, run_id)
    assert points(mlflow_client, found.info.run_id, "a") == [(i, float(i)) for i in range(6000)]
    wait_until(lambda: uploader.uploader_lock(store, proxy.url).holder() is None, 30, "the uploader to exit")
    assert uploader.read_entries(store) == []  # the queue is empty once the run is on the server
    assert f"[{pid}]" in uploader_log(store) and "queue empty; exiting" in uploader_log(store)
    [row] = upload.status_rows([str(store)])
    assert row["pending"] == 0 and row["final_state_sent"] == "FINISHED" and row["uploader"] is None


def test_the_uploader_survives_a_kill_9_of_the_run_s_process(
    mlflow_server: MlflowServer, mlflow_client: Any, tmp_path: Path
) -> None:
    project = unique("kill9")
    with CountingProxy(mlflow_server.url, delay=0.2) as proxy:
        done = run_script(
            "import os, signal, sys\n"
            "import tracker_jupyter as tj\n"
            f"run = tj.init(project={project!r}, dir='store', settings={{'sync_timeout': 0}})\n"
            "for i in range(10000):\n"
            "    run.log({'a': i, 'b': i})\n"
            "run.finish()\n"
            "print('RUN', run.id, run.parts.sync_status().get('uploader'), flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            tmp_path, env={"TRACKER_BASE_URL": proxy.url},
        )  # fmt: skip
        assert done.returncode == -signal.SIGKILL, done.stderr
        run_id, pid = done.stdout.split()[1:3]
        os.kill(int(pid), 0)  # the uploader is alive after its parent was killed
        assert proxy.batches < 20  # and it had work left: 20 requests of 1000 points, 0.2 s each
        wait_until(lambda: uploaded(mlflow_client, project, run_id, "b", 10000), 120, "the uploader's sync")
        assert 20000 <= proxy.points <= 21000  # and the one request the killed script had in flight
    found = mlflow_run(mlflow_client, project, run_id)
    assert points(mlflow_client, found.info.run_id, "b") == [(i, float(i)) for i in range(10000)]


def test_two_uploaders_and_tracker_sync_never_send_the_same_rows(
    mlflow_server: MlflowServer, mlflow_client: Any, store_dir: Path
) -> None:
    project = unique("twice")
    run_dirs = [offline_run(store_dir, project, 3000) for _ in range(2)]
    with CountingProxy(mlflow_server.url, delay=0.05) as proxy:
        first = uploader.hand_off(run_dirs[0], proxy.url, Credentials())
        uploader.hand_off(run_dirs[1], proxy.url, Credentials())
        assert first is not None
        second = subprocess.Popen(
            [sys.executable, "-m", "tracker_jupyter.online.uploader", str(store_dir), proxy.url],
            stdin=subprocess.PIPE, text=True,
        )  # fmt: skip
        by_hand = subprocess.Popen(
            [str(TRACKER), "sync", "--base-url", proxy.url, *map(str, run_dirs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        second.communicate("{}", timeout=120)
        _, told = by_hand.communicate(timeout=120)
        assert by_hand.returncode == 0, told
        wait_until(lambda: uploader.uploader_lock(store_dir, proxy.url).holder() is None, 60, "uploader exit")
        assert second.returncode == 0
        assert proxy.points == 2 * 3000 * 2  # each point once, whoever sent it
    for run_dir in run_dirs:
        found = mlflow_run(mlflow_client, project, run_dir.name)
        assert found.info.status == "FINISHED"
        assert points(mlflow_client, found.info.run_id, "a") == [(i, float(i)) for i in range(3000)]
    assert uploader_log(store_dir).count("uploading the queue") >= 1
    assert uploader.read_entries(store_dir) == []


def test_the_cursor_after_a_kill_mid_pass_resends_at_most_one_request(
    mlflow_server: MlflowServer, mlflow_client: Any, store_dir: Path
) -> None:
    project = unique("killpass")
    run_dir = offline_run(store_dir, project, 10000)  # 20000 points: 20 requests of 1000
    with CountingProxy(mlflow_server.url, delay=0.2) as proxy:
        syncing = subprocess.Popen(
            [str(TRACKER), "sync", "--base-url", proxy.url, str(run_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: proxy.batches >= 5, 60, "five requests through")
        syncing.send_signal(signal.SIGKILL)
        syncing.wait(timeout=10)
        time.sleep(0.5)  # a request the killed process had in flight reaches the server or not
        sent_before = proxy.points
        state = json.loads((run_dir / "sync.json").read_text())
        assert 0 <= sent_before - 2 * state["rows"] <= 1000  # the cursor is behind by one request at most
        [row] = upload.status_rows([str(run_dir)])
        assert row["pending"] == 10000 - state["rows"] > 0
        assert upload.sync_paths([str(run_dir)], base_url=proxy.url) == 1
        assert proxy.points - 20000 <= 1000  # what was re-sent: that one request
    found = mlflow_run(mlflow_client, project, run_dir.name)
    assert points(mlflow_client, found.info.run_id, "b") == [(i, float(i)) for i in range(10000)]


# ------------------------------------------------------------------------------ parallel `tracker sync`


def test_tracker_sync_sends_runs_in_parallel_within_the_limit(
    mlflow_server: MlflowServer, mlflow_client: Any, store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = unique("parallel")
    run_dirs = [offline_run(store_dir, project, 2000, keys=("a", "b", "c")) for _ in range(6)]
    with CountingProxy(mlflow_server.url, delay=0.05) as proxy:
        assert upload.sync_paths([str(store_dir / project)], base_url=proxy.url, jobs=3) == 6
        assert 2 <= proxy.most_in_flight <= 3
        assert proxy.points == 6 * 2000 * 3
    out = capsys.readouterr().err
    assert out.count("rows sent →") == 6 and " runs, " in out  # a line per run, and the overall bar
    for run_dir in run_dirs:
        found = mlflow_run(mlflow_client, project, run_dir.name)
        assert found.info.status == "FINISHED"
        assert points(mlflow_client, found.info.run_id, "c") == [(i, float(i)) for i in range(2000)]
    with pytest.raises(tj.UsageError, match="--jobs"):
        upload.sync_paths([str(store_dir)], base_url=mlflow_server.url, jobs=0)


def test_a_full_server_lowers_the_requests_in_flight_and_loses_nothing(
    mlflow_server: MlflowServer, mlflow_client: Any, store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = unique("pool")
    run_dirs = [offline_run(store_dir, project, 2000) for _ in range(4)]
    with CountingProxy(mlflow_server.url, delay=0.05, pool_full=4) as proxy:
        assert upload.sync_paths([str(store_dir / project)], base_url=proxy.url, jobs=4) == 4
        assert proxy.refused == 4  # the pool-timeout answers came, and were retried
        assert proxy.points == 4 * 2000 * 2
    assert "The server said it was full" in capsys.readouterr().err
    for run_dir in run_dirs:
        found = mlflow_run(mlflow_client, project, run_dir.name)
        assert points(mlflow_client, found.info.run_id, "a") == [(i, float(i)) for i in range(2000)]


def test_tracker_sync_status_says_what_is_left_per_run(
    mlflow_server: MlflowServer, store_dir: Path, tmp_path: Path
) -> None:
    project = unique("status")
    run_dir = offline_run(store_dir, project, 40)
    env = {**os.environ, "TRACKER_DIR": str(store_dir)}
    before = subprocess.run([str(TRACKER), "sync", "--status"], capture_output=True, text=True, env=env)
    assert before.returncode == 0, before.stderr
    assert f"{project}/{run_dir.name}: finished, 40 rows pending; never synced (offline run)" in before.stdout
    assert f"send with: tracker sync {run_dir}" in before.stdout
    assert upload.sync_paths([str(run_dir)], base_url=mlflow_server.url) == 1
    after = subprocess.run(
        [str(TRACKER), "sync", "--status", "--json"], capture_output=True, text=True, env=env
    )
    [row] = json.loads(after.stdout)
    assert row["pending"] == 0 and row["synced"] == 40 and row["final_state_sent"] == "FINISHED"
    assert row["server"] == mlflow_server.url and row["uploader"] is None
