"""How a ``Run`` shows itself (``run.display()``, a run as a cell's last expression): ``init()`` hands each
run this presenter, so the run itself imports nothing of the display layer. The widget module, and with
it ipywidgets, is imported the first time a run is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run


class RunPresenter:
    """``core.run.Presenter``: the live widget while the run runs, its snapshot once finished."""

    def show(self, run: Run) -> None:
        from tracker_jupyter.display import widget

        widget.show(run)

    def bundle(self, run: Run) -> dict[str, str]:
        from tracker_jupyter.display import view

        return view.snapshot_bundle(run)
