"""Value objects of the MLflow REST client: credentials, timeouts, retry policy, batch limits, metric points."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Literal, NamedTuple, Union

import requests

from tracker_jupyter.exceptions import UsageError

JsonObject = dict[str, Any]
ItemKind = Literal["metric", "param", "tag"]
AuthLike = Union["Credentials", tuple[str, str], str, None]
ArtifactData = Union[bytes, bytearray, memoryview, "os.PathLike[str]", IO[bytes]]


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: HTTP basic (``username`` + ``password``), a bearer ``token``, or nothing.

    The representation never shows the password or the token.
    """

    username: str | None = None
    password: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise UsageError("Credentials: basic auth needs both a username and a password; one is missing.")
        if self.token is not None and self.username is not None:
            raise UsageError("Credentials: give either a username and password or a token, not both.")

    def __repr__(self) -> str:
        password = None if self.password is None else "***"
        token = None if self.token is None else "***"
        return f"Credentials(username={self.username!r}, password={password}, token={token})"

    @property
    def is_set(self) -> bool:
        """True when there is something to send."""
        return self.username is not None or self.token is not None

    @classmethod
    def coerce(cls, auth: AuthLike) -> Credentials:
        """Accept ``None``, a ``(username, password)`` tuple, a bearer token string or ``Credentials``."""
        if auth is None:
            return cls()
        if isinstance(auth, Credentials):
            return auth
        if isinstance(auth, str):
            return cls(token=auth)
        if isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(part, str) for part in auth):
            return cls(username=auth[0], password=auth[1])
        raise UsageError(
            "auth must be None, a (username, password) tuple of str or a token str, "
            f"got {type(auth).__name__}."
        )

    def requests_auth(self) -> requests.auth.AuthBase | None:
        """The ``requests`` auth object that applies these credentials to a request."""
        if self.token is not None:
            return _BearerAuth(self.token)
        if self.username is not None and self.password is not None:
            return requests.auth.HTTPBasicAuth(self.username, self.password)
        return None


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


@dataclass(frozen=True)
class Timeout:
    """Seconds to wait for a connection and then for each read from the server."""

    connect: float = 3.0
    read: float = 30.0

    def as_requests(self) -> tuple[float, float]:
        """The ``(connect, read)`` tuple ``requests`` expects."""
        return (self.connect, self.read)


DEFAULT_TIMEOUT = Timeout()


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a call again.

    Attempt ``n`` (1-based) that fails is followed by a pause of
    ``min(backoff_max, backoff_initial * 2 ** (n - 1))``, shortened by up to ``jitter`` of itself at
    random so many clients do not retry in step. A ``Retry-After`` header replaces that pause. No pause
    is taken that would end after ``deadline`` seconds from the first attempt.
    """

    max_attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.5
    deadline: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}.")
        if not 0.0 <= self.jitter <= 1.0:
            raise UsageError(f"RetryPolicy.jitter must be between 0 and 1, got {self.jitter}.")
        if self.backoff_initial < 0 or self.backoff_max < 0 or self.deadline < 0:
            raise UsageError("RetryPolicy: backoff_initial, backoff_max and deadline must not be negative.")

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        return base * (1.0 - self.jitter * rand())


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class BatchLimits:
    """What one ``runs/log-batch`` request may hold (MLflow's documented limits)."""

    metrics: int = 1000
    params: int = 100
    tags: int = 100
    items: int = 1000
    body_bytes: int = 1_000_000


BATCH_LIMITS = BatchLimits()


@dataclass(frozen=True)
class Metric:
    """One metric point. ``timestamp`` is in milliseconds since the epoch.

    The server keeps one copy of points equal in all four fields, so replaying a point is harmless.
    """

    key: str
    value: float
    timestamp: int
    step: int = 0


@dataclass(frozen=True)
class ItemFailure:
    """A metric, param or tag key that ``log_batch`` could not write, with the server's reason.

    ``count`` is how many items with that key were refused in the call (one per key and kind).
    """

    kind: ItemKind
    key: str
    message: str
    count: int = 1


class RunsPage(NamedTuple):
    """One page of ``search_runs``: the runs (MLflow JSON) and the token of the next page, if any."""

    runs: list[JsonObject]
    next_page_token: str | None
