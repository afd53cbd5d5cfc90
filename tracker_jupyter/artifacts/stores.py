"""One ``ArtifactStore`` per store root in a process, so its digest cache is shared by every run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tracker_jupyter.settings import Settings, resolve
from tracker_jupyter.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

_stores: dict[str, ArtifactStore] = {}


def store_at(root: Path | str) -> ArtifactStore:
    key = os.path.abspath(root)
    if key not in _stores:
        _stores[key] = ArtifactStore(Path(key))
    return _stores[key]


def store_of(run: Run | None) -> ArtifactStore:
    """The artifact store of ``run``'s store root (the configured root when there is no stored run)."""
    if run is not None and run.run_dir is not None:
        return store_at(run.run_dir.parent.parent)
    if run is not None and run.options.store_root is not None:
        return store_at(run.options.store_root)
    settings = run.settings if run is not None and run.settings is not None else Settings()
    return store_at(resolve("root_dir", None, settings))


def active_store() -> ArtifactStore | None:
    """The store of the current run, when it keeps files (a draft's files go straight there)."""
    from tracker_jupyter.core.holder import holder

    run = holder.run
    if run is None or run.run_dir is None or run.finished:
        return None
    return store_of(run)
