"""Credentials for a tracking server: from settings and the environment, the server URL, or ``tracker login``.

``tracker login`` / ``tracker_jupyter.login()`` keep them per server in
``~/.config/tracker_jupyter/credentials.json``, a file only its owner can read (mode 0600).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tracker_jupyter import store
from tracker_jupyter.core.report import Once
from tracker_jupyter.exceptions import AuthenticationError, UsageError
from tracker_jupyter.settings import Settings, resolve

if TYPE_CHECKING:
    from tracker_jupyter.online.rest.client import Credentials

INIT_TIMEOUT = 5.0  # seconds for each call init() makes: a dead server must not hang the notebook


def init_timeout(settings: Settings) -> float:
    """Seconds each call init() and login() make may take (setting ``init_timeout``, default 5)."""
    return float(resolve("init_timeout", None, settings))


def proxies(settings: Settings) -> dict[str, str]:
    """The proxies the settings name (``https_proxy``, ``http_proxy``); requests reads the environment's."""
    found = {scheme: resolve(f"{scheme}_proxy", None, settings) for scheme in ("https", "http")}
    return {scheme: url for scheme, url in found.items() if url}


def _config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tracker_jupyter"


def credentials_file() -> Path:
    """Where ``tracker login`` keeps credentials, per server, in a file only its owner can read."""
    return _config_dir() / "credentials.json"


def _stored_credentials(base_url: str) -> dict[str, str]:
    data = store.read_json(credentials_file(), {}) or {}
    entry = data.get(base_url.rstrip("/"))
    return entry if isinstance(entry, dict) else {}


def _store_credentials(base_url: str, entry: dict[str, str]) -> Path:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = store.read_json(path, {}) or {}
    data[base_url.rstrip("/")] = entry
    store.write_json_atomic(path, data, mode=0o600)
    return path


def server_url(base_url: str) -> tuple[str, Credentials]:
    """The server URL without any ``user:password@`` in it (what is shown and stored), and those credentials."""
    from tracker_jupyter.online.rest.client import split_base_url

    return split_base_url(base_url)


def credentials_for(
    base_url: str, settings: Settings, anonymous: str | None = None, from_url: Credentials | None = None
) -> Credentials:
    """Credentials for ``base_url``: settings/environment first, then ``user:password@`` in the configured
    URL (``from_url``), then what ``tracker login`` stored."""
    from tracker_jupyter.online.rest.client import Credentials

    if anonymous == "must":
        return Credentials()
    token = resolve("api_key", None, settings)
    username = resolve("username", None, settings)
    password = resolve("password", None, settings)
    if token:
        return Credentials(token=token)
    if username and password:
        return Credentials(username=username, password=password)
    if username or password:
        raise UsageError(
            "basic auth needs both a username and a password; set TRACKER_USERNAME and TRACKER_PASSWORD "
            "(or settings username/password), or run `tracker login`."
        )
    if from_url is not None and from_url.is_set:
        return from_url
    stored = _stored_credentials(base_url)
    if stored.get("token"):
        return Credentials(token=stored["token"])
    if stored.get("username") and stored.get("password"):
        return Credentials(username=stored["username"], password=stored["password"])
    if anonymous == "never":
        raise AuthenticationError(
            f"anonymous='never' needs credentials for {base_url}, and none are configured: run "
            "`tracker login`, or set TRACKER_API_KEY (bearer) or TRACKER_USERNAME/TRACKER_PASSWORD.",
            url=base_url,
        )
    return Credentials()


def login(
    key: str | None = None,
    relogin: bool | None = None,
    host: str | None = None,
    force: bool | None = None,
    timeout: float | None = None,
    verify: bool = True,
    referrer: str | None = None,
    prompt: bool = True,
    anonymous: str | None = None,
    *,
    base_url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    api_key: str | None = None,
) -> bool:
    """Log in to a tracking server, in the reference's shape: credentials are stored for the server (mode
    0600 file under the user's config directory) and used by every later run.

    Parameters
    ----------
    key
        An API key, sent as a bearer token (servers behind an authenticating proxy); ``api_key=`` too.
        Our own form ``login(url, username, password)`` still works: a first argument that is an http(s)
        URL is the server.
    relogin
        Take new credentials even when some are stored for the server.
    host
        The server (also ``base_url=``); default ``TRACKER_BASE_URL`` / ``MLFLOW_TRACKING_URI``. With none,
        ``login()`` says so once and returns False: runs are stored offline (``force=True`` makes that an
        error instead).
    username, password
        HTTP basic auth (MLflow's basic-auth app). Without ``password`` it is asked for (``getpass``, which a
        notebook shows as a masked input) unless ``prompt=False``, so it never has to be typed into a cell.
    timeout
        Seconds to wait for the server when verifying (default 5).
    verify
        Check the credentials with the server (an ``AuthenticationError`` saying what failed); without new
        credentials, check that the server takes the stored ones, or none.
    referrer
        Accepted for the reference's signature; it has no meaning here.
    anonymous
        ``"must"``: use the server without credentials.

    Returns
    -------
    bool
        True when the server is set and has (or needs no) credentials after this call.
    """
    from tracker_jupyter.online.rest.client import Credentials

    if isinstance(key, str) and key.startswith(("http://", "https://")):  # login(url, username, password)
        base_url, key = base_url or key, None
        if isinstance(relogin, str):
            username, relogin = username or relogin, None
        if isinstance(host, str) and not host.startswith(("http://", "https://")):
            password, host = password or host, None
    server = host or base_url or resolve("base_url", None, Settings())
    if not server:
        if force:
            raise UsageError("login(force=True) needs a tracking server: pass host= or set TRACKER_BASE_URL.")
        _say_offline()
        return False
    server, _ = server_url(server)
    token = api_key or key
    if not token and username and not password and prompt:
        import getpass

        password = getpass.getpass(f"password for {username} at {server}: ")
    if token:
        entry, creds = {"token": token}, Credentials(token=token)
    elif username and password:
        entry, creds = {"username": username, "password": password}, Credentials(username, password)
    elif anonymous == "must" or (not relogin and verify and not username):
        # nothing new: check that the server takes what is already configured (or no credentials)
        creds = credentials_for(server, Settings(), anonymous=anonymous)
        _check(server, creds, timeout)
        return True
    else:
        raise UsageError(
            "login() needs api_key=, or username= (and password=, else it is asked for); key= is api_key=."
        )
    if verify:
        _check(server, creds, timeout)
    _store_credentials(server, entry)
    return True


def _check(server: str, creds: Credentials, timeout: float | None) -> None:
    """Any authenticated call (``/health`` needs no login); an AuthenticationError or CommError says what
    failed."""
    from tracker_jupyter.online.rest.client import MlflowRest

    settings = Settings()
    seconds = init_timeout(settings) if timeout is None else float(timeout)
    with MlflowRest(server, creds, timeout=seconds, proxies=proxies(settings)) as client:
        client.get_experiment_by_name("Default")


_said = Once()


def _say_offline() -> None:
    if _said("offline"):
        print(
            "tracker: no tracking server is configured, so runs are stored locally (offline) and there is "
            "nothing to log in to; set TRACKER_BASE_URL or call login(host=...) to use one."
        )
