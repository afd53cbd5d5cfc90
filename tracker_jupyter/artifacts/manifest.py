"""An artifact's files: ``ArtifactManifestEntry`` (one file or reference) and ``ArtifactManifest``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.artifacts import ArtifactStore, Entry, hash_file, manifest_digest


class ArtifactManifestEntry:
    """One file of an artifact: its ``path`` in the artifact, ``digest`` (sha256), ``size`` and, for a
    reference, the ``ref`` URI it points at."""

    def __init__(
        self,
        path: str,
        digest: str | None,
        size: int | None,
        *,
        ref: str | None = None,
        local_path: str | None = None,
        extra: Mapping[str, Any] | None = None,
        artifact: Any = None,  # the Artifact it belongs to
    ) -> None:
        self.path = path
        self._digest = digest
        self.size = size
        self.ref = ref
        self.local_path = local_path
        self.extra = dict(extra or {})
        self._artifact = artifact
        self._stored_in: ArtifactStore | None = None  # the store holding the content already, if any

    @property
    def digest(self) -> str:
        if self._digest is None and self.local_path is not None:  # a draft's file, hashed when asked
            self._digest = hash_file(Path(self.local_path))
        return self._digest or ""

    @property
    def name(self) -> str:
        return self.path

    def ref_url(self) -> str:
        if self.ref is None:
            raise UsageError(f"artifact entry {self.path!r} is a file of the artifact, not a reference.")
        return self.ref

    ref_target = ref_url

    def download(self, root: str | None = None, skip_cache: bool | None = None) -> str:
        """Write this one file under ``root`` (default: the artifact's download directory); its path."""
        if self._artifact is None:
            raise UsageError(f"artifact entry {self.path!r} belongs to no artifact.")
        return self._artifact._download_entry(self, root)

    def _to_json(self) -> Entry:
        entry: Entry = {"path": self.path, "digest": self.digest, "size": self.size}
        if self.ref is not None:
            entry["ref"] = self.ref
        if self.extra:
            entry["extra"] = self.extra
        return entry

    def __repr__(self) -> str:
        return f"<ArtifactManifestEntry {self.path!r} {self.size} bytes {self.digest[:12]}>"


class ArtifactManifest:
    """The files of an artifact by path (``manifest.entries``)."""

    def __init__(self, entries: dict[str, ArtifactManifestEntry]) -> None:
        self.entries = entries

    def digest(self) -> str:
        return manifest_digest({path: e._to_json() for path, e in self.entries.items()})

    def to_manifest_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "digest": "sha256",
            "contents": {path: e._to_json() for path, e in sorted(self.entries.items())},
        }

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"<ArtifactManifest {len(self.entries)} entries>"


def verify_tree(name: str, base: Path, entries: Mapping[str, ArtifactManifestEntry]) -> None:
    """``ValueError`` unless ``base`` holds exactly the files of ``entries``, with their content."""
    if not base.is_dir():
        raise ValueError(f"artifact {name!r}: {base} does not exist; download() it first.")
    present = {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()}
    extra = sorted(present - set(entries))
    if extra:
        raise ValueError(f"artifact {name!r}: {base} holds files not in the artifact: {extra[:5]}")
    for entry in entries.values():
        path = base / entry.path
        if not path.is_file():
            raise ValueError(f"artifact {name!r}: {entry.path} is missing under {base}.")
        if entry.ref is not None and not is_sha256(entry.digest):
            continue  # an unchecked reference: its digest is its URI
        if hash_file(path) != entry.digest:
            raise ValueError(f"artifact {name!r}: {entry.path} under {base} has other content.")


def is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)
