"""``Artifact``: a versioned set of files, in the reference's shape.

A draft is built with ``add_file`` / ``add_dir`` / ``add_reference`` / ``new_file`` / ``add`` and logged
with ``run.log_artifact()``; then it is a version (``name:v0``) whose files live in the store's
content-addressed objects, and ``download()`` writes them where the code wants them. Versions read back
(``use_artifact``, ``Api().artifact``) are the same class, committed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from tracker_jupyter.artifacts.checks import (
    checked_aliases,
    checked_description,
    checked_entry_name,
    checked_metadata,
    existing,
)
from tracker_jupyter.artifacts.manifest import ArtifactManifest, ArtifactManifestEntry, verify_tree
from tracker_jupyter.artifacts.references import check_stored, reference_entries, write_entries
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.artifacts import (
    ArtifactStore,
    check_artifact_name,
    hash_file,
    remove_extra_files,
)
from tracker_jupyter.store.records import RunRecord, find_run

ARTIFACT_DIR_ENV = "TRACKER_ARTIFACT_DIR"  # where download() puts versions by default (``./artifacts``)


class Artifact:
    """A versioned set of files: a dataset, a model, evaluation results.

    Parameters
    ----------
    name
        The artifact's name in its project: letters, digits, ``_``, ``-`` and ``.``.
    type
        What it is (``"dataset"``, ``"model"``, ...); one type per name in a project. ``model`` artifacts
        also become versions of a registered model on an MLflow server.
    description, metadata
        Free text, and a JSON-able dict stored with the version.
    incremental
        A new version starts from the files of the latest one: what is added or removed here changes it.
    use_as
        Accepted for the reference's signature; it has no effect.
    """

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
        storage_region: str | None = None,
    ) -> None:
        self._name = check_artifact_name(name)
        if not isinstance(type, str) or not type or "/" in type or ":" in type:
            raise UsageError(
                f"Artifact(type=...) must be a non-empty string without '/' or ':', got {type!r}."
            )
        self.type = type
        self.description = checked_description(description)
        self._metadata = checked_metadata(metadata)
        self.incremental = bool(incremental)
        self._entries: dict[str, ArtifactManifestEntry] = {}
        self._removed: set[str] = set()
        self._aliases: list[str] = []
        self._tags: list[str] = []
        self._record: dict[str, Any] | None = None
        self._store: ArtifactStore | None = None
        self._project: str | None = None
        self._entity: str | None = None
        self._staging: str | None = None
        self._final = False
        self._open_run: Callable[[Path], Any] = RunRecord

    # ------------------------------------------------------------------------------------ what it is
    @classmethod
    def _from_record(
        cls, record: dict[str, Any], store: ArtifactStore, *, entity: str | None = None
    ) -> Artifact:
        artifact = cls(
            str(record["name"]), str(record["type"]), record.get("description"), record.get("metadata")
        )
        artifact._tags = list(record.get("tags") or [])
        artifact._final = True
        artifact._store = store
        artifact._project = str(record["project"])
        artifact._entity = entity
        artifact._load(record)
        return artifact

    def _load(self, record: dict[str, Any]) -> None:
        self._record = record
        self._aliases = [a for a in record.get("aliases", []) if a != "latest"]
        self._entries = {
            path: ArtifactManifestEntry(
                path, e.get("digest"), e.get("size"), ref=e.get("ref"), extra=e.get("extra"), artifact=self
            )
            for path, e in (record.get("entries") or {}).items()
        }

    def is_draft(self) -> bool:
        """True until the artifact is logged."""
        return self._record is None

    def _committed(self, what: str) -> dict[str, Any]:
        if self._record is None:
            raise UsageError(
                f"Artifact {self._name!r} is a draft: {what} exists once it is logged "
                "(run.log_artifact(artifact))."
            )
        return self._record

    @property
    def name(self) -> str:
        """``name:v<N>`` once logged; the bare name of a draft."""
        return self._name if self._record is None else f"{self._name}:v{self._record['version']}"

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def collection_name(self) -> str:
        return self._name

    @property
    def qualified_name(self) -> str:
        """``entity/project/name:v<N>`` (without the entity when the run has none)."""
        self._committed("qualified_name")
        return "/".join([*([self._entity] if self._entity else []), str(self._project), self.name])

    source_qualified_name = qualified_name

    @property
    def version(self) -> str:
        return f"v{self._committed('version')['version']}"

    @property
    def id(self) -> str | None:
        return None if self._record is None else f"{self._project}/{self._name}:v{self._record['version']}"

    @property
    def project(self) -> str | None:
        return self._project

    @property
    def entity(self) -> str | None:
        return self._entity

    @property
    def state(self) -> str:
        """``PENDING`` for a draft, ``COMMITTED`` once logged."""
        return "PENDING" if self._record is None else "COMMITTED"

    @property
    def digest(self) -> str:
        """The digest of the files (names and contents): equal digests, equal content."""
        if self._record is not None:
            return str(self._record["digest"])
        return self.manifest.digest()

    commit_hash = digest

    @property
    def size(self) -> int:
        return sum(int(e.size or 0) for e in self._entries.values())

    @property
    def file_count(self) -> int:
        return len(self._entries)

    @property
    def created_at(self) -> str | None:
        if self._record is None:
            return None
        import datetime

        moment = datetime.datetime.fromtimestamp(float(self._record["created_at"]), datetime.timezone.utc)
        return moment.isoformat()

    updated_at = created_at

    @property
    def manifest(self) -> ArtifactManifest:
        return ArtifactManifest(self._entries)

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._metadata = checked_metadata(value)

    @property
    def aliases(self) -> list[str]:
        """The user aliases (``latest`` is implied for the newest version: ``use_artifact("x:latest")``)."""
        return list(self._aliases)

    @aliases.setter
    def aliases(self, value: Sequence[str]) -> None:
        self._aliases = checked_aliases(value, "aliases")

    @property
    def tags(self) -> list[str]:
        return list(self._tags)

    @tags.setter
    def tags(self, value: Sequence[str]) -> None:
        if isinstance(value, str) or not all(isinstance(t, str) and t for t in value):
            raise UsageError(f"Artifact.tags must be a list of non-empty strings, got {value!r}.")
        self._tags = list(value)

    ttl = None
    url = None

    # ------------------------------------------------------------------------------------- building
    def _draft(self, what: str) -> None:
        if self._record is not None or self._final:
            raise UsageError(
                f"Artifact {self.name!r} is logged and cannot change: {what} needs a new version. "
                "Start one with artifact.new_draft()."
            )

    def _check_free(self, path: str, where: str) -> None:
        if path in self._entries:
            raise UsageError(
                f"Artifact {self._name!r}.{where}: it holds a file named {path!r} already; pass "
                "overwrite=True to replace it, or name=... to add it under another name."
            )

    def _put(self, entry: ArtifactManifestEntry, overwrite: bool, where: str) -> ArtifactManifestEntry:
        if not overwrite:
            self._check_free(entry.path, where)
        self._entries[entry.path] = entry
        self._removed.discard(entry.path)
        return entry

    def add_file(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        is_tmp: bool | None = False,
        skip_cache: bool | None = False,
        policy: str = "mutable",
        overwrite: bool = False,
    ) -> ArtifactManifestEntry:
        """Add the file at ``local_path`` as ``name`` (default: its file name).

        ``policy="mutable"`` (the default) keeps the content the file has now, even if it changes before
        the artifact is logged; ``"immutable"`` reads it when logged. ``is_tmp`` names the file after its
        content so temporary files never collide.
        """
        self._draft("add_file()")
        if policy not in ("mutable", "immutable"):
            raise UsageError(f"add_file(policy=...) must be 'mutable' or 'immutable', got {policy!r}.")
        path = existing(local_path, "add_file", "local_path", want="file")
        entry_name = checked_entry_name(name if name is not None else path.name, "add_file")
        stat = path.stat()
        if is_tmp:
            stem, dot, suffix = entry_name.rpartition(".")
            digest = hash_file(path)
            entry_name = f"{stem}.{digest[:20]}.{suffix}" if dot and stem else f"{entry_name}.{digest[:20]}"
        if policy == "immutable":
            entry = ArtifactManifestEntry(entry_name, None, stat.st_size, local_path=str(path), artifact=self)
            return self._put(entry, overwrite, "add_file()")
        if not overwrite:
            self._check_free(entry_name, "add_file()")  # before the content is stored
        from tracker_jupyter.artifacts.stores import active_store

        store = active_store()
        if store is None:  # no run yet: the content is kept in a staging copy until it is logged
            staged = self._stage_copy(path, entry_name)
            entry = ArtifactManifestEntry(
                entry_name, None, stat.st_size, local_path=str(staged), artifact=self
            )
        else:  # straight into the run's store: read once, written once (not at all when known)
            digest, size = store.put_object(path)
            entry = ArtifactManifestEntry(entry_name, digest, size, artifact=self)
            entry._stored_in = store
        return self._put(entry, overwrite, "add_file()")

    def _stage_copy(self, path: Path, entry_name: str) -> Path:
        staged = Path(self._staging_dir()) / "files" / entry_name
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, staged)
        return staged

    def _staging_dir(self) -> str:
        if self._staging is None:
            self._staging = tempfile.mkdtemp(prefix="tracker-artifact-")
            weakref.finalize(self, shutil.rmtree, self._staging, True)
        return self._staging

    def add_dir(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        skip_cache: bool | None = False,
        policy: str = "mutable",
        merge: bool = False,
    ) -> None:
        """Add every file under the directory ``local_path``, under ``name/`` (default: at the top).
        ``merge=True`` lets its files replace ones of the same name already added."""
        self._draft("add_dir()")
        folder = existing(local_path, "add_dir", "local_path", want="dir")
        prefix = "" if not name else checked_entry_name(name, "add_dir").rstrip("/") + "/"
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if not merge:
            for path in files:
                self._check_free(prefix + path.relative_to(folder).as_posix(), "add_dir()")
        for path in files:
            entry_name = prefix + path.relative_to(folder).as_posix()
            self.add_file(path, name=entry_name, policy=policy, overwrite=True)

    def add_reference(
        self,
        uri: str | os.PathLike[str],
        name: str | None = None,
        checksum: bool = True,
        max_objects: int | None = None,
    ) -> Sequence[ArtifactManifestEntry]:
        """Record ``uri`` (``file://`` or ``http(s)://``) without copying it. A ``file://`` directory adds
        one entry per file (at most ``max_objects``, default 10,000). With ``checksum``, a file is hashed
        now (and ``download()`` checks it has not changed); an HTTP reference keeps its ``ETag``."""
        self._draft("add_reference()")
        added = []
        for path, uri_of_file, digest, size in reference_entries(uri, name, checksum, max_objects):
            entry = ArtifactManifestEntry(path, digest, size, ref=uri_of_file, artifact=self)
            added.append(self._put(entry, True, "add_reference()"))
        return added

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "x", encoding: str | None = None) -> Iterator[IO[Any]]:
        """Open a new file of the artifact to write (``with artifact.new_file("labels.txt") as f:``);
        it is added when the block ends."""
        self._draft("new_file()")
        entry_name = checked_entry_name(name, "new_file")
        if entry_name in self._entries:
            raise UsageError(
                f"Artifact {self._name!r}.new_file(): it holds a file named {entry_name!r} already."
            )
        if "r" in mode or "+" in mode:
            raise UsageError(f"new_file(mode=...) opens a file to write ('w', 'x', 'wb', ...), got {mode!r}.")
        path = Path(self._staging_dir()) / "new" / entry_name
        path.parent.mkdir(parents=True, exist_ok=True)
        if "b" not in mode:
            encoding = encoding or "utf-8"
        with open(path, mode.replace("x", "w") if not path.exists() else mode, encoding=encoding) as fh:
            yield fh
        self.add_file(path, name=entry_name, policy="immutable")

    def add(self, obj: Any, name: str, overwrite: bool = False) -> ArtifactManifestEntry:
        """Add a ``Table`` (as ``<name>.table.json``) or another media value (``<name>.<kind>.<format>``);
        ``artifact.get(name)`` gives it back."""
        self._draft("add()")
        from tracker_jupyter.artifacts.values import store_value

        check = checked_entry_name(name, "add")
        files, main = store_value(obj, check, Path(self._staging_dir()) / "values")
        for entry_name, path in files:
            self.add_file(
                path, name=entry_name, policy="immutable", overwrite=overwrite or entry_name != main
            )
        return self._entries[main]

    def __setitem__(self, name: str, obj: Any) -> None:
        self.add(obj, name)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def get(self, name: str) -> Any:
        """A value added with ``add()`` (a ``Table``, an ``Image``...), read back; None when absent."""
        from tracker_jupyter.artifacts.values import MEDIA_SUFFIXES, load_value

        for suffix in MEDIA_SUFFIXES:
            for path in self._entries:
                if path == name or (path.startswith(name + ".") and path.endswith(suffix)):
                    return load_value(Path(self._entry_file(self._entries[path])))
        return None

    def get_entry(self, name: str) -> ArtifactManifestEntry:
        """The entry for the file ``name``; ``KeyError`` names what is there when it is absent."""
        try:
            return self._entries[name]
        except KeyError:
            some = ", ".join(sorted(self._entries)[:5]) or "none"
            raise KeyError(f"artifact {self.name!r} has no file {name!r} (files: {some})") from None

    get_path = get_entry

    def remove(self, item: str | ArtifactManifestEntry) -> None:
        """Remove a file (by path or entry), or every file under a directory path."""
        self._draft("remove()")
        path = item.path if isinstance(item, ArtifactManifestEntry) else str(item)
        under = [p for p in self._entries if p == path or p.startswith(path.rstrip("/") + "/")]
        if not under and not self.incremental:
            raise UsageError(f"Artifact {self._name!r}.remove(): it has no file {path!r}.")
        for p in under:
            del self._entries[p]
        self._removed.update(under or [path])

    def files(self, names: list[str] | None = None, per_page: int = 50) -> list[ArtifactManifestEntry]:
        """The files (entries), or only those named."""
        entries = list(self._entries.values())
        return [e for e in entries if names is None or e.path in names]

    # -------------------------------------------------------------------------------------- reading
    def _default_root(self) -> Path:
        base = os.environ.get(ARTIFACT_DIR_ENV) or "./artifacts"
        return Path(base) / self.name

    def _entry_file(self, entry: ArtifactManifestEntry) -> str:
        """A readable file with the entry's content: the draft's source, or the stored object."""
        if entry.local_path is not None:
            return entry.local_path
        if entry._stored_in is not None and entry._digest is not None:
            return str(entry._stored_in.object_path(entry._digest))
        root = self.download(Path(tempfile.gettempdir()) / "tracker-artifact-get" / self._key())
        return str(Path(root) / entry.path)

    def _key(self) -> str:
        return f"{self._project}-{self._name}-{self.digest[:16]}"

    def _ready(self) -> ArtifactStore:
        self._committed("download()")
        assert self._store is not None
        check_stored(self.name, self._store, self._entries.values())
        return self._store

    def _download_entry(self, entry: ArtifactManifestEntry, root: str | None) -> str:
        store = self._ready()
        return write_entries(store, [entry], Path(root) if root is not None else self._default_root())[0]

    def download(
        self,
        root: str | os.PathLike[str] | None = None,
        allow_missing_references: bool = False,
        skip_cache: bool | None = None,
        path_prefix: str | None = None,
        multipart: bool | None = None,
    ) -> str:
        """Write this version's files under ``root`` and return it.

        Default root: ``./artifacts/<name>:v<N>``, or under ``$TRACKER_ARTIFACT_DIR`` (the store root given
        to ``init(dir=...)`` does not change it). Files already there with the right content are kept; a
        kill during a download leaves no half file (rerunning finishes it). Only files under
        ``path_prefix`` when given. References are fetched: ``file://`` ones copied, ``http(s)`` ones
        downloaded; a reference that cannot be fetched is an error unless ``allow_missing_references``.
        """
        store = self._ready()
        target_root = Path(os.fspath(root)) if root is not None else self._default_root()
        target_root.mkdir(parents=True, exist_ok=True)
        entries = [e for e in self._entries.values() if path_prefix is None or e.path.startswith(path_prefix)]
        write_entries(store, entries, target_root, allow_missing_references=allow_missing_references)
        return str(target_root)

    def checkout(self, root: str | None = None) -> str:
        """``download()``, then delete the files under ``root`` that are not in this version."""
        path = self.download(root)
        remove_extra_files(Path(path), self._entries)
        return path

    def file(self, root: str | None = None) -> str:
        """Download a one-file artifact; the path of that file."""
        if len(self._entries) != 1:
            raise UsageError(
                f"artifact {self.name!r}.file() is for artifacts of one file; it has {len(self._entries)}: "
                "use download()."
            )
        return next(iter(self._entries.values())).download(root)

    def verify(self, root: str | None = None) -> None:
        """Check that ``root`` (default: the download directory) holds exactly this version's files;
        ``ValueError`` says which file differs."""
        self._committed("verify()")
        verify_tree(self.name, Path(root) if root is not None else self._default_root(), self._entries)

    def wait(self, timeout: int | None = None) -> Artifact:
        """Logging finishes before ``log_artifact()`` returns: this returns the artifact at once."""
        self._committed("wait()")
        return self

    def is_logged(self) -> bool:
        return self._record is not None

    # ---------------------------------------------------------------------------------- lineage
    def logged_by(self) -> Any:
        """The run that logged this version (``None`` when it is not in this store)."""
        record = self._committed("logged_by()")
        return self._run_at(record.get("logged_by"))

    def used_by(self) -> list[Any]:
        """The runs that used this version, first use first."""
        record = self._committed("used_by()")
        assert self._store is not None
        runs = [
            self._run_at(path)
            for path in self._store.used_by(str(self._project), self._name, int(record["version"]))
        ]
        return [run for run in runs if run is not None]

    def _run_at(self, path: str | None) -> Any:
        if not path or self._store is None:
            return None
        try:
            return self._open_run(find_run(self._store.root, path).dir)
        except UsageError:
            return None

    # ---------------------------------------------------------------------------------- changing
    def save(self, project: str | None = None, settings: Any = None) -> None:
        """A draft: log it to the current run. A logged version: store its changed description, metadata
        and aliases (its files never change)."""
        if self._record is None:
            from tracker_jupyter.core.holder import holder

            if holder.run is None:
                raise UsageError(
                    f"Artifact {self._name!r}.save() logs it to the current run: call tracker_jupyter.init() "
                    "first, or use run.log_artifact(artifact)."
                )
            holder.run.log_artifact(self)
            return
        assert self._store is not None
        record = self._store.update(
            str(self._project), self._name, int(self._record["version"]),
            description=self.description, metadata=self._metadata, aliases=self._aliases,
        )  # fmt: skip
        self._load(record)

    def delete(self, delete_aliases: bool = False) -> None:
        """Remove this version from the store. A version holding aliases needs ``delete_aliases=True``."""
        record = self._committed("delete()")
        if self._aliases and not delete_aliases:
            raise UsageError(
                f"artifact {self.name!r} holds the aliases {self._aliases}; pass delete_aliases=True to "
                "delete it with them."
            )
        assert self._store is not None
        self._store.delete(str(self._project), self._name, int(record["version"]))

    def new_draft(self) -> Artifact:
        """A draft holding this version's files, to log a new version from."""
        draft = Artifact(self._name, self.type, self.description, dict(self._metadata))
        for path, entry in self._entries.items():
            copy = ArtifactManifestEntry(
                path, entry._digest, entry.size, ref=entry.ref, extra=entry.extra, artifact=draft
            )
            copy._stored_in = self._store if entry.ref is None else None  # the content is stored already
            draft._entries[path] = copy
        return draft

    def link(self, target_path: str, aliases: list[str] | None = None) -> None:
        """Link this version into the collection ``target_path`` (see ``Run.link_artifact``)."""
        from tracker_jupyter.core.holder import holder

        if holder.run is None:
            raise UsageError("Artifact.link() needs an active run: call tracker_jupyter.init() first.")
        holder.run.link_artifact(self, target_path, aliases)

    def json_encode(self) -> dict[str, Any]:
        return {"_type": "artifactVersion", "_version": "v0", "id": self.id, "version": self.version,
                "sequenceName": self._name, "usedAs": self._name}  # fmt: skip

    def __repr__(self) -> str:
        return f"<Artifact {self.name} type={self.type!r} {len(self._entries)} files {self.state}>"
