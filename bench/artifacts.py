"""Logging and downloading a directory artifact: ours, wandb (offline) and MLflow (local file store), each in
a fresh process, with the page cache dropped from none of them (every contender reads the same warm files).

    .bench-venv/bin/python bench/artifacts.py [--files 1000] [--mb 1024] [--only ours]

For each contender: seconds and peak RSS of the first ``log_artifact`` of the directory (to its store, up
to ``finish()``), of a second log of the same unchanged directory (a new run), and of a download of the
logged version from its local store. Ratios are theirs over ours.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

COMMON = """
import json, os, resource, sys, time
data, work, phase = sys.argv[1], sys.argv[2], sys.argv[3]
os.chdir(work)
"""

OURS = """
import tracker_jupyter as tj
started = time.perf_counter()
run = tj.init(project="bench", dir=os.path.join(work, "store"), mode="offline", settings={"silent": True})
if phase == "download":
    path = run.use_artifact("data:latest").download(os.path.join(work, "out"))
else:
    artifact = tj.Artifact("data", type="dataset")
    artifact.add_dir(data)
    run.log_artifact(artifact)
run.finish()
"""

WANDB = """
os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=work, WANDB_CACHE_DIR=os.path.join(work, "cache"),
                  WANDB_DATA_DIR=os.path.join(work, "data-dir"))
import wandb
started = time.perf_counter()
run = wandb.init(project="bench")
if phase == "download":
    sys.exit(3)  # offline wandb refuses use_artifact(): there is nothing to download from
else:
    artifact = wandb.Artifact("data", type="dataset")
    artifact.add_dir(data)
    run.log_artifact(artifact)
run.finish()
"""

MLFLOW = """
import mlflow
mlflow.set_tracking_uri("sqlite:///" + os.path.join(work, "mlflow.db"))  # its file store is retired
started = time.perf_counter()
if phase == "download":
    client = mlflow.MlflowClient()
    [exp] = [e for e in client.search_experiments() if e.name == "bench"]
    first = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])[0]
    mlflow.artifacts.download_artifacts(run_id=first.info.run_id, artifact_path="data", dst_path=os.path.join(work, "out"))
else:
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        mlflow.log_artifacts(data, artifact_path="data")
"""

REPORT = """
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CONTENDERS = {"ours": OURS, "wandb": WANDB, "mlflow": MLFLOW}


def make_data(folder: Path, files: int, total_mb: int) -> None:
    size = total_mb * (1 << 20) // files
    block = os.urandom(1 << 20)
    for i in range(files):
        path = folder / f"part-{i // 100:02d}" / f"shard-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(i.to_bytes(8, "little"))  # every file differs
            left = size - 8
            while left > 0:
                fh.write(block[: min(left, len(block))])
                left -= len(block)


def measure(name: str, data: Path, work: Path, phase: str) -> dict[str, float] | None:
    os.sync()  # the previous phase's writes are on disk: no contender pays for another's writeback
    code = textwrap.dedent(COMMON) + textwrap.dedent(CONTENDERS[name]) + textwrap.dedent(REPORT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code, str(data), str(work), phase],
                          capture_output=True, text=True, env=env, timeout=3600)  # fmt: skip
    if done.returncode == 3:
        return {"n/a": 1.0}
    if done.returncode != 0:
        print(f"{name} {phase} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--only", choices=sorted(CONTENDERS), action="append")
    args = parser.parse_args()
    names = args.only or list(CONTENDERS)
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as tmp:
        data = Path(tmp) / "data"
        make_data(data, args.files, args.mb)
        results: dict[str, dict[str, dict[str, float] | None]] = {}
        for name in names:
            work = Path(tmp) / name
            work.mkdir()
            results[name] = {
                phase: measure(name, data, work, phase) for phase in ("first", "again", "download")
            }
    print(f"\n{args.files} files, {args.mb} MiB in all; seconds (peak RSS MB) per phase, fresh processes\n")
    print("| | first log | same directory again | download from the local store |")
    print("|---|---|---|---|")
    for name in names:
        cells = []
        for phase in ("first", "again", "download"):
            got = results[name][phase]
            ours = results.get("ours", {}).get(phase)
            if got is None or "n/a" in got:
                cells.append("failed" if got is None else "n/a (offline: no use_artifact)")
                continue
            ratio = f", {got['seconds'] / ours['seconds']:.1f}×" if ours and name != "ours" else ""
            cells.append(f"{got['seconds']:.2f} s ({got['rss_mb']:.0f} MB){ratio}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
