"""``watch(models)``: histograms of a torch model's parameters and gradients, every ``log_freq`` passes.

As in the reference: parameters after every ``log_freq``-th forward pass of a model, each parameter's
gradient every ``log_freq``-th time one is computed for it, logged under ``parameters/<name>`` and
``gradients/<name>`` (``graph_<i>`` in front of the names of the second and later models watched) with
``commit=False``, so they join the row of the step being logged. Between those passes a hook only counts.
Histograms have 64 bins over the finite values (``torch.histc``, on the tensor's own device).

``log_graph=True`` keeps the model's structure (its modules and parameter shapes) in the run's metadata
under ``models``: the dashboard shows it; the reference's graph drawing needs its web app.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from tracker_jupyter.exceptions import UsageError
from tracker_jupyter.media import Histogram

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

BINS = 64
LOG_WHAT = ("gradients", "parameters", "all", None)
_watched: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()  # model -> hook handles
_next_index = 0  # the graph index of the next model watched (global, as in the reference)


def watch(
    run: Run,
    models: Any,
    criterion: Any = None,
    log: str | None = "gradients",
    log_freq: int = 1000,
    idx: int | None = None,
    log_graph: bool = False,
) -> list[dict[str, Any]]:
    """Hook ``models`` (a torch module or a list of them) so ``run`` gets their histograms; returns the
    structures recorded with ``log_graph`` (empty without it)."""
    global _next_index
    if log not in LOG_WHAT:
        raise UsageError(f"watch(log=...) must be 'gradients', 'parameters', 'all' or None, got {log!r}.")
    if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
        raise UsageError(f"watch(log_freq=...) must be a positive int, got {log_freq!r}.")
    try:
        import torch
    except ImportError:
        raise UsageError("watch() works with PyTorch models; torch is not installed.") from None
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    for model in models:
        if not isinstance(model, torch.nn.Module):
            raise UsageError(f"watch() takes torch.nn.Module models, got {type(model).__name__}.")
    first = _next_index if idx is None else idx
    graphs = []
    for offset, model in enumerate(models):
        index = first + offset
        _next_index += 1
        prefix = f"graph_{index}" if index > 0 else ""
        handles = _watched.setdefault(model, [])
        if log in ("parameters", "all"):
            handles.append(model.register_forward_hook(_parameters_hook(run, model, prefix, log_freq)))
        if log in ("gradients", "all"):
            for name, parameter in model.named_parameters():
                if parameter.requires_grad:
                    handles.append(
                        parameter.register_hook(_gradient_hook(run, f"gradients/{prefix}{name}", log_freq))
                    )
        if log_graph:
            graphs.append(_structure(model, index, criterion))
    if graphs:
        run.update_meta(models=[*run.meta.get("models", []), *graphs])
    run.on_finish(lambda finished: unwatch(models))
    return graphs


def unwatch(models: Any = None) -> None:
    """Remove the hooks of ``models`` (all watched models when None)."""
    if models is None:
        targets = list(_watched.keys())
    else:
        targets = list(models) if isinstance(models, (list, tuple)) else [models]
    for model in targets:
        for handle in _watched.pop(model, []):
            handle.remove()


def _parameters_hook(run: Run, model: Any, prefix: str, log_freq: int) -> Any:
    calls = [0]

    def hook(module: Any, inputs: Any, output: Any) -> None:
        calls[0] += 1
        if calls[0] < log_freq or run.finished:
            return
        calls[0] = 0
        run.log({f"parameters/{prefix}{name}": _histogram(p.detach()) for name, p in model.named_parameters()},
                commit=False)  # fmt: skip

    return hook


def _gradient_hook(run: Run, key: str, log_freq: int) -> Any:
    calls = [0]

    def hook(grad: Any) -> None:
        calls[0] += 1
        if calls[0] < log_freq or run.finished:
            return
        calls[0] = 0
        run.log({key: _histogram(grad.detach())}, commit=False)

    return hook


def _histogram(tensor: Any) -> Histogram:
    import torch

    flat = tensor.reshape(-1).float()
    finite = flat[torch.isfinite(flat)]
    dropped = int(flat.numel() - finite.numel())
    if finite.numel() == 0:
        low = high = 0.0
    else:
        low, high = float(finite.min()), float(finite.max())
    if low == high:  # one value: one bin around it
        counts, edges = [int(finite.numel())], [low - 0.5, high + 0.5]
    else:
        counts = finite.histc(bins=BINS, min=low, max=high).long().tolist()
        edges = torch.linspace(low, high, BINS + 1).tolist()
    histogram = Histogram(np_histogram=(counts, edges))
    histogram.dropped = dropped
    return histogram


def _structure(model: Any, index: int, criterion: Any) -> dict[str, Any]:
    modules = [
        {"name": name or "(model)", "type": type(module).__name__,
         "parameters": {pname: list(p.shape) for pname, p in module.named_parameters(recurse=False)}}
        for name, module in model.named_modules()
    ]  # fmt: skip
    total = sum(p.numel() for p in model.parameters())
    structure: dict[str, Any] = {
        "index": index,
        "type": type(model).__name__,
        "parameters": total,
        "modules": modules,
    }
    if criterion is not None:
        structure["criterion"] = type(criterion).__name__
    return structure
