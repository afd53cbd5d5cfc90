"""Credentials for a tracking server: from settings and the environment, the server URL, or ``tracker login``.

``tracker login`` / ``tracker_jupyter.login()`` keep them per server in
``~/.config/tracker_jupyter/credentials.json``, a file only its owner can read (mode 0600).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tracker_jupyter import store
from tracker_jupyter.exceptions import AuthenticationError, UsageError
from tracker_jupyter.settings import Settings, resolve

if TYPE_CHECKING:
    from tracker_jupyter.online.rest.client import Credentials

INIT_TIMEOUT = 5.0  # seconds for each call init() makes: a dead server must not hang the notebook


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
    base_url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    api_key: str | None = None,
    verify: bool = True,
) -> bool:
    """Store credentials for a tracking server (mode 0600 file under the user's config directory).

    Parameters
    ----------
    base_url
        The MLflow Tracking Server; default ``TRACKER_BASE_URL`` / ``MLFLOW_TRACKING_URI``.
    username, password
        HTTP basic auth (MLflow's basic-auth app). Without ``password`` it is asked for (``getpass``, which a
        notebook shows as a masked input), so it never has to be typed into a cell, its history or a
        saved notebook.
    api_key
        A bearer token (servers behind an authenticating proxy).
    verify
        Check the credentials with the server before storing them.

    Returns
    -------
    bool
        True when the credentials were stored.
    """
    from tracker_jupyter.online.rest.client import Credentials, MlflowRest

    base_url = base_url or resolve("base_url", None, Settings())
    if not base_url:
        raise UsageError("login() needs a server: pass base_url= or set TRACKER_BASE_URL.")
    base_url, _ = server_url(base_url)
    if not api_key and username and not password:
        import getpass

        password = getpass.getpass(f"password for {username} at {base_url}: ")
    if api_key:
        entry, creds = {"token": api_key}, Credentials(token=api_key)
    elif username and password:
        entry, creds = {"username": username, "password": password}, Credentials(username, password)
    else:
        raise UsageError("login() needs api_key=, or username= (and password=, else it is asked for).")
    if verify:
        with MlflowRest(base_url, creds, timeout=INIT_TIMEOUT) as client:
            client.get_experiment_by_name("Default")  # any authenticated call: /health needs no login
    _store_credentials(base_url, entry)
    return True
