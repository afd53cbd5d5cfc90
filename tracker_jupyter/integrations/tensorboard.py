"""``init(sync_tensorboard=True)``: mirror TensorBoard scalars into the run and keep the event files.

How it works
------------
While the run is live, these are patched, and restored at finish:

- the ``add_event`` and ``flush`` methods of ``tensorboardX.event_file_writer.EventFileWriter``
  (``tensorboardX.SummaryWriter``) and of ``tensorboard.summary.writer.event_file_writer.EventFileWriter``
  (what ``torch.utils.tensorboard.SummaryWriter`` writes through). Patching the classes covers writers created
  before and after ``init()``.
- the ``write_summary``, ``create_summary_file_writer`` and ``flush_summary_writer`` ops in
  ``tensorflow.python.ops.gen_summary_ops``, which every ``tf.summary`` call ends in at run time (``tf.summary.
  scalar``, the Keras ``TensorBoard`` callback). Values written in eager mode are mirrored; inside a
  ``tf.function`` a value exists only when the graph runs, so those stay in the event file (one warning says
  so). A ``tf.summary`` writer created before ``init()`` is mirrored too, but its log directory is unknown: its
  tags go under ``tf.summary/<tag>`` once another directory wrote the tag, and its event file is not copied.

A module that is not imported yet is patched right after the user imports it, so ``init()`` pays no import
cost.

How scalars become history rows
-------------------------------
Every scalar value (``simple_value``, or a one-element tensor of the ``scalars`` plugin) is logged under its
TensorBoard tag, with the TensorBoard step under the key ``global_step``; a float32 value is logged as the
shortest decimal that is the same float32 (``0.1``, not ``0.10000000149``). A tag that a second log directory
writes too (``runs/train`` and ``runs/val`` both writing ``loss``) is kept apart: the second one's values go
under ``<its log directory relative to the two's common parent>/<tag>`` (``val/loss``), never into one series.
Consecutive scalars with the same TensorBoard step and distinct tags share one history row; a new TensorBoard
step, a tag repeated within the row, a flush of the writer (leaving ``with writer.as_default():`` flushes it)
or ``run.finish()`` commit it. The run's own ``_step`` keeps counting up by one per row whatever the
TensorBoard steps do (they may go backwards, per tag or between writers), so no scalar is ever dropped: plot
against ``global_step`` to get TensorBoard's x axis. Rows are built with ``run.log(..., commit=False)``, so a
``run.log()`` of the user's own in between joins the same row.

Event files
-----------
At finish the writers are flushed and every event file written during the run is copied to
``files/tensorboard/<logdir>/``, where ``<logdir>`` is the writer's log directory relative to the common parent
of all log directories seen (just its last part when there is one writer).
"""

from __future__ import annotations

import os
import struct
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker_jupyter.integrations._patching import Patch, WhenImported, is_installed, missing_extra

if TYPE_CHECKING:
    from tracker_jupyter.core.run import Run

# module that defines an EventFileWriter -> how to find the event file one instance writes
_WRITER_MODULES = {
    "tensorboardX.event_file_writer": lambda writer: writer._ev_writer._file_name,
    "tensorboard.summary.writer.event_file_writer": lambda writer: writer._file_name,
}
_TF_MODULE = "tensorflow.python.ops.gen_summary_ops"  # where every tf.summary write and writer goes through
_TENSOR_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8", 19: "<f2"}  # TensorFlow DataType enum values


def _text(value: Any) -> str:
    """A str from a str, bytes or a string tensor."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    return value.decode() if isinstance(value, bytes) else str(value)


def _from_float32(number: float) -> float:
    """The shortest decimal that is the same float32: 0.1 written as float32 reads 0.1, not 0.10000000149."""
    packed = struct.pack("<f", number)
    for digits in range(1, 10):
        candidate = float(f"{number:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return number  # inf and nan


def scalar_of(value: Any) -> float | None:
    """The number in one ``Summary.Value`` proto, or None when it is not a scalar (image, histogram...)."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return _from_float32(value.simple_value)
    if kind != "tensor" or value.metadata.plugin_data.plugin_name != "scalars":
        return None
    tensor = value.tensor
    for field in ("float_val", "double_val", "int_val", "int64_val", "half_val"):
        values: Any = getattr(tensor, field, ())
        if len(values) == 1:
            return _from_float32(values[0]) if field == "float_val" else float(values[0])
    dtype = _TENSOR_DTYPES.get(tensor.dtype)
    if tensor.tensor_content and dtype is not None:
        import numpy as np

        array = np.frombuffer(tensor.tensor_content, dtype=dtype)
        if array.size == 1:
            return _from_float32(float(array[0])) if dtype == "<f4" else float(array[0])
    return None


class _Mirror:
    """One run's view of the TensorBoard writers: pending row state and the event files seen."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.lock = threading.RLock()
        self.pending_tags: set[str] = set()
        self.pending_tb_step: int | None = None
        self.pending_run_step = -1
        # writer -> (its log directory, its event file or None when unknown)
        self.writers: weakref.WeakKeyDictionary[Any, tuple[str, str | None]] = weakref.WeakKeyDictionary()
        self.last_events: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # -> Event
        self.event_files: dict[str, str] = {}  # event file -> its log directory
        self.first_logdir: dict[str, str] = {}  # tag -> the log directory that wrote it first
        self.keys: dict[tuple[str, str], str] = {}  # (log directory, tag) -> history key
        # tf.summary writers created during the run: id of the writer's resource handle -> (handle, log directory)
        self.tf_writers: dict[int, tuple[weakref.ref[Any], str]] = {}
        self.tf_metadata: dict[bytes, bool] = {}  # serialized SummaryMetadata -> whether it is a scalar's
        self.warned_graph = False
        self.failed = False

    def seen(self, writer: Any, file_of: Any, event: Any) -> str:
        """Remember ``writer``'s event file, and ``event`` as the last one it was given; its log directory."""
        known = self.writers.get(writer)
        if known is None:
            logdir = os.path.abspath(writer.get_logdir())
            try:
                event_file: str | None = os.path.abspath(file_of(writer))
            except (AttributeError, TypeError):  # another writer version: copy the whole log directory
                event_file = None
            known = self.writers[writer] = (logdir, event_file)
            self.event_files[event_file or logdir] = logdir
        if known[1] is not None:
            self.last_events[writer] = event
        return known[0]

    def key(self, logdir: str, tag: str) -> str:
        """The history key of ``tag`` written to ``logdir``: the tag, unless another log directory wrote it first.

        Then (say ``runs/train`` and ``runs/val`` both write ``loss``) the later one is kept apart as
        ``<its log directory relative to the two's common parent>/<tag>``: ``val/loss``.
        """
        key = self.keys.get((logdir, tag))
        if key is None:
            first = self.first_logdir.setdefault(tag, logdir)
            if first == logdir:
                key = tag
            elif not logdir:  # a tf.summary writer created before init(): its log directory is unknown
                key = f"tf.summary/{tag}"
            else:
                apart = os.path.relpath(logdir, os.path.commonpath([first, logdir])) if first else "."
                if apart == ".":  # the first log directory is inside this one, or unknown
                    apart = os.path.basename(logdir)
                key = f"{Path(apart).as_posix()}/{tag}"
            self.keys[(logdir, tag)] = key
        return key

    def add(self, writer: Any, file_of: Any, event: Any) -> None:
        logdir = self.seen(writer, file_of, event)
        if not event.HasField("summary"):
            return
        step = int(event.step)
        for value in event.summary.value:
            number = scalar_of(value)
            if number is not None:
                self.add_scalar(logdir, value.tag, step, number)

    def add_scalar(self, logdir: str, tag: str, step: int, number: float) -> None:
        with self.lock:
            key = self.key(logdir, tag)
            if self.run.step != self.pending_run_step:
                self.pending_tags.clear()  # the row was committed by a log() of the user's own
            if self.pending_tags and (step != self.pending_tb_step or key in self.pending_tags):
                self.commit()
            self.run.log({key: number, "global_step": step}, commit=False)
            self.pending_tags.add(key)
            self.pending_tb_step = step
            self.pending_run_step = self.run.step

    def tf_writer_created(self, resource: Any, logdir: Any) -> None:
        """A ``tf.summary.create_file_writer(logdir)`` during the run: remember where it writes."""
        path = os.path.abspath(_text(logdir))
        self.tf_writers[id(resource)] = (weakref.ref(resource), path)
        self.event_files.setdefault(
            path, path
        )  # its file name is chosen in C++: copy the directory's new ones

    def add_tf(self, resource: Any, step: Any, tensor: Any, tag: Any, metadata: Any) -> None:
        """One ``tf.summary`` write (``tf.summary.scalar`` and the like end here) in eager mode."""
        if not hasattr(tensor, "numpy"):  # inside a tf.function: the value exists only when the graph runs
            if not self.warned_graph:
                self.warned_graph = True
                warnings.warn(
                    f"tracker: tf.summary calls inside a tf.function are kept in the event files but not "
                    f"mirrored into run {self.run.id}; call tf.summary outside the tf.function (or "
                    f"run.log()) for the values you want in the run's history",
                    UserWarning,
                    stacklevel=4,
                )
            return
        raw = metadata.numpy() if hasattr(metadata, "numpy") else metadata
        if raw not in self.tf_metadata:
            from tensorflow.core.framework.summary_pb2 import SummaryMetadata

            parsed = SummaryMetadata.FromString(raw or b"")
            self.tf_metadata[raw] = parsed.plugin_data.plugin_name == "scalars"
        array = tensor.numpy()
        if not self.tf_metadata[raw] or array.size != 1:
            return
        known = self.tf_writers.get(id(resource))
        logdir = known[1] if known is not None and known[0]() is resource else ""
        number = float(array.reshape(()))
        if array.dtype.name == "float32":
            number = _from_float32(number)
        self.add_scalar(logdir, _text(tag), int(step.numpy() if hasattr(step, "numpy") else step), number)

    def flush_tf_writers(self) -> None:
        if not self.tf_writers:
            return
        import sys

        ops = sys.modules.get(_TF_MODULE)
        for ref, _ in self.tf_writers.values():
            resource = ref()
            if ops is not None and resource is not None:
                try:
                    ops.flush_summary_writer(resource)
                except Exception:
                    pass  # a writer the user already closed: its file is complete

    def commit(self) -> None:
        with self.lock:
            if self.pending_tags and self.run.step == self.pending_run_step and self.run.state == "running":
                self.run.log({}, commit=True)
            self.pending_tags.clear()

    def copy_event_files(self) -> list[Path]:
        if not self.event_files:
            return []
        logdirs = sorted(set(self.event_files.values()))
        parents = [os.path.dirname(d) for d in logdirs]
        common = os.path.commonpath(parents)
        copied: list[Path] = []
        for source, logdir in sorted(self.event_files.items()):
            target_dir = Path("files", "tensorboard", os.path.relpath(logdir, common))
            sources = [source]
            if source == logdir:  # the writer's own file is unknown: those of its log directory written since
                since = self.run.start_time - 1  # the run started (file times have a coarser resolution)
                sources = [
                    path
                    for path in (os.path.join(logdir, n) for n in os.listdir(logdir) if ".tfevents." in n)
                    if os.path.getmtime(path) >= since
                ]
            for path in sources:
                if os.path.isfile(path):
                    stored = self.run.put_file((target_dir / os.path.basename(path)).as_posix(), Path(path))
                    if stored is not None:
                        copied.append(stored)
        return copied


_mirrors: list[_Mirror] = []  # live runs with sync_tensorboard; the newest receives the scalars
_patches: list[Patch] = []
_hooks: list[WhenImported] = []


def _current() -> _Mirror | None:
    return _mirrors[-1] if _mirrors else None


def _safely(mirror: _Mirror, action: Any, *args: Any) -> None:
    """The user's writer must keep working whatever happens here: warn once, stop mirroring."""
    if mirror.failed:
        return
    try:
        action(*args)
    except Exception as exc:
        mirror.failed = True
        warnings.warn(
            f"tracker: sync_tensorboard stopped mirroring scalars into run {mirror.run.id}: {exc!r}",
            RuntimeWarning,
            stacklevel=3,
        )


def _patch_module(module: Any) -> None:
    file_of = _WRITER_MODULES[module.__name__]
    writer_class = module.EventFileWriter

    def patched_add_event(original: Any) -> Any:
        def add_event(self: Any, event: Any) -> Any:
            result = original(self, event)
            mirror = _current()
            if mirror is not None:
                _safely(mirror, mirror.add, self, file_of, event)
            return result

        return add_event

    def patched_flush(original: Any) -> Any:
        def flush(self: Any) -> Any:
            mirror = _current()
            if mirror is not None:
                _safely(mirror, mirror.commit)
            return original(self)

        return flush

    _patches.append(Patch(writer_class, "add_event", patched_add_event))
    _patches.append(Patch(writer_class, "flush", patched_flush))


def _patch_tensorflow(ops: Any) -> None:
    """Patch the generated ops every ``tf.summary`` writer creation and write calls at run time."""

    def patched_create(original: Any) -> Any:
        def create_summary_file_writer(
            writer: Any,
            logdir: Any,
            max_queue: Any,
            flush_millis: Any,
            filename_suffix: Any,
            name: Any = None,
        ) -> Any:
            result = original(writer, logdir, max_queue, flush_millis, filename_suffix, name=name)
            mirror = _current()
            if mirror is not None:
                _safely(mirror, mirror.tf_writer_created, writer, logdir)
            return result

        return create_summary_file_writer

    def patched_write(original: Any) -> Any:
        def write_summary(
            writer: Any, step: Any, tensor: Any, tag: Any, summary_metadata: Any, name: Any = None
        ) -> Any:
            result = original(writer, step, tensor, tag, summary_metadata, name=name)
            mirror = _current()
            if mirror is not None:
                _safely(mirror, mirror.add_tf, writer, step, tensor, tag, summary_metadata)
            return result

        return write_summary

    def patched_flush(original: Any) -> Any:
        def flush_summary_writer(writer: Any, name: Any = None) -> Any:
            mirror = _current()
            if mirror is not None:
                _safely(mirror, mirror.commit)
            return original(writer, name=name)

        return flush_summary_writer

    _patches.append(Patch(ops, "create_summary_file_writer", patched_create))
    _patches.append(Patch(ops, "flush_summary_writer", patched_flush))
    _patches.append(Patch(ops, "write_summary", patched_write))


def start(run: Run) -> None:
    """Mirror TensorBoard scalars into ``run`` until it finishes (see the module docstring)."""
    if not any(is_installed(name) for name in (*_WRITER_MODULES, _TF_MODULE)):
        raise missing_extra("sync_tensorboard=True", "tensorboard", "tensorboardX")
    if not _mirrors:
        for name in _WRITER_MODULES:
            if is_installed(name):
                _hooks.append(WhenImported(name, _patch_module))
        if is_installed(_TF_MODULE):
            _hooks.append(WhenImported(_TF_MODULE, _patch_tensorflow))
    mirror = _Mirror(run)
    _mirrors.append(mirror)
    run.on_finish(lambda finished: _stop(mirror))


def _last_record(path: str) -> bytes | None:
    """The payload of the last complete record in a TFRecord file (length, crc, data, crc), if any."""
    last = None
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            offset = 0
            while offset + 12 <= size:
                (length,) = struct.unpack("<Q", file.read(8))
                if offset + 12 + length + 4 > size:
                    break  # a record still being written
                file.seek(4, os.SEEK_CUR)
                last = file.read(length)
                file.seek(4, os.SEEK_CUR)
                offset += 12 + length + 4
    except OSError:
        return None
    return last


def _drain(writer: Any, event_file: str | None, last_event: Any, timeout: float = 5.0) -> None:
    """Get what a writer holds onto disk, so the copied event file is complete.

    ``flush()`` is not enough for tensorboardX: its worker thread may still hold events taken off its queue,
    so this flushes until the last event the writer was given is the last record in its file.
    """
    deadline = time.monotonic() + timeout
    expected = last_event.SerializeToString() if last_event is not None else None
    while True:
        try:
            writer.flush()
        except Exception:
            return  # a writer the user already closed: its file is complete
        if (
            event_file is None
            or expected is None
            or getattr(writer, "_closed", False)
            or _last_record(event_file) == expected
            or time.monotonic() > deadline
        ):
            return
        time.sleep(0.005)


def _stop(mirror: _Mirror) -> None:
    _mirrors.remove(mirror)
    if not _mirrors:
        for hook in _hooks:
            hook.remove()
        _hooks.clear()
        for patch in reversed(_patches):
            patch.undo()
        _patches.clear()
    for writer, (_, event_file) in list(mirror.writers.items()):
        _drain(writer, event_file, mirror.last_events.get(writer))
    mirror.flush_tf_writers()
    if mirror.run.run_dir is not None:
        mirror.copy_event_files()
