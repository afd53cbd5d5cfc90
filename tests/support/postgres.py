"""A real PostgreSQL server for tests and benchmarks: Debian's ``postgresql`` (installed by
``scripts/install-postgres.sh``), started on 127.0.0.1 and a free port in a directory of its own.

``PostgresServer(directory).start()`` runs ``initdb`` (as the ``postgres`` user when this is root: the
server refuses to run as root) and ``pg_ctl start``; ``database(name)`` creates a database and returns
the SQLAlchemy URI MLflow's ``--backend-store-uri`` takes (``postgresql+psycopg2://...``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.mlflow_server import free_port

MAX_CONNECTIONS = 300  # above every MLflow worker's pool (pool size + overflow) in the tests and the bench


def binaries() -> Path | None:
    """The directory of PostgreSQL's server programs (initdb, pg_ctl), or None when it is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A PostgreSQL cluster in a directory of its own, on 127.0.0.1; trust authentication (loopback only)."""

    def __init__(self) -> None:
        bindir = binaries()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL's server is not installed: run scripts/install-postgres.sh (apt-get install postgresql)."
            )
        self.bin = bindir
        self.port = free_port()
        # not under pytest's tmp_path: that is private to root, and the server runs as `postgres`
        self.dir = Path(tempfile.mkdtemp(prefix="tracker-postgres-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}"

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as_user, *command], capture_output=True, text=True, cwd=self.dir)
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.is_file() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}\n{tail}")

    def start(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c max_connections={MAX_CONNECTIONS} -c fsync=on"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def database(self, name: str) -> str:
        """Create database ``name``; its SQLAlchemy URI."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"{self.url}/{name}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                capture_output=True, cwd=self.dir,
            )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)
