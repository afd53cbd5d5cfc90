"""Run lifecycle: reinit, resume, resume_from (rewind), fork_from, crash recovery."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tracker_jupyter as tj
from tracker_jupyter import UsageError, store

from .conftest import run_script


def steps(api: tj.Api, run_id: str, key: str = "x") -> list[tuple[int, object]]:
    return [(r["_step"], r.get(key)) for r in api.run(run_id).scan_history()]


def logged(run: tj.Run, n: int, start: int = 0) -> tj.Run:
    for i in range(start, start + n):
        run.log({"x": i})
    return run


# ------------------------------------------------------------------------------------------ reinit


def test_reinit_finish_previous(store_dir: Path):
    first = tj.init(project="p", dir=store_dir)
    second = tj.init(project="p", dir=store_dir, reinit="finish_previous")
    assert first.state == "finished" and tj.run is second and second is not first
    third = tj.init(project="p", dir=store_dir, reinit=True)
    assert second.state == "finished" and tj.run is third


def test_reinit_return_previous(store_dir: Path):
    first = tj.init(project="p", dir=store_dir)
    assert tj.init(project="p", dir=store_dir, reinit="return_previous") is first
    assert tj.init(project="other", dir=store_dir, reinit=False) is first
    assert first.state == "running" and len(tj.Api(store_dir).runs()) == 1


def test_reinit_default_is_return_previous_in_a_script(tmp_path: Path):
    code = (
        "import tracker_jupyter as tj\n"
        "a = tj.init(project='p', dir='s')\n"
        "b = tj.init(project='p', dir='s')\n"
        "print(a is b, a.state)\n"
    )
    done = run_script(code, tmp_path)
    assert done.stdout.split() == ["True", "running"], done.stderr
    assert "still active; returning it" in done.stderr


def test_reinit_create_new_runs_side_by_side(store_dir: Path):
    first = tj.init(project="p", dir=store_dir)
    second = tj.init(project="p", dir=store_dir, reinit="create_new")
    assert tj.run is first  # the module-level mirrors keep pointing at the first
    tj.log({"x": 1})
    second.log({"x": 2})
    second.log({"x": 3})
    second.finish()
    assert tj.run is first and first.state == "running"
    first.finish()
    api = tj.Api(store_dir)
    assert steps(api, first.id) == [(0, 1)]
    assert steps(api, second.id) == [(0, 2), (1, 3)]


def test_when_the_current_run_finishes_the_newest_active_run_takes_over(store_dir: Path):
    first = tj.init(project="p", dir=store_dir)
    second = tj.init(project="p", dir=store_dir, reinit="create_new")
    third = tj.init(project="p", dir=store_dir, reinit="create_new")
    first.finish()
    assert tj.run is third  # still active, so the mirrors keep working
    tj.log({"x": 1})
    third.finish()
    assert tj.run is second
    second.finish()
    assert tj.run is None
    assert steps(tj.Api(store_dir), third.id) == [(0, 1)]


def test_resume_must_while_another_run_is_kept_is_an_error(store_dir: Path):
    old = tj.init(project="p", dir=store_dir, id="old")
    old.finish()
    tj.init(project="p", dir=store_dir)
    with pytest.raises(UsageError, match=r"resume='must'.*is active"):
        tj.init(project="p", dir=store_dir, id="old", resume="must", reinit="return_previous")


# ------------------------------------------------------------------------------------------ resume


def test_resume_allow_continues_or_creates(store_dir: Path):
    run = logged(tj.init(project="p", dir=store_dir, id="r1", config={"a": 1}, tags=["old"]), 3)
    run.summary["best"] = 7
    run.finish()
    again = tj.init(project="p", dir=store_dir, id="r1", resume="allow", config={"b": 2}, tags=["new"])
    assert again.resumed and again.step == 3 and again.name == run.name
    assert dict(again.config) == {"a": 1, "b": 2}
    assert again.summary["best"] == 7 and again.summary["x"] == 2
    assert again.tags == ("new",)  # tags given at init replace the old ones
    logged(again, 2, start=3).finish()
    assert steps(tj.Api(store_dir), "r1") == [(i, i) for i in range(5)]
    assert tj.Api(store_dir).run("r1").state == "finished"
    fresh = tj.init(project="p", dir=store_dir, id="r2", resume="allow")
    assert not fresh.resumed and fresh.step == 0


def test_resume_keeps_allow_val_change_rules(store_dir: Path):
    tj.init(project="p", dir=store_dir, id="r", config={"lr": 0.1}).finish()
    with pytest.raises(tj.ConfigError, match="'lr'"):
        tj.init(project="p", dir=store_dir, id="r", resume="must", config={"lr": 0.2})
    assert tj.run is None
    assert tj.Api(store_dir).run("r").state == "finished"  # the refused resume left the run as it was
    run = tj.init(
        project="p", dir=store_dir, id="r", resume="must", config={"lr": 0.2}, allow_val_change=True
    )
    assert run.config.lr == 0.2


def test_resume_never(store_dir: Path):
    tj.init(project="p", dir=store_dir, id="n1").finish()
    with pytest.raises(UsageError, match="already exists"):
        tj.init(project="p", dir=store_dir, id="n1", resume="never")
    assert not tj.init(project="p", dir=store_dir, id="n2", resume="never").resumed


def test_resume_must(store_dir: Path):
    with pytest.raises(UsageError, match="needs the id"):
        tj.init(project="p", dir=store_dir, resume="must")
    with pytest.raises(UsageError, match=r"no run 'ghost' in project 'p' under .*looked for"):
        tj.init(project="p", dir=store_dir, id="ghost", resume="must")
    assert not (store_dir / "p" / "ghost").exists()


def test_no_resume_never_overwrites_an_existing_id(store_dir: Path, monkeypatch):
    logged(tj.init(project="p", dir=store_dir, id="keep"), 2).finish()
    for resume in (None, False):
        with pytest.raises(UsageError, match=r"already exists.*resume='allow'"):
            tj.init(project="p", dir=store_dir, id="keep", resume=resume)
    monkeypatch.setenv("TRACKER_RUN_ID", "keep")
    monkeypatch.setenv("TRACKER_RESUME", "allow")
    run = tj.init(project="p", dir=store_dir)
    assert run.id == "keep" and run.step == 2


def test_resume_auto_continues_a_crashed_run_of_the_same_program(tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text(
        "import os, sys, tracker_jupyter as tj\n"
        "run = tj.init(project='p', dir='s', resume='auto', settings={'flush_interval': 0.05})\n"
        "print(run.id, run.step, run.resumed, flush=True)\n"
        "run.log({'x': run.step})\n"
        "run.sink.flush()\n"
        "if sys.argv[1] == 'crash':\n"
        "    os.kill(os.getpid(), 9)\n"
    )

    def go(arg: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, str(script), arg], cwd=tmp_path, capture_output=True, text=True
        )
        return done.stdout.split()

    first = go("crash")
    assert first[1:] == ["0", "False"]
    second = go("crash")
    assert second == [first[0], "1", "True"]  # crashed: continued
    third = go("finish")
    assert third == [first[0], "2", "True"]
    fourth = go("finish")
    assert fourth[0] != first[0] and fourth[1:] == ["0", "False"]  # finished: a new run


def test_kill_9_then_resume_must_continues_at_the_right_step(tmp_path: Path, store_dir: Path):
    code = (
        "import sys, time, tracker_jupyter as tj\n"
        "run = tj.init(project='p', id='k9', dir=sys.argv[1], config={'a': 1}, settings={'flush_interval': 0.1})\n"
        "for i in range(5000): run.log({'x': i})\n"
        "print('ok', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(store_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ok"
        # the writer gets the rows to disk while the process lives (every flush_interval); wait for that
        # rather than guess how long it takes on a loaded machine
        deadline = time.monotonic() + 60
        history = store_dir / "p" / "k9" / store.HISTORY
        while store.count_rows(history) < 5000 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert tj.Api(store_dir).run("k9").state == "crashed"
    run = tj.init(project="p", dir=store_dir, id="k9", resume="must")
    assert run.step == 5000 and run.config.a == 1 and run.summary["x"] == 4999
    run.log({"x": 5000})
    run.finish(exit_code=2)
    record = tj.Api(store_dir).run("k9")
    assert record.state == "failed" and steps(tj.Api(store_dir), "k9") == [(i, i) for i in range(5001)]
    assert record.lineage["resumes"][0]["previous_state"] == "crashed"


def test_kill_9_while_logging_then_resume_continues_without_gaps(tmp_path: Path, store_dir: Path):
    code = (
        "import sys, tracker_jupyter as tj\n"
        "run = tj.init(project='p', id='busy', dir=sys.argv[1], settings={'flush_interval': 0.05})\n"
        "i = 0\n"
        "while True:\n"
        "    run.log({'x': i, 'pad': 'y' * 200}); i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(store_dir)])
    history = store_dir / "p" / "busy" / store.HISTORY
    try:
        deadline = time.monotonic() + 60
        while store.count_rows(history) < 20_000 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)  # in the middle of logging and writing
        proc.wait()
    on_disk = store.count_rows(history)
    assert on_disk >= 20_000
    run = tj.init(project="p", dir=store_dir, id="busy", resume="must")
    assert run.step >= on_disk
    first_new = run.step
    for i in range(3):
        run.log({"x": first_new + i})
    run.finish()
    rows = list(tj.Api(store_dir).run("busy").scan_history())
    assert [r["_step"] for r in rows] == list(range(first_new + 3))  # no gap, nothing glued or lost
    assert [r["x"] for r in rows] == list(range(first_new + 3))


def test_two_processes_resuming_the_same_run(tmp_path: Path, store_dir: Path):
    tj.init(project="p", dir=store_dir, id="both").finish()
    code = (
        "import sys, tracker_jupyter as tj\n"
        "try:\n"
        "    run = tj.init(project='p', id='both', resume='must', dir=sys.argv[1], settings={'silent': True})\n"
        "except tj.UsageError as exc:\n"
        "    print(str(exc).replace(chr(10), ' '), flush=True); sys.exit(3)\n"
        "print('holding', flush=True)\n"
        "sys.stdin.readline(); run.finish()\n"  # keep the run open until the test has heard from both
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(store_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        first_lines = [p.stdout.readline().strip() if p.stdout else "" for p in procs]
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()  # lets a holder finish
    results = sorted((p.wait(timeout=60), line) for p, line in zip(procs, first_lines, strict=True))
    assert [code for code, _ in results] == [0, 3], results
    assert results[0][1] == "holding" and "is open in another process" in results[1][1]


# ------------------------------------------------------------------------------------------ rewind


def test_resume_from_rewinds_and_archives(store_dir: Path):
    logged(tj.init(project="p", dir=store_dir, id="rw"), 10).finish()
    run = tj.init(project="p", dir=store_dir, resume_from="rw?_step=4")
    assert run.id == "rw" and run.step == 5 and run.summary["x"] == 4
    run.log({"x": 100})
    run.finish()
    api = tj.Api(store_dir)
    assert steps(api, "rw") == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 100)]
    assert api.run("rw").summary["x"] == 100
    archive = store_dir / "p" / "rw" / "history.rewound-1.jsonl"
    archived = [row["x"] for row in store.iter_history(archive)]
    assert archived == list(range(10))  # the discarded rows are kept, not deleted
    assert api.run("rw").lineage["rewinds"][0]["step"] == 4


def test_resume_from_errors(store_dir: Path):
    logged(tj.init(project="p", dir=store_dir, id="rw"), 3).finish()
    with pytest.raises(UsageError, match="no step 9: its last step is 2"):
        tj.init(project="p", dir=store_dir, resume_from="rw?_step=9")
    with pytest.raises(UsageError, match="no run 'nope'"):
        tj.init(project="p", dir=store_dir, resume_from="nope?_step=1")
    assert steps(tj.Api(store_dir), "rw") == [(0, 0), (1, 1), (2, 2)]


def test_resume_from_takes_precedence_over_id(store_dir: Path):
    logged(tj.init(project="p", dir=store_dir, id="src"), 3).finish()
    run = tj.init(project="p", dir=store_dir, id="ignored", resume_from="src?_step=0")
    assert run.id == "src" and run.step == 1


# ------------------------------------------------------------------------------------------ fork


def test_fork_from_copies_history_up_to_step(store_dir: Path):
    source = logged(tj.init(project="p", dir=store_dir, id="parent", config={"lr": 0.1}, group="g"), 10)
    source.finish()
    fork = tj.init(project="p", dir=store_dir, fork_from="parent?_step=3")
    assert fork.id != "parent" and fork.step == 4 and fork.config.lr == 0.1 and fork.group == "g"
    assert fork.summary["x"] == 3
    fork.log({"x": 40})
    fork.finish()
    api = tj.Api(store_dir)
    assert steps(api, fork.id) == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 40)]
    assert api.run(fork.id).lineage["fork"] == {"run_id": "parent", "project": "p", "step": 3}
    assert steps(api, "parent") == [(i, i) for i in range(10)]  # the source is untouched
    assert api.run("parent").state == "finished"


def test_fork_errors(store_dir: Path):
    logged(tj.init(project="p", dir=store_dir, id="parent"), 2).finish()
    with pytest.raises(UsageError, match="no step 5"):
        tj.init(project="p", dir=store_dir, fork_from="parent?_step=5")
    with pytest.raises(UsageError, match="no run 'ghost'"):
        tj.init(project="p", dir=store_dir, fork_from="ghost?_step=0")
    assert [r.id for r in tj.Api(store_dir).runs()] == ["parent"]


def test_fork_of_a_fork_and_rewind_of_a_fork(store_dir: Path):
    logged(tj.init(project="p", dir=store_dir, id="a"), 6).finish()
    b = tj.init(project="p", dir=store_dir, id="b", fork_from="a?_step=4")
    logged(b, 3, start=50).finish()  # b: 0..4 from a, then 50, 51, 52 at steps 5..7
    c = tj.init(project="p", dir=store_dir, id="c", fork_from="b?_step=6")
    logged(c, 1, start=90).finish()
    api = tj.Api(store_dir)
    assert steps(api, "c") == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 50), (6, 51), (7, 90)]
    rewound = tj.init(project="p", dir=store_dir, resume_from="b?_step=5")
    logged(rewound, 1, start=70).finish()
    assert steps(api, "b") == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 50), (6, 70)]
    assert api.run("b").lineage["fork"]["run_id"] == "a"
    assert steps(api, "c")[-1] == (7, 90)  # forks are independent copies


def test_a_refused_init_does_not_finish_the_active_run(store_dir: Path):
    first = tj.init(project="p", dir=store_dir)
    with pytest.raises(UsageError, match=r"contains '\.'"):
        tj.init(project="p", dir=store_dir, reinit="finish_previous", config={"a.b": 1})
    with pytest.raises(UsageError, match="not a single string"):
        tj.init(project="p", dir=store_dir, reinit="finish_previous", tags="x")
    assert first.state == "running" and tj.run is first


def test_refusals_found_in_the_store_do_not_finish_the_active_run(store_dir: Path):
    logged(tj.init(project="p", dir=store_dir, id="old", config={"lr": 0.1}), 3).finish()
    first = tj.init(project="p", dir=store_dir)
    refused = [
        ({"project": "a/b"}, "project"),
        ({"id": "ghost", "resume": "must"}, "no run 'ghost'"),
        ({"id": "old"}, "already exists"),
        ({"id": "old", "resume": "never"}, "already exists"),
        ({"resume_from": "ghost?_step=1"}, "no run 'ghost'"),
        ({"resume_from": "old?_step=7"}, "no step 7: its last step is 2"),
        ({"fork_from": "ghost?_step=1"}, "no run 'ghost'"),
        ({"fork_from": "old?_step=3"}, "no step 3: its last step is 2"),
    ]
    for arguments, message in refused:
        with pytest.raises(UsageError, match=message):
            tj.init(dir=store_dir, reinit="finish_previous", **{"project": "p", **arguments})
    with pytest.raises(tj.ConfigError, match="lr"):  # a resumed run refuses the change
        tj.init(
            project="p", dir=store_dir, id="old", resume="allow", config={"lr": 0.2}, allow_val_change=False,
            reinit="finish_previous",
        )  # fmt: skip
    with pytest.raises(tj.ConfigError, match="lr"):
        tj.init(
            project="p", dir=store_dir, resume_from="old?_step=1", config={"lr": 0.2}, allow_val_change=False,
            reinit="finish_previous",
        )  # fmt: skip
    assert first.state == "running" and tj.run is first
    assert steps(tj.Api(store_dir), "old") == [(0, 0), (1, 1), (2, 2)]  # not rewound either
    assert not list((store_dir / "p" / "old").glob("history.rewound-*"))


def test_resuming_a_run_active_in_this_process_says_so(store_dir: Path):
    first = tj.init(project="p", dir=store_dir, id="mine")
    with pytest.raises(UsageError, match="active in this process"):
        tj.init(project="p", dir=store_dir, id="mine", resume="must", reinit="create_new")
    assert first.state == "running" and tj.run is first


def test_a_rewind_is_undone_when_init_fails_later(store_dir: Path, monkeypatch: pytest.MonkeyPatch):
    logged(tj.init(project="p", dir=store_dir, id="rw"), 10).finish()
    run_dir = store_dir / "p" / "rw"
    before = {name: (run_dir / name).read_bytes() for name in (store.HISTORY, store.META, store.SUMMARY)}
    for name in ("tensorboardX", "tensorboard", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)  # sync_tensorboard fails once the run is open
    with pytest.raises(UsageError, match="sync_tensorboard"):
        tj.init(project="p", dir=store_dir, resume_from="rw?_step=3", sync_tensorboard=True)
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    assert not list(run_dir.glob("history.rewound-*"))
    record = tj.Api(store_dir).run("rw")
    assert record.state == "finished" and "rewinds" not in record.lineage
