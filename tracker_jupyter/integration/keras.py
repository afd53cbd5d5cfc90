"""``from tracker_jupyter.integration.keras import WandbMetricsLogger`` (or ``MetricsLogger``): the Keras
callbacks of ``tracker_jupyter.integrations.keras_callbacks``, under our names and the reference's.

Keras is imported when a callback is first asked for, not when this module is.
"""

from __future__ import annotations

from typing import Any

NAMES = {
    "MetricsLogger": "MetricsLogger",
    "ModelCheckpoint": "ModelCheckpoint",
    "Callback": "Callback",
    "WandbMetricsLogger": "MetricsLogger",
    "WandbModelCheckpoint": "ModelCheckpoint",
    "WandbCallback": "Callback",
}
__all__ = sorted(NAMES)


def __getattr__(name: str) -> Any:
    if name not in NAMES:
        raise AttributeError(f"module 'tracker_jupyter.integration.keras' has no attribute {name!r}")
    from tracker_jupyter.integrations.keras_callbacks import build

    return build()[NAMES[name]]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(NAMES))
