"""What a run records about its code: the git checkout (commit, branch, remote, dirty, diff) and a copy
of the program, done beside the writer thread (git may take seconds; rows must not wait for it)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracker_jupyter.store.writer import RunWriter


def git_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest directory at or above ``start`` that holds ``.git`` (a dir, or a file for worktrees)."""
    path = Path(start or os.getcwd()).resolve()
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


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


def startup_task(*, program: str | None, save_code: bool, disable_git: bool) -> Callable[[RunWriter], None]:
    """Work for the writer thread's start: git facts and code copies cost milliseconds init() need not pay."""

    def startup(writer: RunWriter) -> None:
        code = writer.dir / "code"
        start = Path(program).parent if program else None
        root = None if disable_git else git_root(start)
        if root is not None:
            info = git_info(root)
            if info is not None:
                writer.meta["git"] = info
                writer.mark_meta()
                if save_code and info["dirty"]:
                    diff = git_diff(root)
                    if diff:
                        code.mkdir(exist_ok=True)
                        (code / "diff.patch").write_text(writer.masked_code(diff) + "\n", encoding="utf-8")
        if save_code and program:
            code.mkdir(exist_ok=True)
            relative = os.path.relpath(program, root) if root is not None else os.path.basename(program)
            if relative.startswith(".."):
                relative = os.path.basename(program)
            target = code / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            import shutil

            shutil.copy2(program, target)  # then masked in place: the copy keeps the script's mode and times
            source = target.read_bytes()
            masked = writer.masked_code(source.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape"
            )
            if masked != source:
                target.write_bytes(masked)
            writer.meta["code_path"] = f"code/{relative}"
            writer.mark_meta()

    return startup
