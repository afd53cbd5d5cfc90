"""Error mapping of the MLflow REST client: the one place an HTTP answer or a requests exception becomes one
of :mod:`tracker_jupyter.exceptions`, and what is worth retrying."""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from typing import NamedTuple

import requests

from tracker_jupyter.exceptions import AuthenticationError, CommError, Error, UsageError
from tracker_jupyter.online.rest.values import Timeout


@dataclass(frozen=True)
class Refusal:
    """A non-2xx answer, parsed."""

    status: int
    error_code: str | None
    message: str
    retry_after: float | None = None


class Sent(NamedTuple):
    """The last answer to a request and how many attempts it took."""

    response: requests.Response
    attempts: int


_CALLER_FAULT_CODES = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS"})
_TAG_RE = re.compile(r"<[^>]+>")
# MLflow answers a full database pool (SQLAlchemy's pool TimeoutError) as a 400 BAD_REQUEST
_POOL_TIMEOUT = ("QueuePool limit", "sqlalche.me/e/20/3o7r", "sqlalche.me/e/14/3o7r")


def parse_refusal(response: requests.Response) -> Refusal:
    text = response.text or ""
    error_code: str | None = None
    message = ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and ("error_code" in body or "message" in body):
        error_code = str(body.get("error_code") or "") or None
        # The first line says it; later lines are SQL statements or long examples.
        message = str(body.get("message") or "").strip().split("\n", 1)[0]
    else:
        # The basic-auth app and the security middleware answer in plain text or HTML.
        message = " ".join(_TAG_RE.sub(" ", text).split())
    if len(message) > 500:
        message = message[:500] + "..."
    return Refusal(response.status_code, error_code, message, parse_retry_after(response))


def parse_retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _hint(refusal: Refusal, has_credentials: bool) -> str:
    status, message = refusal.status, refusal.message
    if status == 401:
        if has_credentials:
            return "Check the username and password (or token) given for this server."
        return (
            "The server needs a login: set TRACKER_USERNAME and TRACKER_PASSWORD (or "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD), or a token in TRACKER_API_KEY / "
            "MLFLOW_TRACKING_TOKEN."
        )
    if status == 403:
        if "host header" in message.lower():
            return (
                "The server's security middleware refused the host name in the URL: start the server with "
                "--allowed-hosts naming it, or use an address it allows."
            )
        return "This user lacks the permission needed; ask an MLflow admin to grant it."
    if status == 404:
        if refusal.error_code is None:
            return (
                "No MLflow API answered at this address: check the server URL (the address of the MLflow UI, "
                "without /api/...) and that the server serves artifacts if this was an upload."
            )
        return "Check the id or name, and that it was not deleted."
    if refusal.error_code == "RESOURCE_ALREADY_EXISTS":
        return "Use the existing one (get_or_create_experiment) or choose another name."
    if status == 400 and any(marker in message for marker in _POOL_TIMEOUT):
        return (
            "The server's database connection pool is full: raise MLFLOW_SQLALCHEMYSTORE_POOL_SIZE and "
            "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW on the server above the concurrent writers per worker."
        )
    if status == 400:
        return "Fix the request as the server's message says."
    if status in (408, 429) or status >= 500:
        return "The server is overloaded or failing; try again later."
    return "See the server's message."


def error_for(
    refusal: Refusal, *, what: str, method: str, url: str, attempts: int, has_credentials: bool
) -> Error:
    detail = f"HTTP {refusal.status}"
    if refusal.error_code:
        detail += f" {refusal.error_code}"
    if refusal.message:
        detail += f": {refusal.message}"
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    hint = _hint(refusal, has_credentials)
    text = f"MLflow server could not {what}{tries}: {detail} ({method} {url}). {hint}"
    if refusal.status in (401, 403):
        return AuthenticationError(text, url=url, status=refusal.status)
    if refusal.status == 400 and refusal.error_code in _CALLER_FAULT_CODES:
        return UsageError(text)
    return CommError(text, url=url, status=refusal.status)


def comm_error_from_exception(
    exc: requests.RequestException, *, what: str, method: str, url: str, attempts: int, timeout: Timeout
) -> CommError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, requests.ConnectTimeout):
        reason = f"no connection within {timeout.connect:g} s"
        hint = "Check that the server is running and reachable at this URL."
    elif isinstance(exc, requests.Timeout):
        reason = f"no answer within {timeout.read:g} s"
        hint = "The server is slow or stuck; try again later."
    elif isinstance(exc, requests.exceptions.SSLError):
        reason = f"TLS error: {exc}"
        hint = "Check the server's certificate (or REQUESTS_CA_BUNDLE for a private CA)."
    elif isinstance(exc, requests.ConnectionError):
        reason = f"connection failed: {exc}"
        hint = "Check that the server is running and that the URL is right."
    else:
        reason = f"{type(exc).__name__}: {exc}"
        hint = "Check the server URL."
    return CommError(
        f"Could not reach the MLflow server to {what}{tries}: {reason} ({method} {url}). {hint}",
        url=url,
        status=None,
    )


def is_retryable_status(status: int) -> bool:
    # 501 (not implemented) and 505 will not change on a retry.
    return status in (408, 429) or (500 <= status < 600 and status not in (501, 505))


def is_overload(response: requests.Response) -> bool:
    """The server says it is full: 429, 503, or MLflow's database-pool timeout (a 400 BAD_REQUEST).
    Worth retrying later, and a reason to send fewer requests at once."""
    status = response.status_code
    if status in (429, 503):
        return True
    if status != 400:
        return False
    text = response.text or ""
    return any(marker in text for marker in _POOL_TIMEOUT)


def is_retryable_exception(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not go away by waiting
    return isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )
