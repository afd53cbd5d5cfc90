"""Pytest plugin: a real JupyterLab driven by Playwright in Debian's Chromium.

Fixtures
--------
jupyter_lab (session)  a running ``jupyter lab`` on 127.0.0.1, isolated from the user's Jupyter config
browser (session)      a headless /usr/bin/chromium launched through Playwright
page (function)        a fresh context and page; ``test-artifacts/<test>.png`` is saved at teardown

Helpers
-------
open_notebook(page, lab, name) -> Notebook, whose methods run cells and read outputs.

Tests that need the browser carry ``@pytest.mark.browser``. Without /usr/bin/chromium (see
``scripts/install-browser.sh``) they are skipped, except under ``CI=true`` where they fail: CI must not pass
by skipping its only widget coverage.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
# Flags keep Chromium from reaching the network or profile services on a machine that can only see
# package registries; --no-sandbox because tests run as root in containers.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
SERVER_START_TIMEOUT_S = 60.0
DEFAULT_TIMEOUT_S = 30.0

# JupyterLab user settings written before start. The news question and the update check would put toasts
# over the notebook and make requests to the internet; windowing "none" keeps every cell in the DOM so a
# cell's locator never points at a detached placeholder.
LAB_USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}

_BROWSER_SKIPS_KEY = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_BROWSER_SKIPS_KEY] = []  # the "browser" marker is declared in pyproject.toml


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Decide before any fixture runs, so a missing browser does not first cost a JupyterLab start.
    if item.get_closest_marker("browser") is not None:
        _require_browser(item.config)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    skipped = config.stash.get(_BROWSER_SKIPS_KEY, [])
    if skipped:
        terminalreporter.write_line(
            f"!!! {len(skipped)} BROWSER TESTS SKIPPED: {skipped[0]}", red=True, bold=True
        )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _require_browser(config: pytest.Config) -> None:
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} is missing; run scripts/install-browser.sh as root (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is not installed (pip install playwright)"
    if problem is None:
        return
    if _in_ci():
        pytest.fail(f"browser tests cannot run under CI=true: {problem}", pytrace=False)
    config.stash[_BROWSER_SKIPS_KEY].append(problem)
    pytest.skip(f"!!! BROWSER TEST SKIPPED: {problem}")


# --- JupyterLab server ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JupyterLab:
    """A running JupyterLab server; ``url`` ends with ``/``."""

    url: str
    token: str
    root: Path
    log_path: Path
    app: str = "lab"  # or "notebook": Notebook 7

    def notebook_url(self, name: str) -> str:
        # ?reset drops the saved workspace, so a page opens only this notebook and not the previous test's.
        where = "lab/tree" if self.app == "lab" else "notebooks"
        return f"{self.url}{where}/{name}?reset&token={self.token}"

    def write_notebook(self, name: str, cells: Sequence[str]) -> Path:
        """Write code cells as ``root/name`` with a python3 kernelspec (so Lab asks no kernel question)."""
        import nbformat

        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, path)
        return path

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API (``path`` like ``api/kernels``); returns decoded JSON or None."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel, so each test starts with fresh execution counts and no leftover widgets."""
        for session in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{session['id']}")
        for kernel in self.api("GET", "api/kernels"):
            self.api("DELETE", f"api/kernels/{kernel['id']}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _isolated_env(base: Path) -> dict[str, str]:
    """Environment for the server: nothing from the user's ~/.jupyter or ~/.ipython, the venv's data kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    dirs = {
        "JUPYTER_CONFIG_DIR": base / "config",
        "JUPYTER_DATA_DIR": base / "data",
        "JUPYTER_RUNTIME_DIR": base / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": base / "config" / "lab" / "user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": base / "config" / "lab" / "workspaces",
        "IPYTHONDIR": base / "ipython",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    # The ipywidgets lab extension lives in <venv>/share/jupyter/labextensions; naming it explicitly keeps
    # it found even when the server's sys.prefix differs from where the packages were installed.
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    # Kernels must import this checkout's package, not whatever copy the venv happens to hold.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    return env


def _write_lab_settings(settings_dir: Path) -> None:
    for plugin, values in LAB_USER_SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _wait_until_up(lab: JupyterLab, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{_tail(lab.log_path)}")
        try:
            lab.api("GET", "api/status")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise TimeoutError(f"jupyter lab not up after {SERVER_START_TIMEOUT_S}s:\n{_tail(lab.log_path)}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The server runs in its own session: signal the whole group so nothing it spawned outlives the tests.
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def start_lab(base: Path, *, app: str = "lab") -> Iterator[JupyterLab]:
    """Run a Jupyter server (``app`` is ``lab`` or ``notebook``, Notebook 7) in ``base``, isolated from the
    user's configuration, until the block ends. Used by the ``jupyter_lab`` fixture and the benchmarks."""
    root = base / "root"
    root.mkdir(exist_ok=True)
    env = _isolated_env(base)
    _write_lab_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
    port = _free_port()
    lab = JupyterLab(
        url=f"http://127.0.0.1:{port}/",
        token=uuid.uuid4().hex,
        root=root,
        log_path=base / "server.log",
        app=app,
    )
    command = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={lab.token}",
        f"--ServerApp.root_dir={root}",
        # Tests run as root in CI containers; the server refuses that unless told.
        "--allow-root",
        # window.jupyterapp lets helpers run Lab commands instead of clicking through menus.
        "--expose-app-in-browser" if app == "notebook" else "--LabApp.expose_app_in_browser=True",
    ]
    if app == "lab":  # no requests to PyPI or the news feed: this machine only reaches package registries
        command += [
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    with lab.log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_up(lab, process)
        extensions = {ext["name"] for ext in lab.api("GET", "lab/api/extensions")} if app == "lab" else None
        if extensions is not None and "@jupyter-widgets/jupyterlab-manager" not in extensions:
            raise RuntimeError(
                f"ipywidgets lab extension not found by the server; it has {sorted(extensions)}"
            )
        yield lab
    finally:
        if process.poll() is None:
            # Best effort: if the server no longer answers, killing its process group below still ends it.
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                lab.shutdown_kernels()
        _stop(process)


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with start_lab(tmp_path_factory.mktemp("jupyter-lab")) as lab:
        yield lab


# --- Browser ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(pytestconfig: pytest.Config) -> Iterator[Browser]:
    _require_browser(pytestconfig)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives each launch a new temporary --user-data-dir, so no profile state leaks in.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, jupyter_lab: JupyterLab, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_S * 1000)
    page = context.new_page()
    _dismiss_toasts(page)
    try:
        yield page
    finally:
        try:
            if not page.is_closed():
                save_screenshot(page, request.node.name)
        finally:
            context.close()
            jupyter_lab.shutdown_kernels()


def _dismiss_toasts(page: Page) -> None:
    # Settings already silence the first-run news question; this handler is the fallback for any toast
    # (news, plugin notices) that would otherwise cover the bottom-right corner during a click.
    news = page.locator(".jp-Notification-Toast-default").filter(has_text="Jupyter news")
    page.add_locator_handler(news, lambda toast: toast.get_by_role("button", name="No").click())
    other = page.locator(".Toastify__toast .jp-Notification-Toast-Close").first
    page.add_locator_handler(other, lambda close: close.click())


def assert_no_injected_script_ran(page: Page, flag: str = "__xss") -> None:
    """Assert ``window[flag]`` (set by an injected ``onerror`` handler) stays unset.

    A control image with a broken source, added by the page itself, must fire its handler first: so an
    unset flag means the injected markup never became an element, not that its handler had no time to run.
    """
    page.evaluate(
        """() => {
            const control = new Image();
            control.onerror = () => { window.__control = 1; };
            control.src = 'x';
            document.body.append(control);
        }"""
    )
    page.wait_for_function("() => window.__control === 1")
    assert page.evaluate(f"() => window.{flag}") is None


def save_screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG as ``test-artifacts/<name>.png``; returns the path."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    path = ARTIFACTS_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- Notebook driving ------------------------------------------------------------------------------------

# Finds the NotebookPanel of a path through the exposed app; shared by the JS snippets below.
_FIND_PANEL = (
    "const panel = [...window.jupyterapp.shell.widgets('main')].find(w => w.context?.path === path);"
)
_EXECUTION_COUNT = re.compile(r"^\[\d+\]:$")


class Notebook:
    """One notebook open in a page. Cell indexes are 0-based and count every cell, code or not."""

    def __init__(self, page: Page, name: str, panel_id: str) -> None:
        self.page = page
        self.name = name
        self.panel = page.locator(f"#{panel_id}")

    def cell(self, index: int) -> Locator:
        return self.panel.locator(".jp-Notebook .jp-Cell").nth(index)

    def outputs(self, index: int) -> Locator:
        return self.cell(index).locator(".jp-OutputArea-output")

    def prompt(self, index: int) -> str:
        """The cell's input prompt as shown: ``[ ]:`` never run, ``[*]:`` queued or running, ``[3]:`` done."""
        return (self.cell(index).locator(".jp-InputPrompt").text_content() or "").strip()

    def is_running(self, index: int) -> bool:
        return self.prompt(index) == "[*]:"

    def wait_for_kernel_idle(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.page.wait_for_function(
            f"""path => {{ {_FIND_PANEL}
                const session = panel?.sessionContext;
                return session?.isReady && session.session?.kernel?.status === 'idle'; }}""",
            arg=self.name,
            timeout=timeout * 1000,
        )

    def run_all(self) -> None:
        """Queue every cell and return at once; JupyterLab marks them ``[*]:`` before this returns."""
        self._run("notebook:run-all-cells", None)

    def run_cell(self, index: int) -> None:
        """Queue one cell (as Shift+Enter would, without moving on) and return at once."""
        self._run("notebook:run-cell", index)

    def _run(self, command: str, index: int | None) -> None:
        # Not awaited in the page: the command's promise only settles when execution ends, and callers
        # need to observe the cells while they run.
        self.page.evaluate(
            f"""([path, command, index]) => {{ {_FIND_PANEL}
                window.jupyterapp.shell.activateById(panel.id);
                if (index !== null) panel.content.activeCellIndex = index;
                void window.jupyterapp.commands.execute(command);
            }}""",
            [self.name, command, index],
        )

    def wait_for_cell_done(self, index: int, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Wait until code cell ``index`` shows an execution count (its prompt turns ``[*]:`` at queueing)."""
        deadline = time.monotonic() + timeout
        while not _EXECUTION_COUNT.match(self.prompt(index)):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"cell {index} of {self.name} still {self.prompt(index)!r} after {timeout}s"
                )
            time.sleep(0.05)

    def wait_for_idle(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Wait until no cell is queued or running and the kernel is idle."""
        self.panel.locator(".jp-InputPrompt", has_text="[*]:").first.wait_for(
            state="detached", timeout=timeout * 1000
        )
        self.wait_for_kernel_idle(timeout)

    def wait_for_output(self, index: int, selector: str, timeout: float = DEFAULT_TIMEOUT_S) -> Locator:
        """Wait for ``selector`` to be visible inside the outputs of cell ``index``; returns its locator."""
        found = self.outputs(index).locator(selector).first
        found.wait_for(state="visible", timeout=timeout * 1000)
        return found

    def output_text(self, index: int) -> str:
        return "\n".join(self.outputs(index).all_inner_texts())

    def output_html(self, index: int) -> str:
        return "".join(output.inner_html() for output in self.outputs(index).all())


def open_notebook(page: Page, lab: JupyterLab, name: str, timeout: float = DEFAULT_TIMEOUT_S) -> Notebook:
    """Open ``name`` (relative to ``lab.root``) in JupyterLab and wait until its kernel is idle."""
    page.goto(lab.notebook_url(name))
    # Lab's DOM ids are per page load, so the panel is found by its path and then addressed by its id.
    panel_id = page.wait_for_function(
        f"path => {{ if (!window.jupyterapp) return false; {_FIND_PANEL} return panel?.id ?? false; }}",
        arg=name,
        timeout=timeout * 1000,
    ).json_value()
    notebook = Notebook(page, name, panel_id)
    notebook.cell(0).wait_for(state="visible", timeout=timeout * 1000)
    notebook.wait_for_kernel_idle(timeout)
    return notebook
