"""Artifacts under real faults, in real processes: two loggers of one name at once, kill -9 while a
version is logged, kill -9 while it is downloaded, two downloads into one directory at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import tracker_jupyter as tj

from .conftest import run_script
from .test_artifacts import read_tree, sha256, write_tree

pytestmark = pytest.mark.slow  # fresh interpreters, tens of megabytes

KIB = 1024

# Log the directory argv[2] as a version of "data" once the file "go" appears in argv[3].
LOGGER = """
import sys, time
from pathlib import Path
import tracker_jupyter as tj

store, source, barrier, me = sys.argv[1:5]
run = tj.init(project="p", dir=store, mode="offline", settings={"silent": True})
artifact = tj.Artifact("data", "dataset")
Path(barrier, "ready-" + me).touch()
while not Path(barrier, "go").exists():
    time.sleep(0.001)
artifact.add_dir(source)
print(run.log_artifact(artifact).version, flush=True)
run.finish()
"""

# Log the directory argv[2] as "big"; argv[3] says where the process kills itself with SIGKILL.
KILLED_LOGGER = """
import os, signal, sys
import tracker_jupyter as tj

store, source, where = sys.argv[1:4]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

real_replace = os.replace
seen = []

def replace(src, dst, **kwargs):
    if where == "mid-object" and os.path.basename(src).startswith(".incoming."):
        seen.append(src)
        if len(seen) == 20:  # the 20th object's bytes are written, not yet renamed into place
            die()
    if where == "before-version" and str(dst).endswith("v0.json"):
        die()  # every object stored, the version record written, not yet renamed into place
    return real_replace(src, dst, **kwargs)

os.replace = replace

run = tj.init(project="p", dir=store, mode="offline", settings={"silent": True})
print("logging", flush=True)
run.log_artifact(source, name="big", type="dataset")
print("logged", flush=True)
"""

# Download argv[2] ("p/name:v0") to argv[3]; argv[4] says when the process kills itself with SIGKILL
# (or, "wait", to start only once <argv[3]>.go exists).
KILLED_DOWNLOADER = """
import os, shutil, signal, sys
import tracker_jupyter as tj

store, name, out, where = sys.argv[1:5]
if where == "mid-file":  # the 30th file copied a third of the way
    real_copyfile, seen = shutil.copyfile, [0]
    def copyfile(src, dst, **kwargs):
        seen[0] += 1
        if seen[0] == 30:
            with open(src, "rb") as fh, open(dst, "wb") as partial:
                partial.write(fh.read()[: os.path.getsize(src) // 3])
                partial.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_copyfile(src, dst, **kwargs)
    shutil.copyfile = copyfile

artifact = tj.Api(dir=store).artifact(name)
if where == "wait":  # until the file <out>.go appears
    import time
    print("waiting", flush=True)
    while not os.path.exists(out + ".go"):
        time.sleep(0.001)
print("downloading", flush=True)
artifact.download(root=out)
print("downloaded", flush=True)
"""


def random_files(count: int, size: int, prefix: str = "f") -> dict[str, bytes]:
    return {f"{prefix}{i:03d}.bin": os.urandom(size) for i in range(count)}


def object_files(store_dir: Path) -> list[Path]:
    objects = store_dir / ".artifacts" / "objects"
    return sorted(p for p in objects.glob("*/*") if p.is_file()) if objects.is_dir() else []


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}


def spawn(tmp_path: Path, code: str, *args: object) -> subprocess.Popen[str]:
    script = tmp_path / f"child-{abs(hash(code))}.py"
    script.write_text(code)
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return out, err


def assert_store_whole(store_dir: Path, name: str = "big") -> list[Path]:
    """Every object holds the content its name says; every version record is whole, and its files are
    there. The version records found."""
    for path in object_files(store_dir):
        assert sha256(path.read_bytes()) == path.name, f"object {path} is corrupted"
    versions = sorted((store_dir / "p" / ".artifacts" / name).glob("v*.json"))
    for version in versions:
        record = json.loads(version.read_text())
        for entry in record["entries"].values():
            stored = store_dir / ".artifacts" / "objects" / entry["digest"][:2] / entry["digest"]
            assert sha256(stored.read_bytes()) == entry["digest"], f"{version.name}: {entry['path']}"
    return versions


def leftover_downloads(root: Path) -> list[Path]:
    return sorted(root.rglob(".*.tracker-*.tmp"))


# ---------------------------------------------------------------------------------- two loggers at once


def log_at_once(tmp_path: Path, store_dir: Path, sources: list[Path]) -> list[str]:
    """Start one LOGGER per source, let them all go at once; the version each one printed."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [spawn(tmp_path, LOGGER, store_dir, source, barrier, i) for i, source in enumerate(sources)]
    try:
        while not all((barrier / f"ready-{i}").exists() for i in range(len(sources))):
            if any(proc.poll() is not None for proc in procs):
                break  # one died before the barrier: its output says why below
        (barrier / "go").touch()
        results = [finished(proc) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    return [out.strip() for out, _ in results]


def test_two_processes_logging_one_name_get_two_whole_versions(tmp_path: Path, store_dir: Path):
    """Two processes logging different content under one name at once: v0 and v1, each one intact."""
    shared = random_files(10, 64 * KIB, prefix="shared")  # the same objects written by both at once
    contents = [{**shared, **random_files(20, 64 * KIB)} for _ in range(2)]
    sources = [write_tree(tmp_path / f"src{i}", files) for i, files in enumerate(contents)]
    versions = log_at_once(tmp_path, store_dir, sources)
    assert sorted(versions) == ["v0", "v1"]
    api = tj.Api(dir=store_dir)
    assert [a.version for a in api.artifacts("dataset", "p/data")] == ["v0", "v1"]
    for version, files in zip(versions, contents, strict=True):
        artifact = api.artifact(f"p/data:{version}")
        root = artifact.download(root=str(tmp_path / "out" / version))
        assert read_tree(root) == files
        artifact.verify(root=root)
    assert len(object_files(store_dir)) == 10 + 2 * 20
    assert_store_whole(store_dir, "data")


def test_two_processes_logging_identical_content_get_one_version(tmp_path: Path, store_dir: Path):
    """Two processes logging the same content under one name at once: exactly one version, v0."""
    files = random_files(30, 64 * KIB)
    sources = [write_tree(tmp_path / f"src{i}", files) for i in range(2)]
    assert log_at_once(tmp_path, store_dir, sources) == ["v0", "v0"]
    api = tj.Api(dir=store_dir)
    [version] = api.artifacts("dataset", "p/data")
    assert read_tree(version.download(root=str(tmp_path / "out"))) == files
    assert len(object_files(store_dir)) == 30


# ------------------------------------------------------------------------------ kill -9 while logging


@pytest.mark.parametrize("where", ["mid-object", "before-version", "external"])
def test_kill_9_while_logging_leaves_no_broken_version_and_logging_again_works(
    tmp_path: Path, store_dir: Path, where: str
):
    """A logger killed at any point leaves whole objects and no half version (nor a held lock): logging
    again from a new process gives a version whose download is the source, byte for byte."""
    files = random_files(200, 256 * KIB)
    source = write_tree(tmp_path / "src", files)
    proc = spawn(tmp_path, KILLED_LOGGER, store_dir, source, where)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "logging"
        if where == "external":  # from outside, once some objects are stored
            while len(object_files(store_dir)) < 20 and proc.poll() is None:
                pass
            assert proc.poll() is None, "the logger finished before it could be killed"
            proc.send_signal(signal.SIGKILL)
        _, err = finished(proc)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the logger was not killed: {err}"

    versions = assert_store_whole(store_dir)
    assert versions == [] or where == "external"
    assert len(object_files(store_dir)) < 200 or where == "before-version"

    done = run_script(
        "import sys, tracker_jupyter as tj\n"
        f"run = tj.init(project='p', dir={str(store_dir)!r}, mode='offline', settings={{'silent': True}})\n"
        f"print(run.log_artifact({str(source)!r}, name='big', type='dataset').version)\n"
        "run.finish()\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "v0"
    artifact = tj.Api(dir=store_dir).artifact("p/big:v0")
    root = artifact.download(root=str(tmp_path / "out"))
    assert read_tree(root) == files
    artifact.verify(root=root)
    assert len(object_files(store_dir)) == 200
    assert assert_store_whole(store_dir) == [store_dir / "p" / ".artifacts" / "big" / "v0.json"]


def test_a_killed_loggers_temporary_object_is_cleaned_up_by_the_next_log(tmp_path: Path, store_dir: Path):
    """The half-stored object a killed logger leaves (objects/.incoming.*) does not stay in the store
    forever: logging again removes it, as download() removes a killed download's temporary files."""
    source = write_tree(tmp_path / "src", random_files(30, 64 * KIB))
    proc = spawn(tmp_path, KILLED_LOGGER, store_dir, source, "mid-object")
    _, err = finished(proc)
    assert proc.returncode == -signal.SIGKILL, f"the logger was not killed: {err}"
    objects = store_dir / ".artifacts" / "objects"
    assert len(list(objects.glob(".incoming.*"))) == 1  # the 20th object, written, never renamed
    done = run_script(
        "import tracker_jupyter as tj\n"
        f"run = tj.init(project='p', dir={str(store_dir)!r}, mode='offline', settings={{'silent': True}})\n"
        f"run.log_artifact({str(source)!r}, name='big', type='dataset')\n"
        "run.finish()\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert list(objects.glob(".incoming.*")) == []


# ---------------------------------------------------------------------------- kill -9 while downloading


def logged_version(tmp_path: Path, store_dir: Path, kind: str) -> tuple[str, dict[str, bytes]]:
    """A version of 100 files of 256 KiB: stored files ('stored') or file:// references ('reference')."""
    files = random_files(100, 256 * KIB)
    source = write_tree(tmp_path / "src", files)
    run = tj.init(project="p", dir=str(store_dir), mode="offline", settings={"silent": True})
    artifact = tj.Artifact(kind, "dataset")
    if kind == "stored":
        artifact.add_dir(source)
    else:
        artifact.add_reference(source.as_uri())
    run.log_artifact(artifact)
    run.finish()
    return f"p/{kind}:v0", files


@pytest.mark.parametrize(
    ("kind", "where"), [("stored", "mid-file"), ("stored", "external"), ("reference", "mid-file")]
)
def test_kill_9_while_downloading_then_download_again_gives_exactly_the_files(
    tmp_path: Path, store_dir: Path, kind: str, where: str
):
    """A download killed mid-way leaves no half file under its name; downloading again gives exactly
    the version's files (verify() passes) and no temporary files are left behind."""
    name, files = logged_version(tmp_path, store_dir, kind)
    out = tmp_path / "out"
    proc = spawn(tmp_path, KILLED_DOWNLOADER, store_dir, name, out, where)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "downloading"
        if where == "external":  # from outside, once some files are there
            while proc.poll() is None and (not out.is_dir() or len(os.listdir(out)) < 20):
                pass
            assert proc.poll() is None, "the download finished before it could be killed"
            proc.send_signal(signal.SIGKILL)
        _, err = finished(proc)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the download was not killed: {err}"
    for path, content in read_tree(out).items():  # what is there under a file's own name is whole
        if not Path(path).name.startswith("."):
            assert content == files[path], path
    if where == "mid-file":
        assert len(leftover_downloads(out)) == 1  # the killed copy, under its temporary name

    artifact = tj.Api(dir=store_dir).artifact(name)
    artifact.download(root=str(out))
    assert leftover_downloads(out) == []
    assert read_tree(out) == files
    artifact.verify(root=str(out))


# ------------------------------------------------------------------------- two downloads into one place


def test_a_second_download_into_the_same_directory_does_not_break_the_first(tmp_path: Path, store_dir: Path):
    """Two processes (say, two workers of one job) downloading one version to the same directory, the
    second starting while the first is copying: both finish, with exactly the version's files there."""
    name, files = logged_version(tmp_path, store_dir, "stored")
    out = tmp_path / "out"
    second = spawn(tmp_path, KILLED_DOWNLOADER, store_dir, name, out, "wait")
    procs = [second]
    try:
        assert second.stdout is not None and second.stdout.readline().strip() == "waiting"
        first = spawn(tmp_path, KILLED_DOWNLOADER, store_dir, name, out, "")
        procs.append(first)
        assert first.stdout is not None and first.stdout.readline().strip() == "downloading"
        while first.poll() is None and (not out.is_dir() or len(os.listdir(out)) < 10):
            pass
        assert first.poll() is None, "the first download finished before the second started"
        (tmp_path / "out.go").touch()
        results = [finished(proc) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
    assert read_tree(out) == files
    tj.Api(dir=store_dir).artifact(name).verify(root=str(out))
