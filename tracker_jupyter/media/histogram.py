"""``Histogram``: a distribution logged per step, stored as its counts and bin edges (never the raw values).

The history row holds ``{"_type": "histogram", "values": [counts...], "bins": [edges...]}``, the shape the
reference stores, so ``len(bins) == len(values) + 1``; ``"dropped": n`` is added when n values were NaN or
infinite (the reference refuses such values; a diverging gradient is worth seeing, so they are counted).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracker_jupyter.exceptions import UsageError

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

MAX_BINS = 512


class Histogram:
    """A histogram for ``run.log()``, from values or from ``numpy.histogram``'s result.

    Parameters
    ----------
    sequence
        The values (a list, a numpy array, a torch tensor: anything numpy takes). NaN and infinities are
        left out and counted in ``dropped``.
    np_histogram
        ``(counts, bin_edges)`` as ``numpy.histogram`` returns them, instead of ``sequence``.
    num_bins
        Bins to split ``sequence`` into: 1 to 512 (default 64).

    Attributes
    ----------
    histogram
        The count in each bin (a list).
    bins
        The bin edges (a list one longer than ``histogram``).
    """

    MAX_LENGTH = MAX_BINS
    kind = "histogram"

    def __init__(
        self,
        sequence: Sequence[Any] | Any | None = None,
        np_histogram: tuple[Any, Any] | None = None,
        num_bins: int = 64,
    ) -> None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or not 1 <= num_bins <= MAX_BINS:
            raise UsageError(
                f"Histogram(num_bins=...) must be an int from 1 to {MAX_BINS}, got {num_bins!r}."
            )
        self.dropped = 0
        if np_histogram is not None:
            if sequence is not None:
                raise UsageError("Histogram() takes sequence or np_histogram, not both.")
            self.histogram, self.bins = _from_np_histogram(np_histogram)
        elif sequence is None:
            raise UsageError(
                "Histogram() needs the values (Histogram(values)) or a computed histogram "
                "(Histogram(np_histogram=numpy.histogram(values)))."
            )
        else:
            self.histogram, self.bins, self.dropped = _from_values(sequence, num_bins)
        if len(self.histogram) > MAX_BINS:
            raise UsageError(
                f"Histogram(): {len(self.histogram)} bins; at most {MAX_BINS} are stored. Compute it with "
                f"fewer: numpy.histogram(values, bins={MAX_BINS})."
            )

    def to_json(self, run: Any = None) -> dict[str, Any]:
        """The stored form: ``{"_type": "histogram", "values": counts, "bins": edges}``, and ``dropped``
        when values were left out for being NaN or infinite."""
        stored: dict[str, Any] = {"_type": "histogram", "values": self.histogram, "bins": self.bins}
        if self.dropped:
            stored["dropped"] = self.dropped
        return stored

    def _to_history(self, run: Run, key: str) -> dict[str, Any]:
        return self.to_json(run)

    def __repr__(self) -> str:
        return f"<Histogram {len(self.histogram)} bins, {sum(self.histogram)} values>"


def _from_np_histogram(np_histogram: Any) -> tuple[list[Any], list[float]]:
    try:
        counts, edges = np_histogram
    except (TypeError, ValueError):
        raise UsageError(
            "Histogram(np_histogram=...) must be (counts, bin_edges), as numpy.histogram returns them."
        ) from None
    counts = counts.tolist() if hasattr(counts, "tolist") else list(counts)
    edges = edges.tolist() if hasattr(edges, "tolist") else list(edges)
    if len(edges) != len(counts) + 1:
        raise UsageError(
            f"Histogram(np_histogram=...): {len(edges)} bin edges for {len(counts)} counts; there must be "
            "one edge more than counts."
        )
    for count in counts:
        if isinstance(count, bool) or not isinstance(count, (int, float)) or not count >= 0:
            raise UsageError(
                f"Histogram(np_histogram=...): counts must be non-negative numbers, got {count!r}."
            )
    for low, high in itertools.pairwise(edges):
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float))) or not low <= high:
            raise UsageError(
                f"Histogram(np_histogram=...): bin edges must be increasing numbers: {low!r}, {high!r}."
            )
    if edges and not all(math.isfinite(edge) for edge in (edges[0], edges[-1])):
        raise UsageError("Histogram(np_histogram=...): bin edges must be finite.")
    return counts, [float(edge) for edge in edges]


def _from_values(sequence: Any, num_bins: int) -> tuple[list[int], list[float], int]:
    import numpy as np

    if hasattr(sequence, "detach"):  # a torch tensor, wherever it lives
        sequence = sequence.detach().cpu().numpy()
    try:
        values = np.asarray(sequence, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"Histogram(): the values must be numbers ({exc}).") from None
    finite = values[np.isfinite(values)]
    counts, edges = np.histogram(finite, bins=num_bins)
    return counts.tolist(), edges.tolist(), int(values.size - finite.size)
