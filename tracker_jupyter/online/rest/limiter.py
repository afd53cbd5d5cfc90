"""``AdaptiveLimit``: how many requests may be in flight to one server, lowered when it says it is full.

Additive increase, multiplicative decrease (as TCP does): every accepted request raises the limit by
``1/limit`` up to ``maximum``; an overload answer (429, 503, or MLflow's database-pool timeout) halves it,
at most once a second, down to one. Requests wait for a free slot instead of piling onto a saturated
server; the transport retries the refused request after its backoff, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class AdaptiveLimit:
    """A concurrency gate shared by every client talking to one server."""

    def __init__(self, maximum: int, *, cut_every: float = 1.0) -> None:
        if maximum < 1:
            raise ValueError(f"AdaptiveLimit needs a maximum of at least 1, got {maximum}.")
        self.maximum = maximum
        self._limit = float(maximum)
        self._in_flight = 0
        self._cut_every = cut_every
        self._last_cut = float("-inf")
        self.cuts = 0  # how often the server said it was full (for messages and benchmarks)
        self._changed = threading.Condition()

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return max(1, int(self._limit))

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``limit`` slots for the length of a request."""
        with self._changed:
            while self._in_flight >= self.limit:
                self._changed.wait()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def accepted(self) -> None:
        with self._changed:
            grew = self.limit
            self._limit = min(float(self.maximum), self._limit + 1.0 / self._limit)
            if self.limit > grew:
                self._changed.notify_all()

    def overloaded(self) -> None:
        with self._changed:
            now = time.monotonic()
            if now - self._last_cut >= self._cut_every:
                self._last_cut = now
                self._limit = max(1.0, self._limit / 2)
                self.cuts += 1
