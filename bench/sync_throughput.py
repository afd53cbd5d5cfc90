"""Sync throughput to a local MLflow server: ours vs the server's raw log-batch rate vs MLflow's client.

    python bench/sync_throughput.py [--steps 100000] [--fluent-steps 2000]

Starts one ``mlflow server`` (sqlite backend) on 127.0.0.1 and measures, against it, in this order:

- raw: ``runs/log-batch`` requests of 1000 metric points sent with ``requests`` — what the server can
  ingest at best;
- mlflow-batch: ``MlflowClient.log_batch`` with 1000 points a call;
- mlflow-fluent-async: ``mlflow.log_metrics(..., synchronous=False)`` once per step (fewer steps: it is
  slow; the rate is what counts);
- ours: ``init(mode="online")``, ``log()`` per step, ``finish()`` waiting for the sync — points per second
  from the first log() to the end of finish(), and the median cost of ``log()`` while syncing.

Target (issue: online mode): ours ≥ 0.9x raw, with ``log()`` cost unchanged during sync.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.mlflow_server import MlflowServer  # noqa: E402 - the same server the tests start

METRICS = ("loss", "acc", "lr")


def raw(url: str, steps: int) -> float:
    import requests

    session = requests.Session()
    api = f"{url}/api/2.0/mlflow"
    exp = session.post(f"{api}/experiments/create", json={"name": f"raw-{uuid.uuid4().hex[:6]}"}).json()
    run = session.post(f"{api}/runs/create", json={"experiment_id": exp["experiment_id"]}).json()["run"]
    run_id = run["info"]["run_id"]
    now = int(time.time() * 1000)
    points = [
        {"key": k, "value": float(i), "timestamp": now + i, "step": i} for i in range(steps) for k in METRICS
    ]
    start = time.perf_counter()
    for offset in range(0, len(points), 1000):
        answer = session.post(
            f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": points[offset : offset + 1000]}
        )
        answer.raise_for_status()
    return len(points) / (time.perf_counter() - start)


def mlflow_batch(url: str, steps: int) -> float:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=url)
    exp = client.create_experiment(f"client-{uuid.uuid4().hex[:6]}")
    run_id = client.create_run(exp).info.run_id
    now = int(time.time() * 1000)
    points = [Metric(k, float(i), now + i, i) for i in range(steps) for k in METRICS]
    start = time.perf_counter()
    for offset in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[offset : offset + 1000])
    return len(points) / (time.perf_counter() - start)


def mlflow_fluent_async(url: str, steps: int) -> float:
    import mlflow

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment(f"fluent-{uuid.uuid4().hex[:6]}")
    start = time.perf_counter()
    with mlflow.start_run():
        for i in range(steps):
            mlflow.log_metrics({k: float(i) for k in METRICS}, step=i, synchronous=False)
    return steps * len(METRICS) / (time.perf_counter() - start)


def ours(url: str, steps: int) -> tuple[float, float]:
    os.environ["TRACKER_BASE_URL"] = url
    import tracker_jupyter as tj

    with tempfile.TemporaryDirectory() as store:
        run = tj.init(
            project=f"ours-{uuid.uuid4().hex[:6]}", dir=store, settings={"silent": True, "sync_timeout": 600}
        )
        clock = time.perf_counter_ns
        costs = []
        start = time.perf_counter()
        for i in range(steps):
            before = clock()
            run.log({"loss": float(i), "acc": float(i), "lr": float(i)})
            costs.append(clock() - before)
        run.finish()
        elapsed = time.perf_counter() - start
    return steps * len(METRICS) / elapsed, statistics.median(costs) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--fluent-steps", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = MlflowServer(Path(folder))
        server.start()
        try:
            rows = [("raw log-batch (requests)", raw(server.url, args.steps), None)]
            rows.append(("MlflowClient.log_batch", mlflow_batch(server.url, args.steps), None))
            rows.append(("mlflow fluent async", mlflow_fluent_async(server.url, args.fluent_steps), None))
            rate, log_us = ours(server.url, args.steps)
            rows.append(("tracker_jupyter online", rate, log_us))
        finally:
            server.stop()
    base = rows[0][1]
    print(f"\nsync of {args.steps} steps x {len(METRICS)} metrics to a local MLflow server\n")
    print("| client | points/s | vs raw | log() median |")
    print("|---|---|---|---|")
    for name, rate, log_us in rows:
        cost = f"{log_us:.2f} µs" if log_us is not None else "—"
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {cost} |")
    print(f"\ntarget: ours ≥ 0.9x raw → {'met' if rows[-1][1] >= 0.9 * base else 'NOT met'}")


if __name__ == "__main__":
    main()
