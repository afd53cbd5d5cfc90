"""Artifact versions in the store: content-addressed file objects, version records, aliases and lineage.

Layout under the store root::

    <root>/.artifacts/objects/<d[:2]>/<d>   each file once, named by the sha256 ``d`` of its content
    <root>/.artifacts/digests.json           path -> (size, mtime, inode, ctime, when hashed, digest), so
                                             a file seen unchanged is not read again
    <root>/<project>/.artifacts/<name>/
        collection.json   the artifact's type (one type per name and project) and the next version
                          number (a deleted version's number is never given to other content)
        v<N>.json         version N: its manifest (path -> digest, size, reference), digest, metadata,
                          the run that logged it
        aliases.json      user aliases -> version (``latest`` is always the newest version, never stored)
        used_by.jsonl     one line per run that used a version
        lock              ``flock``-ed while a version is committed

Why it is crash-safe and safe between processes: an object is copied to a temporary name, checked against
its digest and renamed into place, so an object file is whole or absent. A version exists once its
``v<N>.json`` is renamed into place, after all of its objects; until then nothing refers to the copied
objects, and logging again finishes the job (the objects are there already, so it costs only the check).
Versions are numbered under the collection's ``flock``: two processes logging the same name at once get
two versions, or one when their content is identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.files import atomic_write, read_json, write_json_atomic

ARTIFACTS = ".artifacts"
CHUNK = 4 << 20
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
VERSION_PATTERN = re.compile(r"^v(\d+)$")
MAX_NAME = 128
MAX_DIGEST_CACHE = 100_000
RACY_NS = 2_000_000_000  # a file changed less than this before it was hashed is hashed again next time

Entry = dict[str, Any]  # {"path", "digest", "size", "ref"?, "extra"?}


def check_artifact_name(value: Any, where: str = "name") -> str:
    """An artifact name: letters, digits, ``_``, ``-`` and ``.``; ``/`` and ``:`` separate project and alias."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"Artifact {where} must be a non-empty string, got {value!r}.")
    if len(value) > MAX_NAME:
        raise UsageError(
            f"Artifact {where} {value[:20]!r}... is {len(value)} characters long; at most {MAX_NAME}."
        )
    if not NAME_PATTERN.match(value) or value in (".", ".."):
        hint = (
            " '/' separates a project and ':' a version or alias in use_artifact('project/name:alias');"
            " they cannot be part of a name."
            if ("/" in value or ":" in value)
            else ""
        )
        raise UsageError(f"Artifact {where} {value!r} may hold only letters, digits, '_', '-' and '.'.{hint}")
    return value


def check_alias(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"An artifact alias must be a non-empty string, got {value!r}.")
    if "/" in value or ":" in value or len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise UsageError(
            f"Artifact alias {value!r} is not allowed: no '/' or ':', no control characters, at most "
            f"{MAX_NAME} characters."
        )
    if VERSION_PATTERN.match(value):
        raise UsageError(
            f"Artifact alias {value!r} looks like a version; versions are numbered by the store. Pick "
            "another alias (for example 'best' or 'production')."
        )
    return value


def manifest_digest(entries: Mapping[str, Entry]) -> str:
    """The digest of a version: of its file names with their contents' digests (references by URI)."""
    h = hashlib.sha256()
    for path in sorted(entries):
        entry = entries[path]
        h.update(json.dumps([path, entry.get("digest"), entry.get("ref")]).encode())
        h.update(b"\n")
    return h.hexdigest()


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class ArtifactStore:
    """The artifacts of one store root. Safe to use from several threads and processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / ARTIFACTS / "objects"
        self._digests_path = self.root / ARTIFACTS / "digests.json"
        self._digests: dict[str, list[Any]] | None = None
        self._digests_changed = False
        self._swept = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ objects
    def object_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest

    def has_object(self, digest: str, size: int | None = None) -> bool:
        try:
            stat = self.object_path(digest).stat()
        except (FileNotFoundError, NotADirectoryError):
            return False
        return size is None or stat.st_size == size

    def _cache(self) -> dict[str, list[Any]]:
        if self._digests is None:
            loaded = read_json(self._digests_path, {})
            self._digests = loaded if isinstance(loaded, dict) else {}
        return self._digests

    def known_digest(self, path: Path, stat: os.stat_result) -> str | None:
        """The digest of ``path`` when it was hashed before and has not changed since: same size, mtime,
        ctime (``utime`` changes it) and inode, and it was hashed well after its last change (a rewrite
        within one timestamp tick of the hash would otherwise look unchanged: git's "racy clean")."""
        with self._lock:
            seen = self._cache().get(os.path.realpath(path))
        if not seen or len(seen) != 6:
            return None
        if seen[:4] != [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]:
            return None
        if seen[4] - max(stat.st_mtime_ns, stat.st_ctime_ns) < RACY_NS:
            return None
        return str(seen[5])

    def _remember(self, path: Path, stat: os.stat_result, digest: str) -> None:
        entry = [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns, time.time_ns(), digest]
        with self._lock:
            self._cache()[os.path.realpath(path)] = entry
            self._digests_changed = True

    def save_digests(self) -> None:
        """Keep what was hashed for the next process (best effort: the cache only saves reading)."""
        with self._lock:
            if not self._digests_changed or self._digests is None:
                return
            cache = self._digests
            if len(cache) > MAX_DIGEST_CACHE:  # oldest first (dicts keep insertion order)
                for key in list(cache)[: len(cache) - MAX_DIGEST_CACHE]:
                    del cache[key]
            try:
                self._digests_path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self._digests_path, json.dumps(cache))
                self._digests_changed = False
            except OSError:
                pass

    def put_object(self, source: Path) -> tuple[str, int]:
        """Store the content of ``source`` as an object; its digest and size. Reads it once, writes it
        only when no object has that content yet."""
        stat = os.stat(source)
        known = self.known_digest(source, stat)
        if known is not None and self.has_object(known, stat.st_size):
            return known, stat.st_size
        self.objects.mkdir(parents=True, exist_ok=True)
        if not self._swept:
            self._swept = True
            remove_stale_downloads([self.objects])  # what a killed process was copying in
        tmp = self.objects / f".incoming.tracker-{os.getpid()}-{threading.get_ident()}.tmp"
        h = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())  # whole on disk before its name says so, even across a power cut
            digest = h.hexdigest()
            target = self.object_path(digest)
            if self.has_object(digest, size):
                tmp.unlink()
            else:
                target.parent.mkdir(exist_ok=True)
                os.chmod(tmp, 0o444)  # objects are shared by versions and runs: never edited in place
                os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        after = os.stat(source)
        if (after.st_size, after.st_mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            self._remember(source, after, digest)
        return digest, size

    # ------------------------------------------------------------------------------------- collections
    def collection_dir(self, project: str, name: str) -> Path:
        return self.root / project / ARTIFACTS / check_artifact_name(name)

    def collections(self, project: str | None = None) -> list[tuple[str, str, str]]:
        """(project, name, type) of every artifact collection (of one project)."""
        found = []
        projects = (
            [project]
            if project
            else sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
            if self.root.is_dir()
            else []
        )
        for proj in projects:
            base = self.root / proj / ARTIFACTS
            if not base.is_dir():
                continue
            for folder in sorted(base.iterdir()):
                info = read_json(folder / "collection.json", None)
                if isinstance(info, dict):
                    found.append((proj, folder.name, str(info.get("type"))))
        return found

    def collection_type(self, project: str, name: str) -> str | None:
        info = read_json(self.collection_dir(project, name) / "collection.json", None)
        return str(info["type"]) if isinstance(info, dict) and "type" in info else None

    @contextlib.contextmanager
    def _locked(self, folder: Path) -> Iterator[None]:
        import fcntl

        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def version_numbers(self, project: str, name: str) -> list[int]:
        folder = self.collection_dir(project, name)
        if not folder.is_dir():
            return []
        numbers = []
        for path in folder.glob("v*.json"):
            match = VERSION_PATTERN.match(path.stem)
            if match:
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    def version(self, project: str, name: str, number: int) -> dict[str, Any] | None:
        record = read_json(self.collection_dir(project, name) / f"v{number}.json", None)
        if not isinstance(record, dict):
            return None
        record["aliases"] = self._aliases_of(project, name, number)
        return record

    def aliases(self, project: str, name: str) -> dict[str, int]:
        value = read_json(self.collection_dir(project, name) / "aliases.json", {})
        return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def _aliases_of(self, project: str, name: str, number: int) -> list[str]:
        numbers = self.version_numbers(project, name)
        own = [alias for alias, n in self.aliases(project, name).items() if n == number]
        return (["latest"] if numbers and numbers[-1] == number else []) + sorted(own)

    def resolve(self, project: str, name: str, alias: str = "latest") -> dict[str, Any] | None:
        """The version ``alias`` names (``latest``, ``v<N>`` or a user alias), or None."""
        numbers = self.version_numbers(project, name)
        if not numbers:
            return None
        match = VERSION_PATTERN.match(alias)
        if alias == "latest":
            number: int | None = numbers[-1]
        elif match:
            number = int(match.group(1))
        else:
            number = self.aliases(project, name).get(alias)
        return None if number is None else self.version(project, name, number)

    def commit(
        self,
        project: str,
        name: str,
        *,
        type: str,
        entries: Mapping[str, Entry],
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Iterable[str] = (),
        logged_by: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Record a version of ``project/name`` with ``entries`` (whose objects must be stored already).
        Returns the version and whether it is new: content identical to an existing version's makes no
        new one (its ``aliases`` still move to it)."""
        folder = self.collection_dir(project, name)
        for entry in entries.values():
            if entry.get("ref") is None and not self.has_object(entry["digest"], entry.get("size")):
                raise UsageError(f"artifact {name!r}: the content of {entry['path']!r} is not stored.")
        digest = manifest_digest(entries)
        with self._locked(folder):
            info = read_json(folder / "collection.json", None)
            kind = info.get("type") if isinstance(info, dict) else None
            if not isinstance(info, dict) or kind is None:
                info = {"type": type, "created_at": time.time()}
                write_json_atomic(folder / "collection.json", info, fsync=True)
            elif kind != type:
                raise UsageError(
                    f"artifact {project}/{name} has type {kind!r}; it cannot get a version of type {type!r}. "
                    "Use another name for artifacts of another type."
                )
            existing = None
            numbers = self.version_numbers(project, name)
            for number in reversed(numbers):
                record = read_json(folder / f"v{number}.json", None)
                if isinstance(record, dict) and record.get("digest") == digest:
                    existing = record
                    break
            if existing is None:
                # never a number a deleted version had: downloads and lineage name versions by number
                number = max(numbers[-1] + 1 if numbers else 0, int(info.get("next_version") or 0))
                record = {
                    "name": name,
                    "project": project,
                    "type": type,
                    "version": number,
                    "digest": digest,
                    "size": sum(int(e.get("size") or 0) for e in entries.values()),
                    "file_count": len(entries),
                    "description": description,
                    "metadata": dict(metadata or {}),
                    "created_at": time.time(),
                    "logged_by": logged_by,
                    "entries": {path: dict(entries[path]) for path in sorted(entries)},
                    **dict(extra or {}),
                }
                write_json_atomic(folder / f"v{number}.json", record, fsync=True)
                info["next_version"] = number + 1  # after the version: a kill before it leaves no gap
                write_json_atomic(folder / "collection.json", info, fsync=True)
            else:
                record = existing
            wanted = [check_alias(a) for a in aliases if a != "latest"]
            if wanted:
                current = self.aliases(project, name)
                current.update({alias: int(record["version"]) for alias in wanted})
                write_json_atomic(folder / "aliases.json", current, fsync=True)
        self.save_digests()
        out = self.version(project, name, int(record["version"]))
        assert out is not None
        return out, existing is None

    def adopt(self, record: dict[str, Any]) -> dict[str, Any]:
        """Keep a version fetched from a server (its objects stored already) under its own number, unless
        the store holds another version of that number (then it is returned without being kept)."""
        project, name, number = str(record["project"]), str(record["name"]), int(record["version"])
        folder = self.collection_dir(project, name)
        with self._locked(folder):
            kind = self.collection_type(project, name)
            if kind is None:
                write_json_atomic(
                    folder / "collection.json", {"type": record["type"], "created_at": time.time()}
                )
            elif kind != record["type"]:
                return dict(record, aliases=[])
            existing = read_json(folder / f"v{number}.json", None)
            if existing is None:
                kept = {k: v for k, v in record.items() if k != "aliases"}
                write_json_atomic(folder / f"v{number}.json", kept, fsync=True)
            elif isinstance(existing, dict) and existing.get("digest") != record.get("digest"):
                return dict(record, aliases=[])
        return self.version(project, name, number) or dict(record, aliases=[])

    def update(
        self,
        project: str,
        name: str,
        number: int,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Change a version's description, metadata or the aliases it holds (its files never change)."""
        folder = self.collection_dir(project, name)
        with self._locked(folder):
            record = read_json(folder / f"v{number}.json", None)
            if not isinstance(record, dict):
                raise UsageError(f"artifact {project}/{name}:v{number} is not in the store.")
            if description is not None or metadata is not None:
                if description is not None:
                    record["description"] = description
                if metadata is not None:
                    record["metadata"] = dict(metadata)
                write_json_atomic(folder / f"v{number}.json", record, fsync=True)
            if aliases is not None:
                wanted = {check_alias(a) for a in aliases if a != "latest"}
                current = {a: n for a, n in self.aliases(project, name).items() if n != number}
                current.update(dict.fromkeys(wanted, number))
                write_json_atomic(folder / "aliases.json", current, fsync=True)
        out = self.version(project, name, number)
        assert out is not None
        return out

    def delete(self, project: str, name: str, number: int) -> None:
        """Remove a version (its objects stay while other versions share them)."""
        folder = self.collection_dir(project, name)
        with self._locked(folder):
            current = {a: n for a, n in self.aliases(project, name).items() if n != number}
            write_json_atomic(folder / "aliases.json", current, fsync=True)
            (folder / f"v{number}.json").unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------ lineage
    def record_use(self, project: str, name: str, number: int, run_path: str) -> None:
        folder = self.collection_dir(project, name)
        folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"version": number, "run": run_path, "time": time.time()}) + "\n"
        fd = os.open(folder / "used_by.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())  # one write of a short line: appended whole
        finally:
            os.close(fd)

    def used_by(self, project: str, name: str, number: int) -> list[str]:
        runs: list[str] = []
        try:
            with open(self.collection_dir(project, name) / "used_by.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    try:
                        use = json.loads(line)
                    except ValueError:
                        continue  # a torn last line
                    if use.get("version") == number and use.get("run") not in runs:
                        runs.append(str(use.get("run")))
        except FileNotFoundError:
            pass
        return runs

    # ----------------------------------------------------------------------------------------- download
    def materialize(self, entry: Entry, target: Path) -> None:
        """Write the stored content of ``entry`` at ``target`` (whole or not at all); skipped when the file
        there has that content already."""
        digest, size = entry["digest"], entry.get("size")
        if (
            target.is_file()
            and (size is None or target.stat().st_size == size)
            and hash_file(target) == digest
        ):
            return
        source = self.object_path(digest)
        if not source.is_file():
            raise FileNotFoundError(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tracker-{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def remove_stale_downloads(folders: Iterable[Path]) -> None:
    """Delete the temporary files a killed download left in ``folders``."""
    for folder in folders:
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            match = _DOWNLOAD_TMP.match(name)
            if match and not _alive(
                int(match.group(1)), int(match.group(2))
            ):  # a live download's own file stays
                with contextlib.suppress(OSError):
                    os.unlink(folder / name)


_DOWNLOAD_TMP = re.compile(r"^\..+\.tracker-(\d+)-(\d+)\.tmp$")


def _alive(pid: int, thread: int) -> bool:
    """Whether the thread that named a temporary file may still be writing it."""
    if pid == os.getpid():
        return thread in {t.ident for t in threading.enumerate()}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_extra_files(root: Path, keep: Iterable[str]) -> list[str]:
    """Delete the files under ``root`` not named in ``keep`` (``checkout``); the removed names."""
    wanted = set(keep)
    removed = []
    for path in sorted(root.rglob("*")):
        if path.is_file() or path.is_symlink():
            relative = path.relative_to(root).as_posix()
            if relative not in wanted:
                path.unlink()
                removed.append(relative)
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only the ones left empty
    return removed
