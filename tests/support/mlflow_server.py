"""Real MLflow Tracking Servers for tests: a pytest plugin (list ``tests.support.mlflow_server`` in ``pytest_plugins``).

Fixtures
--------
mlflow_server
    One ``mlflow server`` per test session (SQLite store and proxied artifacts in a temporary directory), on
    127.0.0.1 and a free port. ``stop()`` / ``start()`` (or ``with server.stopped():``) let a test take it
    down mid-run and bring it back on the same port and store.
mlflow_auth_server
    A second server running MLflow's ``basic-auth`` app with a known admin (``ADMIN_USERNAME`` /
    ``ADMIN_PASSWORD``); started only when a test asks for it. Needs ``mlflow[auth]`` (Flask-WTF).
mlflow_postgres_server
    A server as a team runs it: a PostgreSQL backend store (``tests.support.postgres``), two workers and
    a database pool sized for many writers; started only when a test asks for it.
mlflow_client
    MLflow's own ``MlflowClient`` on ``mlflow_server``, to read back what our client wrote.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

__all__ = ["ADMIN_PASSWORD", "ADMIN_USERNAME", "MlflowServer", "free_port"]

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "tracker-admin-password"  # the auth app wants at least 12 characters
STARTUP_TIMEOUT = 150.0  # seconds; start-up takes 5-45 s depending on the machine's load
_LOG_TAIL_LINES = 80


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """An ``mlflow server`` process whose store and artifacts live in ``dir``.

    Parameters
    ----------
    directory : Path
        Becomes ``.dir``; holds ``mlflow.db``, ``artifacts/`` and ``server.log`` (and the auth app's files).
    port : int, optional
        Fixed across ``stop()`` / ``start()``; a free one is picked when omitted.
    basic_auth : bool
        Run MLflow's ``basic-auth`` app with the admin ``ADMIN_USERNAME`` / ``ADMIN_PASSWORD``.
    workspaces : bool
        Run with ``--enable-workspaces`` (MLflow's workspaces: experiments scoped per team).
    backend_store_uri : str, optional
        The tracking store (default: SQLite in ``dir``); a ``postgresql+psycopg2://`` URI for a team's.
    workers : int
        The server's worker processes.
    env : dict, optional
        More of the server's environment (``MLFLOW_SQLALCHEMYSTORE_POOL_SIZE`` and the like).
    """

    def __init__(
        self, directory: Path, port: int | None = None, *, basic_auth: bool = False, workspaces: bool = False,
        backend_store_uri: str | None = None, workers: int = 1, env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.dir = Path(directory)
        self.port = port or free_port()
        self.basic_auth = basic_auth
        self.workspaces = workspaces
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.dir / 'mlflow.db'}"
        self.workers = workers
        self.extra_env = env or {}
        self.log_path = self.dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"MlflowServer({self.url!r}, {state}, dir={str(self.dir)!r})"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the tracking URI and the UI's address."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> tuple[str, str]:
        """The admin's ``(username, password)`` on a basic-auth server."""
        return (ADMIN_USERNAME, ADMIN_PASSWORD)

    @property
    def is_running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            str(self.dir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            # One worker unless asked: tests are light, and each worker costs start-up time and memory.
            "--workers",
            str(self.workers),
        ]
        if self.basic_auth:
            command += ["--app-name", "basic-auth"]
        if self.workspaces:
            command += ["--enable-workspaces"]
        return command

    def environment(self) -> dict[str, str]:
        """The server's environment: ours, without telemetry, plus the auth app's settings."""
        env = dict(os.environ)
        # No network here: nothing should try to send usage data.
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env["DO_NOT_TRACK"] = "true"
        # The job runner spawns about seven huey consumers (~240 MB each) that also slow down stopping;
        # tracking does not use them.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        env.update(self.extra_env)
        if self.basic_auth:
            config = self.dir / "basic_auth.ini"
            config.write_text(
                "[mlflow]\n"
                "default_permission = READ\n"
                f"database_uri = sqlite:///{self.dir / 'basic_auth.db'}\n"
                f"admin_username = {ADMIN_USERNAME}\n"
                f"admin_password = {ADMIN_PASSWORD}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            )
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "tracker-jupyter-tests"
        return env

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start the server and wait until ``GET /health`` answers 200.

        Raises
        ------
        RuntimeError
            The server exited or did not answer in time; the message ends with its log.
        """
        if self.is_running:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== {' '.join(self.command())}\n".encode())
            log.flush()
            # A session of its own, so stop() can end the server and the workers it spawns together.
            self._process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                cwd=self.dir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"mlflow server exited with code {self._process.returncode} during start-up")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        self._fail(f"mlflow server did not answer {self.url}/health within {timeout:g} s")

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGTERM, SIGKILL after 15 s; ``kill=True`` sends SIGKILL at once)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)

    @contextlib.contextmanager
    def stopped(self, kill: bool = False) -> Iterator[MlflowServer]:
        """Stop the server for the ``with`` block and start it again after, even if the block fails."""
        self.stop(kill=kill)
        try:
            yield self
        finally:
            self.start()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The end of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, what: str) -> None:
        tail = self.log_tail()
        print(f"{what}; server log ({self.log_path}):\n{tail}", file=sys.stderr)
        raise RuntimeError(f"{what}. Last lines of {self.log_path}:\n{tail}")


def _serve(server: MlflowServer) -> Iterator[MlflowServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A running MLflow Tracking Server shared by the whole session."""
    yield from _serve(MlflowServer(tmp_path_factory.mktemp("mlflow-server")))


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A running MLflow server with the basic-auth app; ``.admin`` is the admin's (username, password)."""
    if os.environ.get("CI") == "true":
        import flask_wtf  # noqa: F401 - under CI nothing may be skipped: a missing mlflow[auth] fails here
    else:
        pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth] (Flask-WTF)")
    yield from _serve(MlflowServer(tmp_path_factory.mktemp("mlflow-auth-server"), basic_auth=True))


@pytest.fixture(scope="session")
def mlflow_workspace_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A running MLflow server with workspaces enabled."""
    yield from _serve(MlflowServer(tmp_path_factory.mktemp("mlflow-workspace-server"), workspaces=True))


@pytest.fixture(scope="session")
def mlflow_client(mlflow_server: MlflowServer) -> Iterator[Any]:
    """MLflow's own ``MlflowClient`` on ``mlflow_server`` (imports mlflow: a few seconds, once)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("DO_NOT_TRACK", "true")
        from mlflow import MlflowClient

        yield MlflowClient(tracking_uri=mlflow_server.url)


@pytest.fixture(scope="session")
def mlflow_postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """An MLflow server as a team runs it: a PostgreSQL backend store (Debian's PostgreSQL, started here
    on 127.0.0.1), two workers, the database pool sized above the concurrent writers per worker."""
    from tests.support.postgres import PostgresServer, binaries

    if binaries() is None:
        message = (
            "PostgreSQL's server is missing: run scripts/install-postgres.sh (apt-get install postgresql)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # under CI nothing may be skipped
        pytest.skip(message)
    postgres = PostgresServer()
    postgres.start()
    try:
        server = MlflowServer(
            tmp_path_factory.mktemp("mlflow-postgres-server"), backend_store_uri=postgres.database("mlflow"),
            workers=2, env={"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "20", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "20"},
        )  # fmt: skip
        yield from _serve(server)
    finally:
        postgres.stop()
