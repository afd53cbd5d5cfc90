"""A team's sync: many concurrent writers against one PostgreSQL-backed MLflow server, side by side.

    python bench/team_sync.py [--writers 32] [--steps 2000] [--workers 2] [--fluent-steps 100]

Starts Debian's PostgreSQL on 127.0.0.1 (``scripts/install-postgres.sh`` installs it) and an
``mlflow server`` on it (``--workers``, the database pool sized above the writers per worker), then runs,
one after another against that server, ``--writers`` processes at once of each of:

- raw: ``runs/log-batch`` requests of 1000 points sent with ``requests``: the server's ingest capacity;
- MlflowClient.log_batch: MLflow's own client, 1000 points a call;
- mlflow fluent per step: ``mlflow.log_metrics(m, step=i)`` once per step, as training code calls it
  (``--fluent-steps`` steps: it is slow; the rate is what counts);
- ours: ``tracker_jupyter.init()`` online with the default ``sync_timeout``, ``log()`` per step,
  ``finish()``; what ``finish()`` could not send in time goes to the background uploader, so the run
  counts as done when MLflow's client reads it back FINISHED with every point.

Every writer of a kind starts at one signal (a file appearing) after its imports and run creation, so the
rate is points over the time from that signal to the last run complete on the server. Every run is read
back with MLflow's own client: missing and duplicated points are counted per writer.

Targets (issue: sync at team scale): every run of ours FINISHED on the server with every point and nothing
run by hand, 0 missing, 0 duplicated, ``finish()`` ≤ ``sync_timeout`` in every writer, aggregate rate
≥ 0.8× raw measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.mlflow_server import MlflowServer  # noqa: E402 - the same servers the tests start
from tests.support.postgres import PostgresServer, binaries  # noqa: E402

KEYS = ("loss", "acc", "lr", "grad", "tokens")
BATCH = 1000

# Each writer: set up (imports, run), write its name to READY, wait for GO, write, print one JSON line.
_PRELUDE = """
import json, os, sys, time
from pathlib import Path
KEYS, STEPS, GO, READY = {keys!r}, {steps}, Path({go!r}), Path({ready!r})
def wait_for_go():
    READY.joinpath(str(os.getpid())).touch()
    while not GO.exists():
        time.sleep(0.002)
"""

_RAW = """
import requests
session = requests.Session()
api = {url!r} + "/api/2.0/mlflow"
exp = session.get(api + "/experiments/get-by-name", params={{"experiment_name": {project!r}}}).json()
run = session.post(api + "/runs/create", json={{"experiment_id": exp["experiment"]["experiment_id"]}}).json()
run_id = run["run"]["info"]["run_id"]
now = int(time.time() * 1000)
points = [{{"key": k, "value": float(i), "timestamp": now + i, "step": i}} for i in range(STEPS) for k in KEYS]
wait_for_go()
start = time.time()
cpu = time.process_time()
for offset in range(0, len(points), {batch}):
    answer = session.post(api + "/runs/log-batch", json={{"run_id": run_id, "metrics": points[offset:offset + {batch}]}})
    answer.raise_for_status()
session.post(api + "/runs/update", json={{"run_id": run_id, "status": "FINISHED"}}).raise_for_status()
print(json.dumps({{"run_id": run_id, "start": start, "end": time.time(), "cpu": time.process_time() - cpu}}))
"""

_CLIENT = """
from mlflow import MlflowClient
from mlflow.entities import Metric
client = MlflowClient(tracking_uri={url!r})
run_id = client.create_run(client.get_experiment_by_name({project!r}).experiment_id).info.run_id
now = int(time.time() * 1000)
points = [Metric(k, float(i), now + i, i) for i in range(STEPS) for k in KEYS]
wait_for_go()
start = time.time()
cpu = time.process_time()
for offset in range(0, len(points), {batch}):
    client.log_batch(run_id, metrics=points[offset:offset + {batch}])
client.set_terminated(run_id)
print(json.dumps({{"run_id": run_id, "start": start, "end": time.time(), "cpu": time.process_time() - cpu}}))
"""

_FLUENT = """
import mlflow
mlflow.set_tracking_uri({url!r})
mlflow.set_experiment({project!r})
run = mlflow.start_run()
wait_for_go()
start = time.time()
cpu = time.process_time()
for i in range(STEPS):
    mlflow.log_metrics({{k: float(i) for k in KEYS}}, step=i)
mlflow.end_run()
print(json.dumps({{"run_id": run.info.run_id, "start": start, "end": time.time(), "cpu": time.process_time() - cpu}}))
"""

_OURS = """
os.environ["TRACKER_BASE_URL"] = {url!r}
import tracker_jupyter as tj
run = tj.init(project={project!r}, dir={store!r}, settings={{"silent": True}})
wait_for_go()
start = time.time()
cpu = time.process_time()
for i in range(STEPS):
    run.log({{k: float(i) for k in KEYS}})
logged = time.time()
run.finish()
end = time.time()
from tracker_jupyter.online.syncer import pending_rows
left = pending_rows(run.run_dir)  # rows finish() left to the background uploader
print(json.dumps({{"tracker_id": run.id, "start": start, "logged": logged, "end": end, "left": left, "cpu": time.process_time() - cpu}}))
"""


def run_writers(
    kind: str, body: str, writers: int, steps: int, extra_env: dict[str, str] | None = None, **fields: Any
) -> tuple[list[dict], float]:
    """Start ``writers`` processes of ``body``, give the signal once all are ready; their JSON lines and
    the signal's time."""
    with tempfile.TemporaryDirectory(prefix=f"team-{kind}-") as folder:
        go, ready = Path(folder) / "go", Path(folder) / "ready"
        ready.mkdir()
        code = textwrap.dedent(_PRELUDE).format(keys=KEYS, steps=steps, go=str(go), ready=str(ready))
        code += textwrap.dedent(body).format(batch=BATCH, **fields)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKER_", "MLFLOW_"))}
        env.update(extra_env or {})
        pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        procs = [subprocess.Popen([sys.executable, "-c", code], env=env, **pipes) for _ in range(writers)]
        deadline = time.monotonic() + 300
        while len(list(ready.iterdir())) < writers:
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{kind}: a writer did not get ready: {dead[0].communicate()[1] if dead else ''}"
                )
            time.sleep(0.05)
        signal = time.time()
        go.touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=3600)
            if proc.returncode != 0:
                raise RuntimeError(f"{kind}: a writer failed:\n{err[-3000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    return results, signal


def check(client: Any, run_id: str, steps: int) -> tuple[str, int, int]:
    """The run's status on the server, and its missing and duplicated points."""
    missing = duplicated = 0
    for key in KEYS:
        seen = [m.step for m in client.get_metric_history(run_id, key)]
        missing += len(set(range(steps)) - set(seen))
        duplicated += len(seen) - len(set(seen))
    return client.get_run(run_id).info.status, missing, duplicated


def complete_on_server(client: Any, experiment_id: str, tracker_ids: list[str]) -> dict[str, str]:
    """Wait until each of our runs is FINISHED on the server (its end state is sent after its last row);
    the MLflow run id of each. One search request a poll, so the polling hardly loads the server."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + 3600
    while True:
        for run in client.search_runs([experiment_id], max_results=1000):
            tracker_id = run.data.tags.get("tracker.id")
            if tracker_id in tracker_ids and run.info.status == "FINISHED":
                found[tracker_id] = run.info.run_id
        if len(found) == len(tracker_ids):
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(found)} of {len(tracker_ids)} runs complete on the server")
        time.sleep(0.2)


def measure(kind: str, body: str, args: argparse.Namespace, server: MlflowServer, steps: int) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.url)
    project = f"{kind}-{uuid.uuid4().hex[:6]}"
    experiment_id = client.create_experiment(project)
    with tempfile.TemporaryDirectory(prefix="team-store-") as store:
        results, signal = run_writers(
            kind, body, args.writers, steps, url=server.url, project=project, store=store
        )
        row: dict[str, Any] = {"kind": kind, "steps": steps}
        if kind == "ours":
            ids = [r["tracker_id"] for r in results]
            run_ids = complete_on_server(client, experiment_id, ids)
            done = time.time()
            row["finish_max"] = max(r["end"] - r["logged"] for r in results)
            row["in_finish"] = sum(1 for r in results if r["left"] == 0)
            row["left"] = sum(r["left"] for r in results) / (args.writers * steps)
            mlflow_ids = list(run_ids.values())
        else:
            done = max(r["end"] for r in results)
            mlflow_ids = [r["run_id"] for r in results]
    checked = [check(client, run_id, steps) for run_id in mlflow_ids]
    row["finished"] = sum(1 for status, _, _ in checked if status == "FINISHED")
    row["missing"] = sum(m for _, m, _ in checked)
    row["duplicated"] = sum(d for _, _, d in checked)
    row["cpu"] = sum(r["cpu"] for r in results) / (args.writers * steps * len(KEYS)) * 1e6
    row["rate"] = args.writers * steps * len(KEYS) / (done - signal)
    row["seconds"] = done - signal
    print(f"  {kind}: {row['rate']:,.0f} points/s in {row['seconds']:.1f} s", file=sys.stderr)
    return row


def report(rows: list[dict], args: argparse.Namespace) -> str:
    raw = rows[0]["rate"]
    lines = [
        f"{args.writers} writers x {args.steps} steps x {len(KEYS)} metrics, MLflow on PostgreSQL "
        f"({args.workers} workers), load average {os.getloadavg()[0]:.1f}",
        "",
        "| client | steps | points/s | vs raw | runs FINISHED | missing | duplicated | writer CPU/point |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['kind']} | {row['steps']} | {row['rate']:,.0f} | {row['rate'] / raw:.2f}x "
            f"| {row['finished']}/{args.writers} | {row['missing']} | {row['duplicated']} | {row['cpu']:.1f} µs |"
        )
    ours = rows[-1]
    met = (
        ours["finished"] == args.writers and ours["missing"] == 0 and ours["duplicated"] == 0
        and ours["finish_max"] <= 30.0 and ours["rate"] >= 0.8 * raw
    )  # fmt: skip
    lines += [
        "",
        f"ours: longest finish() {ours['finish_max']:.1f} s (sync_timeout 30 s); "
        f"{ours['in_finish']} of {args.writers} runs sent everything within finish(), "
        f"the background uploader sent the rest ({ours['left']:.0%} of all rows)",
        f"target: every run FINISHED, 0 missing, 0 duplicated, finish() <= sync_timeout, >= 0.8x raw "
        f"-> {'met' if met else 'NOT met'}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fluent-steps", type=int, default=100)
    parser.add_argument(
        "--concurrency", type=int, help="ours: TRACKER_SYNC_CONCURRENCY (default: the setting's)"
    )
    parser.add_argument("--only", default="raw,client,fluent,ours", help="comma-separated kinds; raw first")
    args = parser.parse_args()
    if binaries() is None:
        sys.exit(
            "PostgreSQL's server is missing: run scripts/install-postgres.sh (apt-get install postgresql)"
        )
    pool = str(args.writers // args.workers + 8)  # above the concurrent writers per worker
    postgres = PostgresServer()
    postgres.start()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="team-mlflow-") as folder:
            server = MlflowServer(
                Path(folder), backend_store_uri=postgres.database("mlflow"), workers=args.workers,
                env={"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": pool, "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": pool},
            )  # fmt: skip
            server.start()
            try:
                kinds = {
                    "raw": (_RAW, args.steps),
                    "client": (_CLIENT, args.steps),
                    "fluent": (_FLUENT, args.fluent_steps),
                    "ours": (_OURS, args.steps),
                }
                for kind in args.only.split(","):
                    body, steps = kinds[kind]
                    rows.append(measure(kind, body, args, server, steps))
            finally:
                server.stop()
    finally:
        postgres.stop()
    names = {"raw": "raw log-batch (requests)", "client": "MlflowClient.log_batch",
             "fluent": "mlflow.log_metrics per step", "ours": "tracker_jupyter online"}  # fmt: skip
    for row in rows:
        row["kind"] = names[row["kind"]]
    if rows and rows[-1]["kind"] == names["ours"]:
        print("\n" + report(rows, args))
    else:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
