"""References: files an artifact records by URI (``file://``, ``http(s)://``) instead of copying."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tracker_jupyter.artifacts.checks import checked_entry_name, inside
from tracker_jupyter.artifacts.manifest import ArtifactManifestEntry, is_sha256
from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.store.artifacts import ArtifactStore, hash_file, remove_stale_downloads


def reference_entries(
    uri: Any, name: str | None, checksum: bool, max_objects: int | None
) -> list[tuple[str, str, str, int | None]]:
    """What ``add_reference`` adds: (path in the artifact, URI, digest, size) per referenced file. A
    ``file://`` file is hashed when ``checksum`` (else its digest is its URI); an HTTP one keeps its ETag."""
    from urllib.parse import unquote, urlparse

    if not isinstance(uri, (str, os.PathLike)) or "://" not in os.fspath(uri):
        raise UsageError(
            "add_reference(uri=...) must be a URI such as 'file:///data/train.csv' or 'https://host/file', "
            f"got {uri!r}; for a local file without a scheme use add_file()."
        )
    uri = os.fspath(uri)
    parsed = urlparse(uri)
    limit = 10_000 if max_objects is None else max_objects
    if parsed.scheme == "file":
        target = Path(unquote(parsed.path))
        if not target.exists():
            raise UsageError(f"add_reference(uri={uri!r}): nothing is at {target}.")
        if not target.is_dir():
            path = checked_entry_name(name if name is not None else target.name, "add_reference")
            return [_file_reference(target.resolve(), path, checksum)]
        files = sorted(p for p in target.rglob("*") if p.is_file())
        if len(files) > limit:
            raise UsageError(
                f"add_reference(uri={uri!r}): {len(files):,} files, more than max_objects={limit:,}."
            )
        prefix = "" if name is None else checked_entry_name(name, "add_reference").rstrip("/") + "/"
        return [
            _file_reference(p.resolve(), prefix + p.relative_to(target).as_posix(), checksum) for p in files
        ]
    default = unquote(parsed.path).rstrip("/").rsplit("/", 1)[-1] or parsed.netloc
    path = checked_entry_name(name if name is not None else default, "add_reference")
    if parsed.scheme in ("http", "https") and checksum:
        digest, size = http_signature(uri)
        return [(path, uri, digest, size)]
    return [(path, uri, uri, None)]  # s3://, gs://...: recorded as given; download() cannot fetch them here


def _file_reference(path: Path, name: str, checksum: bool) -> tuple[str, str, str, int | None]:
    uri = path.as_uri()
    return name, uri, hash_file(path) if checksum else uri, path.stat().st_size


def http_signature(uri: str) -> tuple[str, int | None]:
    """An HTTP reference's ETag (or its URI) and size, from one HEAD request; offline, the URI."""
    try:
        import requests

        answer = requests.head(uri, allow_redirects=True, timeout=(3, 10))
        etag = answer.headers.get("ETag")
        length = answer.headers.get("Content-Length")
        return (etag.strip('"') if etag else uri), (int(length) if length and length.isdigit() else None)
    except Exception:  # unreachable now: recorded as given, checked when downloaded
        return uri, None


def fetch_reference(entry: ArtifactManifestEntry, target: Path) -> None:
    """Write what the reference ``entry`` points at to ``target`` (whole or not at all)."""
    from urllib.parse import unquote, urlparse

    uri = entry.ref_url()
    scheme = urlparse(uri).scheme
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tracker-{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        if scheme == "file":
            source = Path(unquote(urlparse(uri).path))
            if not source.is_file():
                raise UsageError(f"artifact reference {entry.path!r}: {source} is gone.")
            shutil.copyfile(source, tmp)
            if is_sha256(entry.digest) and hash_file(tmp) != entry.digest:
                raise UsageError(
                    f"artifact reference {entry.path!r}: {source} changed since it was added (its content "
                    "has another digest); log a new version to keep the new content."
                )
        elif scheme in ("http", "https"):
            import requests

            try:
                with requests.get(uri, stream=True, timeout=(5, 60)) as answer:
                    answer.raise_for_status()
                    with open(tmp, "wb") as fh:
                        for chunk in answer.iter_content(1 << 20):
                            fh.write(chunk)
            except requests.RequestException as exc:
                raise UsageError(
                    f"artifact reference {entry.path!r}: {uri} could not be fetched ({exc})."
                ) from exc
        else:
            raise UsageError(
                f"artifact reference {entry.path!r}: {uri} is recorded, but {scheme}:// references cannot be "
                "downloaded here; pass allow_missing_references=True to download the rest."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def check_stored(name: str, store: ArtifactStore, entries: Iterable[ArtifactManifestEntry]) -> None:
    """A ``UsageError`` when files of the version ``name`` are missing from the store's objects."""
    missing = [e for e in entries if e.ref is None and not store.has_object(e.digest, e.size)]
    if missing:
        raise UsageError(
            f"artifact {name!r}: {len(missing)} file(s) are not in the store ({missing[0].path!r} and "
            f"maybe others): the store at {store.root} lost them. Log the artifact again from its source."
        )


def write_entries(
    store: ArtifactStore, entries: Iterable[ArtifactManifestEntry], root: Path, *,
    allow_missing_references: bool = False,
) -> list[str]:  # fmt: skip
    """Write each entry's content under ``root`` (stored files from the objects, references fetched);
    the paths written."""
    entries = list(entries)
    remove_stale_downloads({inside(root, entry.path).parent for entry in entries})
    written = []
    for entry in entries:
        target = inside(root, entry.path)
        if entry.ref is None:
            store.materialize(entry._to_json(), target)
        else:
            try:
                fetch_reference(entry, target)
            except UsageError:
                if not allow_missing_references:
                    raise
                continue
        written.append(str(target))
    return written
