"""Where we are running: IPython or a kernel, the program or notebook, the machine and the user.

Nothing here imports IPython (a shell only exists when IPython was imported already) or touches a file:
reading the git checkout is ``store.capture``'s.
"""

from __future__ import annotations

import os
import sys
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
