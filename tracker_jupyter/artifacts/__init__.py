"""Artifacts: versioned files a run logs and uses (``Artifact``, ``Run.log_artifact``, ``use_artifact``).

``artifact`` is the reference's ``Artifact``; ``runs`` what a run does with them (plugged into
``run.parts.artifacts`` by ``init()``); ``remote`` finds versions on the tracking server; the store's side
(content-addressed objects, versions, aliases, lineage) is ``store.artifacts``.
"""

from __future__ import annotations

from tracker_jupyter.artifacts.artifact import Artifact, ArtifactManifest, ArtifactManifestEntry

__all__ = ["Artifact", "ArtifactManifest", "ArtifactManifestEntry"]
