"""Where we are running: IPython or a kernel, the program or notebook, the git checkout.

Nothing here imports IPython: a shell only exists when IPython was imported already.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def get_shell() -> Any:
    """The running IPython shell, or None (without importing IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:
        return None


def in_notebook(shell: Any = None) -> bool:
    """True in a Jupyter kernel of any frontend: the shell has a kernel (names of files prove nothing)."""
    shell = get_shell() if shell is None else shell
    return shell is not None and getattr(shell, "kernel", None) is not None


def in_interactive(shell: Any = None) -> bool:
    """True in IPython (terminal or kernel): re-running init() there should finish the previous run."""
    return (get_shell() if shell is None else shell) is not None


def notebook_path(shell: Any = None, override: str | None = None) -> str | None:
    """The notebook file this kernel runs, when a frontend told us: jupyter_server or VS Code."""
    if override:
        return override
    shell = get_shell() if shell is None else shell
    if shell is None:
        return None
    user_ns = getattr(shell, "user_ns", {}) or {}
    for candidate in (
        user_ns.get("__vsc_ipynb_file__"),
        user_ns.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            return candidate
    return None


def program_path() -> str | None:
    """The script being run (``python train.py``), or None for ``python -c`` / stdin / IPython."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path and not path.startswith("<") and os.path.isfile(path):
        return os.path.abspath(path)
    return None


def git_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest directory at or above ``start`` that holds ``.git`` (a dir, or a file for worktrees)."""
    path = Path(start or os.getcwd()).resolve()
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def user_name() -> str | None:
    name = os.environ.get("USER") or os.environ.get("LOGNAME")
    if name:
        return name
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """Host, user, process and interpreter facts (no platform/socket imports: init() stays fast)."""
    uname = os.uname() if hasattr(os, "uname") else None
    return {
        "host": uname.nodename if uname else os.environ.get("COMPUTERNAME"),
        "user": user_name(),
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "os": f"{uname.sysname}-{uname.release}" if uname else sys.platform,
        "args": list(sys.argv[1:]),
        "executable": sys.executable,
    }


def strip_credentials(url: str) -> str:
    """A remote URL without the ``user:token@`` part some people keep in it."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def _git(root: Path, *args: str) -> str | None:
    import subprocess

    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(root: Path) -> dict[str, Any] | None:
    """Commit, branch, remote (credentials removed) and whether the work tree is dirty."""
    import shutil

    if shutil.which("git") is None:
        return None
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None
    remote = _git(root, "remote", "get-url", "origin")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "root": str(root),
        "commit": commit,
        "branch": _git(root, "rev-parse", "--abbrev-ref", "HEAD"),
        "remote": strip_credentials(remote) if remote else None,
        "dirty": bool(status),
    }


def git_diff(root: Path) -> str | None:
    """The uncommitted changes to tracked files, as a patch ``git apply`` takes."""
    return _git(root, "diff", "HEAD", "--binary")
