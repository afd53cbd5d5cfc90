"""Notebooks executed in real Jupyter kernels (nbclient, jupyter_client), as a frontend would run them.

One kernel is shared by the scenarios that can share one; it is started with an IPython profile that
loads the extension (``c.InteractiveShellApp.extensions``) and sets a ``TrackerMagics`` default. The
quickstart gets a fresh kernel with no profile, as a user's first run does, and the restart scenario
owns its kernel because it restarts and kills it. Every store lives under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_notebook

import tracker_jupyter
from tests.conftest import REPO

pytestmark = [pytest.mark.timeout(180), pytest.mark.kernel]

# A 1x1 PNG, to see an image travel from a cell into the session history.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def _kernel_env(store: Path, ipython_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKER_", "MLFLOW_TRACKING_", "JPY_"))}
    env.update(TRACKER_DIR=str(store), IPYTHONDIR=str(ipython_dir), PYTHONPATH=str(REPO))
    return env


class Kernel:
    """A running kernel and the store its runs write to; executes notebooks cell by cell."""

    def __init__(self, km: KernelManager, cwd: Path, store: Path) -> None:
        self.km = km
        self.cwd = cwd
        self.store = store

    def run(self, cells: Sequence[str | NotebookNode]) -> NotebookNode:
        """Execute ``cells`` one after the other, stopping at an error a cell is not tagged to raise."""
        nb = new_notebook(cells=[new_code_cell(c) if isinstance(c, str) else c for c in cells])
        client = NotebookClient(nb, km=self.km, timeout=60, resources={"metadata": {"path": str(self.cwd)}})
        with client.setup_kernel():
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            finally:
                client.kc.stop_channels()
        assert_no_internal_errors(nb)
        return nb

    def api(self) -> Any:
        return tracker_jupyter.Api(self.store)


def _start(env: dict[str, str], cwd: Path) -> KernelManager:
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(cwd))
    return km


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    root = tmp_path_factory.mktemp("shared-kernel")
    profile = root / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_config.py").write_text(
        'c.InteractiveShellApp.extensions = ["tracker_jupyter"]\nc.TrackerMagics.entity = "from-profile"\n'
    )
    km = _start(_kernel_env(root / "store", root / "ipython"), root)
    try:
        yield Kernel(km, root, root / "store")
    finally:
        km.shutdown_kernel(now=True)


def tagged(source: str, *tags: str) -> NotebookNode:
    return new_code_cell(source, metadata={"tags": list(tags)})


def assert_no_internal_errors(nb: NotebookNode) -> None:
    """Nothing of ours failed quietly: our failures are reported as RuntimeWarnings on stderr."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stderr":
                assert "RuntimeWarning" not in output.text, output.text


def history(run_dir: Path) -> NotebookNode:
    nb = nbformat.read(run_dir / "code" / "_session_history.ipynb", as_version=4)
    nbformat.validate(nb)
    return nb


def code_cells(nb: NotebookNode) -> list[NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def stdout(cell: NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def run_dirs(store: Path, project: str) -> list[Path]:
    """The project's run directories, oldest first."""
    dirs = [p for p in (store / project).iterdir() if (p / "run.json").is_file()]
    return sorted(dirs, key=lambda p: json.loads((p / "run.json").read_text())["start_time"])


# -------------------------------------------------------------------------------------- quickstart


def test_quickstart_notebook_runs_as_shipped(tmp_path: Path) -> None:
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    store = tmp_path / "store"
    client = NotebookClient(
        nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=_kernel_env(store, tmp_path / "ipython"), cwd=str(tmp_path))
    assert_no_internal_errors(nb)

    (record,) = tracker_jupyter.Api(store).runs("quickstart")
    assert record.state == "finished"
    assert record.config == {"lr": 0.01, "epochs": 5}
    assert [row["_step"] for row in record.scan_history()] == list(range(505))  # 5 x (100 train + 1 val)
    assert record.summary["epoch"] == 4 and "val/acc" in record.summary and "train/loss" in record.summary
    printed = "\n".join(stdout(cell) for cell in code_cells(nb))
    assert "epoch 4: loss=" in printed and "rows:    505 steps 0 to 504" in printed
    assert f"run {record.name} ({record.id}): finished" in printed
    assert "logged quickstart-model:v0 with aliases ['best']" in printed
    [model] = record.logged_artifacts()
    assert (
        model.type == "model" and json.loads(Path(model.file(str(tmp_path / "m"))).read_text())["lr"] == 0.01
    )
    assert f"stored in {record.dir}" in printed
    assert any(
        o.output_type == "display_data" and "final accuracy" in o.data.get("text/html", "")
        for cell in code_cells(nb)
        for o in cell.outputs
    )
    assert all(
        cell.get("outputs") == []
        for cell in nbformat.read(REPO / "notebooks" / "quickstart.ipynb", 4).cells
        if cell.cell_type == "code"
    )


# ------------------------------------------------------------------------------- the shared kernel


def test_extension_and_defaults_come_from_the_ipython_profile(kernel: Kernel) -> None:
    nb = kernel.run(
        [
            "run = %tracker_init --project profile\nprint(run.entity, run.project)\n%tracker_finish",
            "%load_ext tracker_jupyter",  # already loaded by the profile: harmless
            "import tracker_jupyter\nimport tracker_jupyter.core.host as env\nprint(env.in_notebook(), tracker_jupyter.run)",
        ]
    )
    assert stdout(nb.cells[0]) == "from-profile profile\n"
    assert stdout(nb.cells[2]) == "True None\n"


def test_reexecuted_init_cell_finishes_the_first_run_and_the_second_saves_its_own_code(
    kernel: Kernel,
) -> None:
    init_cell = "run = %tracker_init --project reinit --save-code --config lr=0.01"
    work_cell = "run.config.lr = 0.1  # a notebook lets config values change\nprint(run.id)"
    # The same source twice rather than one cell executed twice: nbclient loses track of display ids
    # when a cell's outputs are replaced (the finished run's widget updates its display). The kernel
    # sees the same thing either way.
    nb = kernel.run([init_cell, work_cell, init_cell, work_cell, "%tracker_finish"])

    first_dir, second_dir = run_dirs(kernel.store, "reinit")
    first, second = kernel.api().run(str(first_dir)), kernel.api().run(str(second_dir))
    assert (first.state, second.state) == ("finished", "finished")
    assert first.end_time <= second.start_time  # the first was finished before the second was set up
    assert first.config == second.config == {"lr": 0.1}

    # Executions, in order: init (n), work (n+1), init again (n+2), work (n+3), finish (n+4).
    n = nb.cells[0].execution_count
    assert [(c.source, c.execution_count) for c in code_cells(history(first_dir))] == [
        (init_cell, n), (work_cell, n + 1), (init_cell, n + 2),
    ]  # fmt: skip
    second_cells = code_cells(history(second_dir))
    assert [(c.source, c.execution_count) for c in second_cells] == [
        (init_cell, n + 2), (work_cell, n + 3), ("%tracker_finish", n + 4),
    ]  # fmt: skip
    assert stdout(second_cells[1]) == f"{second.id}\n"


def test_error_inside_tracker_cell_fails_its_run_and_later_cells_work(kernel: Kernel) -> None:
    nb = kernel.run(
        [
            tagged(
                "%%tracker --project cell-error\nimport tracker_jupyter\ncell_run = tracker_jupyter.run\n"
                "cell_run.log({'loss': 1.0})\nprint('working')\nraise ValueError('cell failed')",
                "raises-exception",
            ),
            "print(cell_run.state, cell_run.exit_code, tracker_jupyter.run)",
        ]
    )
    (error,) = [o for o in nb.cells[0].outputs if o.output_type == "error"]
    assert (error.ename, error.evalue) == ("ValueError", "cell failed")
    assert stdout(nb.cells[0]) == "working\n"
    assert stdout(nb.cells[1]) == "failed 1 None\n"
    (record,) = kernel.api().runs("cell-error")
    assert (record.state, record.exit_code, record.summary["loss"]) == ("failed", 1, 1.0)


def test_top_level_await_in_a_tracker_cell_is_refused_clearly_in_a_kernel(kernel: Kernel) -> None:
    nb = kernel.run(
        [
            tagged(
                "%%tracker --project awaiting\nimport asyncio\nawait asyncio.sleep(0)", "raises-exception"
            ),
            "import asyncio\nawait asyncio.sleep(0)\nprint('a plain cell awaits')",
        ]
    )
    # IPython shows a UsageError as one line on stderr, without a traceback
    told = "".join(o.text for o in nb.cells[0].outputs if o.output_type == "stream" and o.name == "stderr")
    assert "UsageError: %%tracker cannot run a cell with top-level await" in told and "%tracker_init" in told
    assert stdout(nb.cells[1]) == "a plain cell awaits\n"
    (record,) = kernel.api().runs("awaiting")
    assert record.state == "failed"


def test_session_history_matches_the_notebook_cell_by_cell(kernel: Kernel) -> None:
    cells = [
        "run = %tracker_init --project history --save-code",
        "print('loss 0.5')\nfrom IPython.display import HTML, display\ndisplay(HTML('<i>chart</i>'))",
        "6 * 7",
        "handle = display(HTML('<b>v1</b>'), display_id=True)",
        "handle.update(HTML('<b>v2</b>'))\n'updated'",
        f"import base64\nfrom IPython.display import Image\nImage(data=base64.b64decode({PNG_B64!r}))",
        "import sys\nprint('careful', file=sys.stderr)",
        tagged("raise RuntimeError('expected')", "raises-exception"),
        "for step in range(3):\n    run.log({'step_loss': 1 / (step + 1)})\n    print(step)",
        "%tracker_finish",
        "print('after the run')",
    ]
    nb = kernel.run(cells)
    (run_dir,) = run_dirs(kernel.store, "history")
    recorded = code_cells(history(run_dir))
    executed = nb.cells[: len(recorded)]
    assert len(recorded) == len(cells) - 1  # the cell after %tracker_finish is not the run's

    assert [(c.source, c.execution_count) for c in recorded] == [
        (c.source, c.execution_count) for c in executed
    ]
    # Outputs: each on the cell that produced it, as the notebook shows them. The init cell shows the
    # widget and the finish cell prints its line after the recording stopped, so those two are left out.
    for mine, shown in list(zip(recorded, executed, strict=True))[1:-1]:
        assert [_comparable(o) for o in mine.outputs] == [_comparable(o) for o in shown.outputs], shown.source
    assert recorded[3].outputs[0].data["text/html"] == "<b>v2</b>"  # the update reached the earlier cell
    assert recorded[5].outputs[0].data["image/png"].strip() == PNG_B64

    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["session_history"] == "code/_session_history.ipynb"


def _comparable(output: NotebookNode) -> Any:
    if output.output_type == "stream":
        return ("stream", output.name, output.text)
    if output.output_type == "error":
        return ("error", output.ename, output.evalue)
    data = {mime: value.strip() if isinstance(value, str) else value for mime, value in output.data.items()}
    return (output.output_type, data, output.get("execution_count"))


# ---------------------------------------------------------------------------------- restart and kill


def test_kernel_restart_finishes_the_run_and_a_killed_kernel_leaves_one_to_resume(tmp_path: Path) -> None:
    store = tmp_path / "store"
    km = _start(_kernel_env(store, tmp_path / "ipython"), tmp_path)
    kernel = Kernel(km, tmp_path, store)
    try:
        kernel.run(
            ["import tracker_jupyter\nrun = tracker_jupyter.init(project='restart', id='clean', save_code=True)\n"
             "run.log({'loss': 1.0})"]
        )  # fmt: skip
        km.restart_kernel()  # a clean restart: the kernel process exits normally
        clean = kernel.api().run("restart/clean")
        assert clean.state == "finished"
        assert clean.meta["session_history"] == "code/_session_history.ipynb"
        assert len(code_cells(history(clean.dir))) == 1  # written at exit too

        kernel.run(
            ["import tracker_jupyter\nrun = tracker_jupyter.init(project='restart', id='killed', save_code=True)",
             "run.log({'loss': 2.0})\nrun.save()  # flush, so the row is on disk before the kill"]
        )  # fmt: skip
        km.restart_kernel(now=True)  # SIGKILL: nothing in the kernel gets to run
        killed = kernel.api().run("restart/killed")
        assert killed.state == "crashed"
        assert len(code_cells(history(killed.dir))) == 2  # saved after each cell, so it survived

        nb = kernel.run(
            ["import tracker_jupyter\n"
             "run = tracker_jupyter.init(project='restart', id='killed', resume='must', save_code=True)\n"
             "print(run.step)\nrun.log({'loss': 3.0})\nrun.finish()"]
        )  # fmt: skip
        assert stdout(nb.cells[0]) == "1\n"
        resumed = kernel.api().run("restart/killed")
        assert resumed.state == "finished"
        assert [(r["_step"], r["loss"]) for r in resumed.scan_history()] == [(0, 2.0), (1, 3.0)]
        sessions = [c.source for c in history(resumed.dir).cells if c.cell_type == "markdown"]
        assert [s.split(" of run")[0] for s in sessions] == ["**Session 1**", "**Session 2**"]
    finally:
        km.shutdown_kernel(now=True)


def test_a_kernel_s_output_and_system_metrics_are_kept_once(kernel: Kernel) -> None:
    nb = kernel.run(
        [
            "run = %tracker_init --project console",
            "from tqdm import tqdm\nprint('from a cell')\nfor i in tqdm(range(20), mininterval=0):\n    run.log({'i': i})",
            "print('second cell')\n%tracker_finish",
        ]
    )
    assert stdout(nb.cells[1]) == "from a cell\n"  # the cell shows what it printed, as always
    [run_dir] = run_dirs(kernel.store, "console")
    lines = (run_dir / "files" / "output.log").read_text().splitlines()
    assert lines.count("from a cell") == 1 and lines.count("second cell") == 1  # once, never twice
    bars = [line for line in lines if "20/20" in line or "it/s]" in line]
    assert len(bars) == 1 and bars[0].startswith("100%")
    samples = [json.loads(line) for line in (run_dir / "system.jsonl").read_text().splitlines()]
    assert samples and samples[0]["system/process_memory_rss_megabytes"] > 0


def test_kernel_python_is_this_python(kernel: Kernel) -> None:
    nb = kernel.run(["import sys\nprint(sys.executable)"])
    assert stdout(nb.cells[0]).strip() == sys.executable
