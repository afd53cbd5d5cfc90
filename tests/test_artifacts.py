"""Artifacts, offline: what a run logs another run downloads byte for byte, versions and aliases, shared
content-addressed objects, lineage, references, incremental drafts, models, and the errors bad input gets."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tracker_jupyter as tj
from tracker_jupyter import Artifact, Table, UsageError


def init(store_dir: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("mode", "offline")
    return tj.init(project="p", dir=str(store_dir), settings={"silent": True}, **kwargs)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def read_tree(root: Path | str) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too) by its relative path."""
    base = Path(root)
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def log_tree(run: Any, tmp_path: Path, name: str, files: dict[str, bytes], **kwargs: Any) -> Artifact:
    """Log ``files`` as a version of ``name`` (type ``dataset`` unless given)."""
    source = write_tree(Path(tempfile.mkdtemp(dir=tmp_path, prefix="src-")), files)
    artifact = Artifact(name, kwargs.pop("type", "dataset"), incremental=kwargs.pop("incremental", False))
    artifact.add_dir(source)
    return run.log_artifact(artifact, **kwargs)


def object_files(store_dir: Path) -> list[Path]:
    """The stored objects (``objects/<d[:2]>/<d>``), not temporary files."""
    objects = store_dir / ".artifacts" / "objects"
    return sorted(p for p in objects.glob("*/*") if p.is_file()) if objects.is_dir() else []


@pytest.fixture
def logged(store_dir: Path, tmp_path: Path) -> tuple[Artifact, dict[str, bytes]]:
    """A version ``data:v0`` of three files (one nested), used by a second, still active run."""
    files = {"a.txt": b"alpha", "sub/b.bin": os.urandom(2048), "sub/deep/c.txt": b"gamma"}
    writer = init(store_dir)
    log_tree(writer, tmp_path, "data", files)
    writer.finish()
    reader = init(store_dir)
    return reader.use_artifact("data:latest"), files


# ---------------------------------------------------------------------------------------- round trip


def test_round_trip_gives_another_run_exactly_the_logged_files(store_dir: Path, tmp_path: Path):
    """Files added every way (add_file, add_dir with a prefix, new_file, add(Table)) come back intact."""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    top = os.urandom(4096)
    source = write_tree(tmp_path / "src", {"top.bin": top, "sub/deep/x.txt": b"x"})
    table = Table(columns=["id", "label"], data=[[1, "cat"], [2, "dog"]])
    writer = init(store_dir)
    artifact = Artifact("data", "dataset", metadata={"rows": 2})
    artifact.add_file(tmp_path / "a.txt")
    artifact.add_dir(source, name="raw")
    with artifact.new_file("notes.txt") as fh:
        fh.write("hello")
    artifact.add(table, "preds")
    logged = writer.log_artifact(artifact)
    assert (logged.name, logged.version, logged.state) == ("data:v0", "v0", "COMMITTED")
    writer.finish()

    reader = init(store_dir)
    used = reader.use_artifact("data:latest")
    files = read_tree(used.download())
    assert set(files) == {"a.txt", "raw/top.bin", "raw/sub/deep/x.txt", "notes.txt", "preds.table.json"}
    assert files["a.txt"] == b"alpha\n" and files["raw/top.bin"] == top
    assert files["raw/sub/deep/x.txt"] == b"x" and files["notes.txt"] == b"hello"
    stored_table = json.loads(files["preds.table.json"])
    assert stored_table["columns"] == ["id", "label"] and stored_table["data"] == [[1, "cat"], [2, "dog"]]
    for path, content in files.items():
        entry = used.get_entry(path)
        assert (entry.digest, entry.size) == (sha256(content), len(content))
    assert used.digest == logged.digest and used.metadata == {"rows": 2}
    assert used.size == sum(len(c) for c in files.values()) and used.file_count == 5


def test_verify_passes_on_a_download_and_fails_once_a_file_is_changed(logged):
    """verify() checks the downloaded bytes; download() again repairs a changed file."""
    artifact, files = logged
    root = Path(artifact.download())
    artifact.verify()
    (root / "sub" / "b.bin").write_bytes(b"tampered")
    with pytest.raises(ValueError, match=r"sub/b\.bin"):
        artifact.verify()
    artifact.download()
    assert read_tree(root) == files
    artifact.verify()


def test_verify_fails_on_a_missing_or_an_extra_file(logged):
    """verify() wants exactly the version's files: not fewer, not more."""
    artifact, _ = logged
    root = Path(artifact.download())
    (root / "a.txt").unlink()
    with pytest.raises(ValueError, match=r"a\.txt is missing"):
        artifact.verify()
    artifact.download()
    (root / "extra.txt").write_text("not mine")
    with pytest.raises(ValueError, match=r"extra\.txt"):
        artifact.verify()


def test_checkout_removes_files_that_are_not_in_the_version(logged):
    """checkout() leaves the directory holding the version's files and nothing else."""
    artifact, files = logged
    root = Path(artifact.download())
    write_tree(root, {"extra.txt": b"stale", "old/left.bin": b"stale"})
    (root / "a.txt").write_bytes(b"edited")
    assert artifact.checkout() == str(root)
    assert read_tree(root) == files
    assert not (root / "old").exists()
    artifact.verify()


def test_default_download_dir_is_artifacts_name_version_under_the_cwd(logged, tmp_path: Path):
    """download() without a root writes ./artifacts/<name>:v<N> under the working directory."""
    artifact, files = logged
    root = artifact.download()
    assert Path(root).resolve() == (tmp_path / "artifacts" / "data:v0").resolve()
    assert read_tree(tmp_path / "artifacts" / "data:v0") == files


def test_tracker_artifact_dir_moves_the_default_download_dir(logged, tmp_path: Path, monkeypatch):
    """TRACKER_ARTIFACT_DIR replaces ./artifacts as the default download directory (verify() follows)."""
    artifact, files = logged
    monkeypatch.setenv("TRACKER_ARTIFACT_DIR", str(tmp_path / "elsewhere"))
    root = artifact.download()
    assert Path(root) == tmp_path / "elsewhere" / "data:v0"
    assert read_tree(root) == files
    assert not (tmp_path / "artifacts").exists()
    artifact.verify()


def test_download_root_is_honoured(logged, tmp_path: Path):
    """download(root=...) writes there and returns it; verify(root=...) checks there."""
    artifact, files = logged
    target = tmp_path / "mine" / "copy"
    assert artifact.download(root=str(target)) == str(target)
    assert read_tree(target) == files
    assert not (tmp_path / "artifacts").exists()
    artifact.verify(root=str(target))


def test_one_entry_downloads_alone(logged, tmp_path: Path):
    """entry.download(root) writes only that file, with its bytes."""
    artifact, files = logged
    path = artifact.get_entry("sub/deep/c.txt").download(str(tmp_path / "one"))
    assert Path(path).read_bytes() == files["sub/deep/c.txt"]
    assert read_tree(tmp_path / "one") == {"sub/deep/c.txt": files["sub/deep/c.txt"]}


# ------------------------------------------------------------------------------------------ versions


def test_changed_content_makes_a_new_version_and_latest_names_the_newest(store_dir: Path, tmp_path: Path):
    """v0, then v1 for other content; 'latest' follows; 'name:v0' still gives v0's bytes."""
    run = init(store_dir)
    v0 = log_tree(run, tmp_path, "data", {"a": b"one"})
    assert run.use_artifact("data:latest").version == "v0"
    v1 = log_tree(run, tmp_path, "data", {"a": b"two"})
    assert (v0.name, v1.name) == ("data:v0", "data:v1")
    assert v0.digest != v1.digest
    assert run.use_artifact("data:latest").version == "v1"
    assert run.use_artifact("data").version == "v1"
    assert read_tree(run.use_artifact("data:v0").download()) == {"a": b"one"}
    assert read_tree(run.use_artifact("data:v1").download()) == {"a": b"two"}


def test_identical_content_makes_no_new_version_but_its_aliases_move(store_dir: Path, tmp_path: Path):
    """Logging v0's content again returns data:v0 with the new alias; 'latest' stays on the newest."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one"})
    log_tree(run, tmp_path, "data", {"a": b"two"})
    again = log_tree(run, tmp_path, "data", {"a": b"one"}, aliases=["prod"])
    assert again.name == "data:v0" and again.aliases == ["prod"]
    api = tj.Api(dir=store_dir)
    assert [a.version for a in api.artifacts("dataset", "p/data")] == ["v0", "v1"]
    assert run.use_artifact("data:prod").version == "v0"
    assert run.use_artifact("data:latest").version == "v1"


def test_a_user_alias_moves_to_the_version_it_is_given(store_dir: Path, tmp_path: Path):
    """'best' names the version last logged with it; the one before loses it."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one"}, aliases=["best"])
    assert run.use_artifact("data:best").version == "v0"
    log_tree(run, tmp_path, "data", {"a": b"two"}, aliases=["best"])
    best = run.use_artifact("data:best")
    assert best.version == "v1" and read_tree(best.download()) == {"a": b"two"}
    assert run.use_artifact("data:v0").aliases == []
    assert run.use_artifact("data:v1").aliases == ["best"]


def test_an_unknown_alias_names_the_versions_and_aliases_there_are(store_dir: Path, tmp_path: Path):
    """use_artifact('data:nope') fails saying which versions and aliases exist."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one"}, aliases=["best"])
    log_tree(run, tmp_path, "data", {"a": b"two"})
    with pytest.raises(UsageError, match=r"data:nope.*v0\.\.v1.*'best'"):
        run.use_artifact("data:nope")
    with pytest.raises(UsageError, match=r"v0\.\.v1"):
        run.use_artifact("data:v7")


def test_an_unknown_name_lists_the_artifacts_there_are(store_dir: Path, tmp_path: Path):
    """use_artifact('nope') fails naming the artifacts logged in the project."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one"})
    with pytest.raises(UsageError, match=r"nope.*data:dataset"):
        run.use_artifact("nope")


def test_a_deleted_version_number_is_never_given_to_other_content(store_dir: Path, tmp_path: Path):
    """After delete() of data:v1, new content is v2: 'data:v1' and the runs' lineage never change meaning."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"zero"})
    deleted = log_tree(run, tmp_path, "data", {"a": b"one"})
    deleted.delete()
    with pytest.raises(UsageError):
        run.use_artifact("data:v1")
    assert run.use_artifact("data:latest").version == "v0"
    newer = log_tree(run, tmp_path, "data", {"a": b"two"})
    assert newer.version == "v2"
    run.finish()
    logged = tj.Api(dir=store_dir).run(f"p/{run.id}").logged_artifacts()
    assert [read_tree(a.download(root=str(tmp_path / a.version))) for a in logged] == [
        {"a": b"zero"},
        {"a": b"two"},
    ]


# ---------------------------------------------------------------------------------------- objects


def test_versions_sharing_a_file_store_it_once(store_dir: Path, tmp_path: Path):
    """Content-addressed: a file in two versions is one object, named by its sha256."""
    shared = os.urandom(10_000)
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"shared.bin": shared, "a": b"one"})
    log_tree(run, tmp_path, "data", {"renamed/shared.bin": shared, "a": b"two"})
    objects = object_files(store_dir)
    assert sorted(p.name for p in objects) == sorted({sha256(shared), sha256(b"one"), sha256(b"two")})
    for path in objects:
        assert path.parent.name == path.name[:2]
        assert sha256(path.read_bytes()) == path.name


def test_objects_are_read_only(store_dir: Path, tmp_path: Path):
    """Objects are shared by versions and runs, so they are stored with mode 0o444."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one", "b": b"two"})
    objects = object_files(store_dir)
    assert len(objects) == 2
    assert {stat.S_IMODE(p.stat().st_mode) for p in objects} == {0o444}


def test_downloaded_files_are_writable_copies_not_the_objects(logged, store_dir: Path):
    """Editing a downloaded file never changes the stored object."""
    artifact, files = logged
    root = Path(artifact.download())
    (root / "a.txt").write_bytes(b"edited")
    assert (store_dir / ".artifacts" / "objects" / sha256(b"alpha")[:2] / sha256(b"alpha")).read_bytes() == (
        b"alpha"
    )
    assert read_tree(artifact.download(root=str(root.parent / "again"))) == files


def test_two_threads_downloading_into_one_directory_both_succeed(store_dir, tmp_path, monkeypatch):
    """A download started while another thread of the process downloads the same version to the same
    directory leaves the first one's file in progress alone: both finish with the right files."""
    files = {f"f{i}.bin": os.urandom(1000) for i in range(4)}
    run = init(store_dir)
    version = log_tree(run, tmp_path, "data", files)
    out = tmp_path / "out"
    first_mid_copy, second_done = threading.Event(), threading.Event()
    real_copyfile = shutil.copyfile

    def copyfile(src: Any, dst: Any, **kwargs: Any) -> Any:
        copied = real_copyfile(src, dst, **kwargs)
        if threading.current_thread().name == "first" and Path(dst).name.startswith(".f2.bin."):
            first_mid_copy.set()  # f2's bytes are in its temporary file, not yet renamed to f2.bin
            second_done.wait(10)
        return copied

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            version.download(root=str(out))
        except BaseException as exc:
            errors.append(exc)
        finally:
            first_mid_copy.set()

    thread = threading.Thread(target=first, name="first")
    thread.start()
    assert first_mid_copy.wait(10)
    try:
        version.download(root=str(out))
    finally:
        second_done.set()
        thread.join(10)
    assert not errors, "".join(traceback.format_exception(errors[0])) if errors else ""
    assert read_tree(out) == files


# ------------------------------------------------------------------------------------------ lineage


def test_lineage_logged_by_used_by_and_the_runs_lists(store_dir: Path, tmp_path: Path):
    """A version knows the run that logged it and those that used it; each run lists its artifacts."""
    writer = init(store_dir)
    log_tree(writer, tmp_path, "data", {"a": b"one"})
    writer.finish()
    first = init(store_dir)
    first.use_artifact("data:v0")
    first.finish()
    second = init(store_dir)
    second.use_artifact("data")
    second.finish()

    api = tj.Api(dir=store_dir)
    version = api.artifact("p/data:v0")
    assert version.logged_by().id == writer.id
    assert [run.id for run in version.used_by()] == [first.id, second.id]
    assert [a.name for a in api.run(f"p/{writer.id}").logged_artifacts()] == ["data:v0"]
    assert api.run(f"p/{writer.id}").used_artifacts() == []
    used = api.run(f"p/{first.id}").used_artifacts()
    assert [a.name for a in used] == ["data:v0"] and used[0].digest == version.digest
    assert api.run(f"p/{second.id}").logged_artifacts() == []


def test_api_reads_versions_by_alias_and_lists_them_in_order(store_dir: Path, tmp_path: Path):
    """Api().artifact('project/name:alias'), .artifacts(type, 'project/name') oldest first, and friends."""
    run = init(store_dir)
    for i in range(3):
        log_tree(run, tmp_path, "data", {"a": f"v{i}".encode()}, aliases=["best"] if i == 1 else None)
    log_tree(run, tmp_path, "weights", {"w": b"w"}, type="model")
    api = tj.Api(dir=store_dir)
    best = api.artifact("p/data:best")
    assert best.version == "v1" and read_tree(best.download()) == {"a": b"v1"}
    assert api.artifact("p/data").version == "v2"
    assert [(a.name, a.type) for a in api.artifacts("dataset", "p/data")] == [
        ("data:v0", "dataset"),
        ("data:v1", "dataset"),
        ("data:v2", "dataset"),
    ]
    assert api.artifact_exists("p/data:v2") and not api.artifact_exists("p/data:v3")
    assert not api.artifact_exists("p/data", type="model")
    assert sorted(api.artifact_collections("p")) == ["data", "weights"]
    assert api.artifact_collections("p", type_name="model") == ["weights"]
    with pytest.raises(UsageError, match="model"):
        api.artifacts("dataset", "p/weights")


def test_use_artifact_with_the_wrong_type_is_refused(store_dir: Path, tmp_path: Path):
    """use_artifact(type=...) must match the version's type."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one"})
    with pytest.raises(UsageError, match=r"type='model'.*'dataset'"):
        run.use_artifact("data:latest", type="model")
    assert run.use_artifact("data:latest", type="dataset").version == "v0"


def test_one_name_keeps_one_type(store_dir: Path, tmp_path: Path):
    """Logging a name again with another type fails naming both types; the first version stays."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one"})
    with pytest.raises(UsageError, match=r"'dataset'.*'model'"):
        log_tree(run, tmp_path, "data", {"a": b"two"}, type="model")
    api = tj.Api(dir=store_dir)
    assert [a.name for a in api.artifacts("dataset", "p/data")] == ["data:v0"]


# --------------------------------------------------------------------------------------- bad input


BAD_INPUT: dict[str, tuple[Callable[[Path], Any], str]] = {
    "add_file of a missing path": (
        lambda d: Artifact("x", "dataset").add_file(d / "missing.txt"),
        r"add_file\(local_path=.*missing\.txt.*no such file",
    ),
    "add_file of a directory": (
        lambda d: Artifact("x", "dataset").add_file(d / "folder"),
        r"add_file\(local_path=.*is a directory",
    ),
    "add_dir of a file": (
        lambda d: Artifact("x", "dataset").add_dir(d / "file.txt"),
        r"add_dir\(local_path=.*is a file",
    ),
    "a name with '/'": (lambda d: Artifact("proj/x", "dataset"), r"name 'proj/x'.*'/'"),
    "a name with ':'": (lambda d: Artifact("x:v1", "dataset"), r"name 'x:v1'.*':'"),
    "an alias like a version": (
        lambda d: setattr(Artifact("x", "dataset"), "aliases", ["v3"]),
        r"alias 'v3'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_a_usage_error_naming_the_argument(store_dir: Path, tmp_path: Path, case: str):
    """Bad paths, names and aliases are refused with a message naming what was wrong; the run goes on."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("f")
    make, message = BAD_INPUT[case]
    run = init(store_dir)
    with pytest.raises(UsageError, match=message):
        make(tmp_path)
    run.log({"after": 1})
    assert log_tree(run, tmp_path, "ok", {"a": b"fine"}).version == "v0"
    run.finish()
    assert [row["after"] for row in tj.Api(dir=store_dir).run(f"p/{run.id}").scan_history()] == [1]


def test_log_artifact_with_an_alias_like_a_version_is_refused(store_dir: Path, tmp_path: Path):
    """log_artifact(aliases=['v3']) is refused before anything is recorded; the run stays usable."""
    (tmp_path / "f.txt").write_text("f")
    run = init(store_dir)
    artifact = Artifact("data", "dataset")
    artifact.add_file(tmp_path / "f.txt")
    with pytest.raises(UsageError, match=r"alias 'v3'"):
        run.log_artifact(artifact, aliases=["v3"])
    assert tj.Api(dir=store_dir).artifact_collections("p") == []
    assert run.log_artifact(artifact, aliases=["best"]).aliases == ["best"]
    run.log({"after": 1})


def test_adding_a_second_file_of_the_same_name_needs_overwrite(store_dir: Path, tmp_path: Path):
    """add_file twice under one name fails (pointing at overwrite=True); overwrite=True replaces it."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "f.txt").write_bytes(b"first")
    (tmp_path / "two" / "f.txt").write_bytes(b"second")
    run = init(store_dir)
    artifact = Artifact("data", "dataset")
    artifact.add_file(tmp_path / "one" / "f.txt")
    with pytest.raises(UsageError, match=r"'f\.txt' already.*overwrite=True"):
        artifact.add_file(tmp_path / "two" / "f.txt")
    assert read_tree(run.log_artifact(artifact).download()) == {"f.txt": b"first"}
    replaced = Artifact("data", "dataset")
    replaced.add_file(tmp_path / "one" / "f.txt")
    replaced.add_file(tmp_path / "two" / "f.txt", overwrite=True)
    assert read_tree(run.log_artifact(replaced).download()) == {"f.txt": b"second"}
    run.log({"after": 1})


def test_a_logged_artifact_cannot_change(store_dir: Path, tmp_path: Path):
    """Adding to a logged version fails pointing at new_draft(), which starts from its files."""
    (tmp_path / "f.txt").write_bytes(b"f")
    run = init(store_dir)
    version = log_tree(run, tmp_path, "data", {"a": b"one"})
    with pytest.raises(UsageError, match=r"new_draft\(\)"):
        version.add_file(tmp_path / "f.txt")
    draft = version.new_draft()
    draft.add_file(tmp_path / "f.txt")
    assert read_tree(run.log_artifact(draft).download()) == {"a": b"one", "f.txt": b"f"}


# ------------------------------------------------------------------------------------------ policy


@pytest.mark.parametrize("run_first", [True, False], ids=["run-active", "before-init"])
def test_mutable_policy_keeps_the_content_the_file_had_when_added(store_dir: Path, tmp_path: Path, run_first):
    """policy='mutable' (the default): a change to the source after add_file does not reach the version."""
    source = tmp_path / "f.txt"
    source.write_bytes(b"at add time")
    run = init(store_dir) if run_first else None
    artifact = Artifact("data", "dataset")
    artifact.add_file(source)
    source.write_bytes(b"changed later, and longer")
    run = run or init(store_dir)
    version = run.log_artifact(artifact)
    assert read_tree(version.download()) == {"f.txt": b"at add time"}
    assert version.get_entry("f.txt").digest == sha256(b"at add time")


def test_immutable_policy_reads_the_file_when_logged(store_dir: Path, tmp_path: Path):
    """policy='immutable' stores what the file holds at log_artifact() time."""
    source = tmp_path / "f.txt"
    source.write_bytes(b"at add time")
    run = init(store_dir)
    artifact = Artifact("data", "dataset")
    artifact.add_file(source, policy="immutable")
    source.write_bytes(b"at log time")
    version = run.log_artifact(artifact)
    assert read_tree(version.download()) == {"f.txt": b"at log time"}
    assert [p.name for p in object_files(store_dir)] == [sha256(b"at log time")]


def test_a_file_rewritten_within_one_timestamp_tick_is_read_again(store_dir: Path, tmp_path: Path):
    """New content of the same size is logged even when the file's mtime did not move (a coarse clock:
    two writes within one kernel tick, or a tool keeping mtimes)."""
    source = tmp_path / "preds.csv"
    source.write_bytes(b"epoch 1")
    run = init(store_dir)
    first = Artifact("preds", "predictions")
    first.add_file(source)
    run.log_artifact(first)
    before = source.stat()
    source.write_bytes(b"epoch 2")  # same size, same inode
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))  # the same tick as the first write
    second = Artifact("preds", "predictions")
    second.add_file(source)
    version = run.log_artifact(second)
    assert read_tree(version.download()) == {"preds.csv": b"epoch 2"}
    assert version.version == "v1"


# ------------------------------------------------------------------------------------------ models


def test_use_model_returns_the_file_of_a_one_file_model(store_dir: Path, tmp_path: Path):
    """log_model(file) then use_model() in another run: the path of that file, with its bytes."""
    weights = os.urandom(3000)
    (tmp_path / "model.pt").write_bytes(weights)
    writer = init(store_dir)
    model = writer.log_model(tmp_path / "model.pt", name="clf")
    assert (model.type, model.name) == ("model", "clf:v0")
    writer.finish()
    reader = init(store_dir)
    path = Path(reader.use_model("clf:latest"))
    assert path.name == "model.pt" and path.is_file() and path.read_bytes() == weights


def test_use_model_returns_the_directory_of_a_multi_file_model(store_dir: Path, tmp_path: Path):
    """use_model() of a model logged from a directory: the directory, holding its files."""
    files = {"config.json": b"{}", "weights/layer0.bin": os.urandom(500)}
    write_tree(tmp_path / "net", files)
    writer = init(store_dir)
    writer.log_model(tmp_path / "net", name="net")
    writer.finish()
    reader = init(store_dir)
    path = Path(reader.use_model("net"))
    assert path.is_dir() and read_tree(path) == files


def test_use_model_of_a_dataset_is_refused(store_dir: Path, tmp_path: Path):
    """use_model() takes models only, and says to use use_artifact() for the rest."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one"})
    with pytest.raises(UsageError, match=r"use_model\('data'\).*'dataset'.*use_artifact"):
        run.use_model("data")


def test_link_model_registers_a_version_sharing_the_objects(store_dir: Path, tmp_path: Path):
    """link_model() puts a version in project 'model-registry' whose files are the same objects."""
    weights = os.urandom(5000)
    (tmp_path / "model.pt").write_bytes(weights)
    run = init(store_dir)
    linked = run.link_model(tmp_path / "model.pt", "classifier", name="clf", aliases=["staging"])
    assert linked.project == "model-registry" and linked.name == "classifier:v0"
    assert [p.name for p in object_files(store_dir)] == [sha256(weights)]
    api = tj.Api(dir=store_dir)
    registered = api.artifact("model-registry/classifier:staging")
    assert registered.type == "model"
    assert read_tree(registered.download(root=str(tmp_path / "reg"))) == {"model.pt": weights}
    source = api.artifact("p/clf:latest")
    assert source.get_entry("model.pt").digest == registered.get_entry("model.pt").digest


# -------------------------------------------------------------------------------------- references


def test_a_file_reference_is_recorded_without_copying_and_downloaded_as_a_copy(store_dir, tmp_path):
    """add_reference('file://...') stores no object; download() copies the file; verify() passes."""
    target = tmp_path / "outside" / "big.csv"
    target.parent.mkdir()
    target.write_bytes(b"a,b\n1,2\n")
    run = init(store_dir)
    artifact = Artifact("refs", "dataset")
    [entry] = artifact.add_reference(target.as_uri())
    assert entry.path == "big.csv" and entry.ref_url() == target.resolve().as_uri()
    version = run.log_artifact(artifact)
    assert object_files(store_dir) == []
    assert version.get_entry("big.csv").digest == sha256(b"a,b\n1,2\n")
    assert read_tree(version.download()) == {"big.csv": b"a,b\n1,2\n"}
    version.verify()


def test_downloading_a_changed_file_reference_is_an_error(store_dir: Path, tmp_path: Path):
    """A referenced file that changed since it was logged makes download() fail and write nothing."""
    target = tmp_path / "ref.txt"
    target.write_bytes(b"original")
    run = init(store_dir)
    artifact = Artifact("refs", "dataset")
    artifact.add_reference(target.as_uri())
    version = run.log_artifact(artifact)
    target.write_bytes(b"changed!")
    with pytest.raises(UsageError, match=r"ref\.txt.*changed since it was added"):
        version.download(root=str(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == {}


def test_a_directory_reference_adds_one_entry_per_file(store_dir: Path, tmp_path: Path):
    """add_reference of a file:// directory: one entry per file, under name/ when given."""
    files = {"a.txt": b"a", "nested/b.txt": b"bb", "nested/deeper/c.txt": b"ccc"}
    write_tree(tmp_path / "refdir", files)
    run = init(store_dir)
    artifact = Artifact("refs", "dataset")
    entries = artifact.add_reference((tmp_path / "refdir").as_uri(), name="data")
    assert sorted(e.path for e in entries) == ["data/a.txt", "data/nested/b.txt", "data/nested/deeper/c.txt"]
    version = run.log_artifact(artifact)
    assert object_files(store_dir) == []
    assert read_tree(version.download()) == {f"data/{k}": v for k, v in files.items()}


# ------------------------------------------------------------------------------------------ incremental


def test_an_incremental_draft_adds_to_the_latest_version(store_dir: Path, tmp_path: Path):
    """incremental=True: the new version holds the latest version's files plus the added one."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one", "b": b"two"})
    (tmp_path / "c").write_bytes(b"three")
    draft = Artifact("data", "dataset", incremental=True)
    draft.add_file(tmp_path / "c")
    version = run.log_artifact(draft)
    assert version.version == "v1"
    assert read_tree(version.download()) == {"a": b"one", "b": b"two", "c": b"three"}


def test_remove_in_an_incremental_draft_drops_that_file(store_dir: Path, tmp_path: Path):
    """remove('b') in an incremental draft: the new version is the latest one without b."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"a": b"one", "b": b"two"})
    draft = Artifact("data", "dataset", incremental=True)
    draft.remove("b")
    version = run.log_artifact(draft)
    assert version.version == "v1"
    assert read_tree(version.download()) == {"a": b"one"}
    assert read_tree(run.use_artifact("data:v0").download()) == {"a": b"one", "b": b"two"}


def test_remove_of_a_directory_in_an_incremental_draft_drops_its_files(store_dir: Path, tmp_path: Path):
    """remove('raw') removes 'every file under a directory path', in an incremental draft too."""
    run = init(store_dir)
    log_tree(run, tmp_path, "data", {"keep.txt": b"k", "raw/f0": b"0", "raw/f1": b"1"})
    draft = Artifact("data", "dataset", incremental=True)
    draft.remove("raw")
    version = run.log_artifact(draft)
    assert read_tree(version.download()) == {"keep.txt": b"k"}
    assert version.version == "v1"


# ------------------------------------------------------------------------------------ module level


@pytest.mark.parametrize(
    "call",
    [
        lambda d: tj.log_artifact(Artifact("x", "dataset")),
        lambda d: tj.use_artifact("x:latest"),
        lambda d: tj.log_model(d / "m.pt"),
        lambda d: tj.use_model("x"),
        lambda d: tj.link_model(d / "m.pt", "reg"),
    ],
    ids=["log_artifact", "use_artifact", "log_model", "use_model", "link_model"],
)
def test_module_level_calls_without_a_run_say_to_call_init(tmp_path: Path, call):
    """tracker_jupyter.log_artifact() and friends without a run: a UsageError telling to call init()."""
    (tmp_path / "m.pt").write_bytes(b"m")
    with pytest.raises(UsageError, match=r"needs an active run: call tracker_jupyter\.init\(\) first"):
        call(tmp_path)


def test_module_level_calls_use_the_current_run(store_dir: Path, tmp_path: Path):
    """With a run, tracker_jupyter.log_artifact / use_artifact / log_model / use_model act on it."""
    (tmp_path / "f.txt").write_bytes(b"file")
    (tmp_path / "m.pt").write_bytes(b"model")
    run = init(store_dir)
    artifact = Artifact("data", "dataset")
    artifact.add_file(tmp_path / "f.txt")
    assert tj.log_artifact(artifact).name == "data:v0"
    used = tj.use_artifact("data:v0")
    assert read_tree(used.download()) == {"f.txt": b"file"}
    tj.log_model(tmp_path / "m.pt", name="m")
    assert Path(tj.use_model("m")).read_bytes() == b"model"
    run.finish()
    record = tj.Api(dir=store_dir).run(f"p/{run.id}")
    assert [a.name for a in record.logged_artifacts()] == ["data:v0", "m:v0"]
    assert [a.name for a in record.used_artifacts()] == ["data:v0", "m:v0"]


def test_a_disabled_run_returns_the_draft_unlogged_and_writes_nothing(store_dir: Path, tmp_path: Path):
    """mode='disabled': log_artifact() gives the draft back (state PENDING) and no store is written."""
    (tmp_path / "f.txt").write_bytes(b"file")
    run = init(store_dir, mode="disabled")
    artifact = Artifact("data", "dataset")
    artifact.add_file(tmp_path / "f.txt")
    returned = run.log_artifact(artifact, aliases=["best"])
    assert returned is artifact
    assert returned.state == "PENDING" and returned.is_draft() and returned.name == "data"
    run.finish()
    assert not store_dir.exists()
    assert not (tmp_path / "tracker").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_a_disabled_run_reads_versions_from_the_store_init_was_given(store_dir: Path, tmp_path: Path):
    """A disabled run's use_artifact() looks in init(dir=...)'s store, like every other run."""
    writer = init(store_dir)
    log_tree(writer, tmp_path, "data", {"a": b"one"})
    writer.finish()
    run = init(store_dir, mode="disabled")
    assert read_tree(run.use_artifact("data:latest").download()) == {"a": b"one"}


# ------------------------------------------------------------------------------------------- values


def test_get_returns_the_added_table_on_the_draft_and_in_another_run(store_dir: Path):
    """artifact.get('preds') equals the Table added, before logging and after use_artifact elsewhere."""
    table = Table(columns=["id", "label", "score"], data=[[1, "cat", 0.9], [2, "dog", 0.25]])
    writer = init(store_dir)
    draft = Artifact("evals", "predictions")
    draft.add(table, "preds")
    assert draft.get("preds") == table
    logged = writer.log_artifact(draft)
    assert logged.get("preds") == table
    writer.finish()
    reader = init(store_dir)
    used = reader.use_artifact("evals:latest")
    got = used.get("preds")
    assert isinstance(got, Table) and got == table
    assert got.columns == ["id", "label", "score"] and got.data == [[1, "cat", 0.9], [2, "dog", 0.25]]
    assert used.get("absent") is None
