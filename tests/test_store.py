"""The local store: kill -9, torn tails, several writer processes, path safety, Api and `tracker runs`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError, store
from tracker_jupyter.cli import main as cli_main

LOGGER = """
import sys, time, tracker_jupyter as tj
run = tj.init(project="crash", id="victim", dir=sys.argv[1], settings={"flush_interval": 0.2})
print(run.id, flush=True)
n = int(sys.argv[2])
for i in range(n if n > 0 else 10**9):
    run.log({"i": i, "loss": 1.0 / (i + 1)})
    if i % 5000 == 0:
        print(i, flush=True)
print("logged", flush=True)
time.sleep(600)
"""


def _spawn_logger(tmp_path: Path, store_dir: Path, steps: int) -> subprocess.Popen[str]:
    script = tmp_path / "logger.py"
    script.write_text(LOGGER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store_dir), str(steps)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "victim"
    return proc


@pytest.fixture
def spawn_logger(tmp_path: Path, store_dir: Path):
    procs: list[subprocess.Popen[str]] = []

    def spawn(steps: int) -> subprocess.Popen[str]:
        procs.append(_spawn_logger(tmp_path, store_dir, steps))
        return procs[-1]

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait()


def _kill_once_logged(proc: subprocess.Popen[str]) -> None:
    """kill -9 the logging process a flush interval after it said it logged everything."""
    assert proc.stdout is not None
    while (line := proc.stdout.readline()) and line.strip() != "logged":
        pass
    time.sleep(1.0)  # more than the 0.2 s flush interval
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_kill_9_after_logging_loses_nothing_older_than_the_flush_interval(spawn_logger, store_dir: Path):
    proc = spawn_logger(20_000)
    _kill_once_logged(proc)
    record = tj.Api(store_dir).run("crash/victim")
    assert record.state == "crashed"
    steps = [row["_step"] for row in record.scan_history()]
    assert steps == list(range(20_000))
    assert record.summary["i"] == 19_999


def test_kill_9_mid_logging_leaves_a_readable_prefix(spawn_logger, store_dir: Path):
    proc = spawn_logger(0)
    assert proc.stdout is not None
    seen = -1
    while seen < 40_000:
        seen = int(proc.stdout.readline())
    time.sleep(0.5)  # the rows up to `seen` are older than the flush interval now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    record = tj.Api(store_dir).run("victim")
    steps = [row["_step"] for row in record.scan_history()]
    assert steps == list(range(len(steps)))  # a clean prefix, no gaps, no garbage
    assert len(steps) > seen
    assert record.state == "crashed"


def test_a_torn_tail_is_ignored_not_fatal(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    for i in range(3):
        run.log({"x": i})
    run.finish()
    history = store_dir / "p" / run.id / "history.jsonl"
    with open(history, "a") as fh:
        fh.write('{"_step": 3, "x": ')  # a write cut short by a crash
    record = tj.Api(store_dir).run(run.id)
    assert [r["x"] for r in record.scan_history()] == [0, 1, 2]
    assert store.last_row(history) == list(record.scan_history())[-1]
    # and a run with a torn tail can be continued: the torn line does not count as a step, and the rows
    # logged after the resume are not glued onto it
    resumed = tj.init(project="p", dir=store_dir, id=run.id, resume="must")
    assert resumed.step == 3
    resumed.log({"x": 3})
    resumed.log({"x": 4})
    resumed.finish()
    assert [(r["_step"], r["x"]) for r in tj.Api(store_dir).run(run.id).scan_history()] == [
        (i, i) for i in range(5)
    ]


def test_a_complete_last_row_without_its_newline_is_kept(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    run.log({"x": 0})
    run.finish()
    history = store_dir / "p" / run.id / "history.jsonl"
    with open(history, "a") as fh:
        fh.write('{"_step": 1, "_timestamp": 1, "x": 1}')  # killed between the row and its newline
    resumed = tj.init(project="p", dir=store_dir, id=run.id, resume="must")
    resumed.log({"x": 2})
    resumed.finish()
    rows = tj.Api(store_dir).run(run.id).scan_history()
    assert [(r["_step"], r["x"]) for r in rows] == [(0, 0), (1, 1), (2, 2)]


def test_rows_reach_disk_while_git_is_still_answering(tmp_path: Path, store_dir: Path):
    """git facts are gathered beside the writer: a slow git must not hold rows back from the disk.

    The slow git is a stand-in (a script first on PATH that waits for a file, then runs the real git):
    a git that takes seconds cannot be made on demand here otherwise.
    """
    import shutil

    real_git = shutil.which("git")
    assert real_git is not None
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([real_git, "init", "-q", str(repo)], check=True)
    subprocess.run(
        [real_git, "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
         "--allow-empty", "-m", "first"],
        check=True,
    )  # fmt: skip
    barrier = tmp_path / "git-may-answer"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "git").write_text(
        f'#!/bin/sh\nwhile [ ! -e {barrier} ]; do sleep 0.02; done\nexec {real_git} "$@"\n'
    )
    (fake_bin / "git").chmod(0o755)
    program = repo / "train.py"
    program.write_text(
        "import sys, tracker_jupyter as tj\n"
        "run = tj.init(project='p', id='slowgit', dir=sys.argv[1], settings={'flush_interval': 0.05})\n"
        "for i in range(100): run.log({'x': i})\n"
        "print('logged', flush=True)\n"
        "sys.stdin.readline(); run.finish()\n"
    )
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [sys.executable, str(program), str(store_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=repo,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "logged"
        history = store_dir / "p" / "slowgit" / store.HISTORY
        deadline = time.monotonic() + 60
        while store.count_rows(history) < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.count_rows(history) == 100  # on disk while git has not answered yet
        assert "git" not in (store.read_json(history.parent / store.META, {}) or {})
        barrier.touch()
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    meta = tj.Api(store_dir).run("slowgit")
    assert meta.state == "finished"
    assert len((store.read_json(history.parent / store.META, {}) or {})["git"]["commit"]) == 40


def test_several_processes_write_runs_under_one_dir(tmp_path: Path, store_dir: Path):
    code = (
        "import sys, tracker_jupyter as tj\n"
        "for k in range(3):\n"
        "    with tj.init(project='shared', dir=sys.argv[1], reinit='create_new', settings={'silent': True}) as r:\n"
        "        for i in range(2000):\n"
        "            r.log({'i': i, 'who': int(sys.argv[2])})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store_dir), str(n)]) for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    runs = tj.Api(store_dir).runs("shared")
    assert len(runs) == 12 and len({r.id for r in runs}) == 12
    for record in runs:
        history = list(record.scan_history())
        assert [r["i"] for r in history] == list(range(2000))
        assert len({r["who"] for r in history}) == 1
        assert record.state == "finished"


def test_same_id_claimed_by_two_processes_at_once(tmp_path: Path, store_dir: Path):
    code = (
        "import sys, time, tracker_jupyter as tj\n"
        "try:\n"
        "    run = tj.init(project='p', id='same', dir=sys.argv[1], settings={'silent': True})\n"
        "except tj.UsageError as exc:\n"
        "    print('REFUSED', exc); sys.exit(3)\n"
        "time.sleep(1); run.finish()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(store_dir)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    codes = sorted(p.wait(timeout=60) for p in procs)
    assert codes == [0, 3, 3]


def test_no_name_can_escape_the_root(store_dir: Path):
    for bad in ("../up", "a/b", "..", "/abs"):
        with pytest.raises(UsageError):
            tj.init(project=bad, dir=store_dir)
        with pytest.raises(UsageError):
            tj.init(project="p", id=bad, dir=store_dir)
    assert not (store_dir.parent / "up").exists()


def test_metadata_is_replaced_atomically_and_no_temp_files_remain(store_dir: Path):
    run = tj.init(project="p", dir=store_dir, config={"a": 1})
    for i in range(100):
        run.log({"x": i})
        run.config.update({"b": i}, allow_val_change=True)
    run.finish()
    run_dir = store_dir / "p" / run.id
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert json.loads((run_dir / "config.json").read_text()) == {"a": 1, "b": 99}


def test_state_is_running_while_the_lock_is_held(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    assert tj.Api(store_dir).run(run.id).state == "running"
    run.finish()
    assert tj.Api(store_dir).run(run.id).state == "finished"


def test_disk_errors_keep_the_data_and_retry(store_dir: Path, capsys):
    run = tj.init(project="p", dir=store_dir, settings={"flush_interval": 0.05, "silent": True})
    run_dir = store_dir / "p" / run.id
    # A real OS error on every write: config.json replaced by a directory cannot be renamed over
    # (permissions would not do: the tests run as root).
    (run_dir / "config.json").unlink()
    (run_dir / "config.json").mkdir()
    run.config.update({"lr": 0.1})
    for i in range(10):
        run.log({"x": i})
    deadline = time.time() + 5
    while "keeping the data and retrying" not in (err := capsys.readouterr().err) and time.time() < deadline:
        time.sleep(0.05)
    assert "could not write to" in err and "keeping the data and retrying" in err
    run.log({"x": 10})  # logging goes on while the disk is failing
    (run_dir / "config.json").rmdir()
    run.finish()
    record = tj.Api(store_dir).run(run.id)
    assert [r["x"] for r in record.scan_history()] == list(range(11))
    assert record.config == {"lr": 0.1} and record.state == "finished"


# ------------------------------------------------------------------------------------------- Api


def test_api_runs_and_run_lookup(store_dir: Path):
    a = tj.init(
        project="one", dir=store_dir, tags=["t"], group="g", job_type="eval", notes="n", config={"k": 1}
    )
    a.log({"m": 1.5})
    a.finish()
    b = tj.init(project="two", dir=store_dir)
    b.finish()
    api = tj.Api(store_dir)
    assert [r.id for r in api.runs(order="-created_at")] == [b.id, a.id]  # newest first
    assert [r.id for r in api.runs()] == [a.id, b.id]  # the reference's default: oldest first
    assert [r.id for r in api.runs("one")] == [a.id]
    assert api.runs("none") == []
    record = api.run(a.id)
    assert (record.id, record.project, record.tags, record.group, record.job_type, record.notes) == (
        a.id, "one", ("t",), "g", "eval", "n",
    )  # fmt: skip
    assert record.config == {"k": 1} and record.summary == {"m": 1.5} and record.name == a.name
    assert api.run(f"one/{a.id}").id == a.id
    assert api.run(f"someone/one/{a.id}").id == a.id
    assert api.run(str(store_dir / "one" / a.id)).id == a.id
    with pytest.raises(UsageError, match="no run"):
        api.run("missing")
    rows = list(record.scan_history(keys=["m"]))
    assert rows == [{"_step": 0, "_timestamp": rows[0]["_timestamp"], "m": 1.5}]


def test_history_sampling_keeps_first_and_last(store_dir: Path):
    run = tj.init(project="p", dir=store_dir)
    for i in range(1000):
        run.log({"x": i})
    run.finish()
    sampled = tj.Api(store_dir).run(run.id).history(samples=10, pandas=False)
    assert len(sampled) == 10 and sampled[0]["x"] == 0 and sampled[-1]["x"] == 999
    window = list(tj.Api(store_dir).run(run.id).scan_history(min_step=10, max_step=13))
    assert [r["_step"] for r in window] == [10, 11, 12]


def test_api_uses_tracker_dir(store_dir: Path, monkeypatch):
    monkeypatch.setenv("TRACKER_DIR", str(store_dir))
    run = tj.init(project="p")
    run.finish()
    assert [r.id for r in tj.Api().runs()] == [run.id]


def test_cli_runs_table_and_json(store_dir: Path, capsys):
    run = tj.init(project="p", dir=store_dir, name="my-run", tags=["x"])
    run.log({"acc": 0.5})
    run.finish()
    capsys.readouterr()
    assert cli_main(["runs", "--dir", str(store_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["project", "id", "name", "state", "started", "steps", "tags"]
    assert out[1].split()[:4] == ["p", run.id, "my-run", "finished"] and out[1].split()[-2:] == ["1", "x"]
    assert cli_main(["runs", "--dir", str(store_dir), "--project", "p", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["id"] == run.id and entry["summary"] == {"acc": 0.5} and entry["state"] == "finished"
    assert cli_main(["runs", "--dir", str(store_dir), "--project", "nothing"]) == 0
    assert "no runs" in capsys.readouterr().out


def test_cli_entry_point_installed(store_dir: Path):
    tracker = Path(sys.executable).with_name("tracker")
    done = subprocess.run([str(tracker), "runs", "--dir", str(store_dir)], capture_output=True, text=True)
    assert done.returncode == 0 and "no runs under" in done.stdout


def test_cli_runs_counts_the_steps_of_runs_that_did_not_finish(spawn_logger, store_dir: Path, capsys):
    proc = spawn_logger(3000)
    _kill_once_logged(proc)
    idle = tj.init(project="crash", id="idle", dir=store_dir)  # running, nothing logged yet
    capsys.readouterr()
    assert cli_main(["runs", "--dir", str(store_dir)]) == 0
    table = {line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert table["victim"][3] == "crashed" and table["victim"][-1] == "3000"
    assert table["idle"][3] == "running" and len(table["idle"]) == 6  # ends with its start time: no steps
    idle.finish()


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_cli_runs_into_a_closed_pipe_exits_quietly(store_dir: Path, unbuffered: bool):
    run = tj.init(project="p", dir=store_dir)
    run.finish()
    meta = json.loads((store_dir / "p" / run.id / store.META).read_text())
    for i in range(2000):  # about 170 kB of table: more than a pipe holds, so the writer meets the close
        (store_dir / "p" / f"copy{i:04d}").mkdir()
        copy = {**meta, "id": f"copy{i:04d}", "name": f"copy-{i:04d}-of-a-run-with-a-long-name"}
        (store_dir / "p" / f"copy{i:04d}" / store.META).write_text(json.dumps(copy))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker_jupyter.cli", "runs", "--dir", str(store_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().split()[0] == "project"
    proc.stdout.close()  # as `head -1` does
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 1  # what Python exits with on EPIPE


def test_history_lines_are_rows_or_blocks_and_counted_exactly(tmp_path: Path):
    path = tmp_path / "history.jsonl"
    rows = [{"_step": i, "_timestamp": 1, "s": 'a "_step": b', "x": i} for i in range(5)]
    path.write_text(store.encode_rows(rows[:1]) + store.encode_rows(rows[1:4]) + store.encode_rows(rows[4:]))
    assert path.read_text().count("\n") == 3  # a row, a block of three, a row
    assert list(store.iter_history(path)) == rows
    assert store.last_row(path) == rows[-1]
    assert store.count_rows(path) == 5  # the text inside a string value is escaped, so it is not counted
    first_line = len(path.read_text().splitlines()[0]) + 1
    assert store.count_rows(path, first_line) == 4
    assert [len(r) for r, _ in store.iter_lines(path, first_line)] == [3, 1]
    with open(path, "a") as fh:
        fh.write(store.encode_rows(rows[:3])[:-10])  # a block cut short by a crash
    assert list(store.iter_history(path)) == rows and store.count_rows(path) == 5
    big = [{"_step": i, "v": i} for i in range(store.BLOCK_ROWS + 5)]
    assert store.encode_rows(big).count("\n") == 2
