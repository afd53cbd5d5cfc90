"""The HTTP side of the MLflow client: one session, credentials, timeouts, retries with backoff.

Every request goes through ``Transport.send`` (retries) and ``errors.error_for`` (the one place where an
HTTP answer becomes one of ``tracker_jupyter.exceptions``). 408, 429 and 5xx answers and connection
failures are retried with capped, jittered exponential backoff (``Retry-After`` is honoured), and so is
MLflow's database-pool timeout (a 400 that says ``QueuePool limit``); other 4xx answers never are. The endpoints are ``client.MlflowRest``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from tracker_jupyter.exceptions import CommError, Error, UsageError
from tracker_jupyter.online.rest.batch import dump_json
from tracker_jupyter.online.rest.errors import (
    Refusal,
    Sent,
    comm_error_from_exception,
    error_for,
    is_overload,
    is_retryable_exception,
    is_retryable_status,
    parse_refusal,
    parse_retry_after,
)
from tracker_jupyter.online.rest.limiter import AdaptiveLimit
from tracker_jupyter.online.rest.values import (
    BATCH_LIMITS,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    AuthLike,
    BatchLimits,
    Credentials,
    JsonObject,
    RetryPolicy,
    Timeout,
)

API_PREFIX = "/api/2.0/mlflow"
WORKSPACE_HEADER = "X-MLFLOW-WORKSPACE"  # scopes a request to an MLflow workspace (servers with workspaces)


class Transport:
    """The HTTP side of a client for one MLflow Tracking Server.

    Parameters
    ----------
    base_url : str
        Address of the server, as for the MLflow UI (``http://host:5000``, possibly with a path prefix).
        Credentials written into the URL are moved into ``auth`` so they never show in messages.
    auth : Credentials, tuple of (str, str), str or None
        ``(username, password)`` for HTTP basic auth, a bearer token string, or None.
    session : requests.Session, optional
        The session to send requests with; one is created (and closed by :meth:`close`) when omitted.
    timeout : Timeout or float
        Connect and read timeouts in seconds; a float sets both.
    retry : RetryPolicy
        When to retry 408/429/5xx answers and network failures.
    sleep : callable
        Called with the seconds to wait between attempts (``time.sleep``; tests pass a recorder).
    batch_limits : BatchLimits
        Limits of one ``runs/log-batch`` request.
    gate : AdaptiveLimit, optional
        Shared by the clients of one server: bounds the requests in flight, and lowers that bound when
        the server answers that it is full (429, 503, MLflow's database-pool timeout).
    """

    def __init__(
        self,
        base_url: str,
        auth: AuthLike = None,
        *,
        session: requests.Session | None = None,
        timeout: Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        batch_limits: BatchLimits = BATCH_LIMITS,
        proxies: Mapping[str, str] | None = None,
        gate: AdaptiveLimit | None = None,
    ) -> None:
        self.gate = gate
        self._base_url, url_credentials = split_base_url(base_url)
        credentials = Credentials.coerce(auth)
        self.credentials = credentials if credentials.is_set else url_credentials
        self._auth = self.credentials.requests_auth()
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        if proxies:  # else requests takes HTTPS_PROXY / HTTP_PROXY from the environment, as it always does
            self._session.proxies.update(proxies)
        self.timeout = timeout if isinstance(timeout, Timeout) else Timeout(float(timeout), float(timeout))
        self.retry = retry
        self.batch_limits = batch_limits
        self._sleep = sleep
        # The MLflow workspace every request is scoped to (None: the server's default). Settable.
        self.workspace: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r}, auth={self.credentials!r})"

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session:
            self._session.close()

    @property
    def base_url(self) -> str:
        """The server address, without credentials and without a trailing slash."""
        return self._base_url

    def _request_json(
        self,
        method: str,
        endpoint: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry: RetryPolicy | None = None,
    ) -> JsonObject:
        result = self._call(method, endpoint, what=what, params=params, body=body, retry=retry)
        assert not isinstance(result, Refusal)
        return result

    def _call(
        self,
        method: str,
        endpoint: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        tolerate: Collection[str] = (),
        retry: RetryPolicy | None = None,
    ) -> JsonObject | Refusal:
        """One API call; a refusal whose error code is in ``tolerate`` is returned instead of raised."""
        url = f"{self._base_url}{API_PREFIX}/{endpoint}"
        kwargs: dict[str, Any] = {}
        if params is not None:
            kwargs["params"] = dict(params)
        if body is not None:
            kwargs["data"] = dump_json(body).encode("utf-8")
            kwargs["headers"] = {"Content-Type": "application/json"}
        sent = self.send(method, url, what=what, retry=retry, **kwargs)
        response = sent.response
        if not response.ok:
            refusal = parse_refusal(response)
            if refusal.error_code is not None and refusal.error_code in tolerate:
                return refusal
            raise self._error(sent, what=what, method=method, url=url, refusal=refusal)
        try:
            result = response.json() if response.content else {}
        except ValueError as exc:
            kind = response.headers.get("Content-Type", "unknown type")
            raise CommError(
                f"MLflow server answered {method} {url} with something that is not JSON ({kind}) while "
                f"trying to {what}. Check that the URL is the MLflow server itself, not a login page or "
                "another service.",
                url=url,
                status=response.status_code,
            ) from exc
        if not isinstance(result, dict):
            raise CommError(f"MLflow server answered {method} {url} with unexpected JSON.", url=url)
        return result

    def _error(
        self, sent: Sent, *, what: str, method: str, url: str, refusal: Refusal | None = None
    ) -> Error:
        return error_for(
            refusal or parse_refusal(sent.response),
            what=what,
            method=method,
            url=url,
            attempts=sent.attempts,
            has_credentials=self.credentials.is_set,
        )

    def send(
        self, method: str, url: str, *, what: str, retry: RetryPolicy | None = None, **kwargs: Any
    ) -> Sent:
        """Send with retries; return the last answer (possibly an error) or raise CommError when none came."""
        policy = retry or self.retry
        # A file body is read by each attempt: start every attempt where the first one started.
        stream = kwargs.get("data") if hasattr(kwargs.get("data"), "seek") else None
        rewind_to = stream.tell() if stream is not None else None
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            if stream is not None:
                stream.seek(rewind_to)
            if self.workspace:
                kwargs["headers"] = {**(kwargs.get("headers") or {}), WORKSPACE_HEADER: self.workspace}
            try:
                response = self._request(method, url, kwargs)
            except requests.RequestException as exc:
                delay = policy.backoff(attempt)
                if not is_retryable_exception(exc) or not self._may_retry(policy, attempt, started, delay):
                    raise comm_error_from_exception(
                        exc, what=what, method=method, url=url, attempts=attempt, timeout=self.timeout
                    ) from exc
            else:
                if not is_retryable_status(response.status_code) and not is_overload(response):
                    return Sent(response, attempt)
                retry_after = parse_retry_after(response)
                delay = policy.backoff(attempt) if retry_after is None else retry_after
                if not self._may_retry(policy, attempt, started, delay):
                    return Sent(response, attempt)
                response.close()
            self._sleep(delay)

    def _request(self, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        if self.gate is None:
            return self._session.request(
                method, url, auth=self._auth, timeout=self.timeout.as_requests(), **kwargs
            )
        with self.gate.slot():
            response = self._session.request(
                method, url, auth=self._auth, timeout=self.timeout.as_requests(), **kwargs
            )
        if is_overload(response):
            self.gate.overloaded()
        elif response.ok:
            self.gate.accepted()
        return response

    @staticmethod
    def _may_retry(policy: RetryPolicy, attempt: int, started: float, delay: float) -> bool:
        return attempt < policy.max_attempts and time.monotonic() - started + delay <= policy.deadline


def split_base_url(base_url: str) -> tuple[str, Credentials]:
    """Validate the server URL and take any ``user:password@`` out of it."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"The MLflow server URL must look like http://host:5000 or https://host/prefix, got {base_url!r}."
        )
    credentials = Credentials()
    if parts.username is not None:
        credentials = Credentials(unquote(parts.username), unquote(parts.password or ""))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), credentials
