"""The local run store: the on-disk format, the background writer, and the readers.

Layout under the store root (``init(dir=...)``, default ``./tracker``)::

    <root>/<project>/<run_id>/
        run.json        metadata: names, tags, state, exit code, git, lineage (replaced atomically)
        config.json     the run's config (replaced atomically)
        summary.json    the run's summary (replaced atomically)
        history.jsonl   append-only; each line a committed row (a JSON object with ``_step`` and
                        ``_timestamp``) or a block of rows (a JSON array of them) written at once
        history.rewound-N.jsonl   rows set aside by ``resume_from`` (kept, never read as history)
        system.jsonl    system metrics samples, a stream beside the history (``console``)
        lock            held (``flock``) by the process that has the run open
        files/          files saved with ``run.save()``, and ``output.log``: what the run printed
        code/           the program, git diff, notebook copies (``save_code``)
    <root>/<project>/.artifacts/, <root>/.artifacts/   artifact versions and their files (``artifacts``)

Why it is crash-safe: rows only ever get appended, a reader ignores a torn last line, and every other file
is written to a temporary name and renamed over the old one. The writer thread appends at least every
``flush_interval`` seconds, so after a ``kill -9`` everything older than that is readable. Whether a run is
still alive is not a flag the dead process would have had to clear: it is the ``flock`` on ``lock``, which
the kernel drops when the process dies, so an unfinished run with a free lock reads as ``crashed``.
"""

from __future__ import annotations

from tracker_jupyter.store.console import OUTPUT_LOG, SYSTEM, tail_lines
from tracker_jupyter.store.console import last_sample as last_system_sample
from tracker_jupyter.store.files import (
    atomic_write,
    copy_matching,
    dumps,
    put_file,
    read_bytes,
    read_json,
    write_json_atomic,
)
from tracker_jupyter.store.history import (
    BLOCK_ROWS,
    check_step,
    content_size,
    count_rows,
    encode_rows,
    history_until,
    iter_history,
    iter_lines,
    last_row,
    mend_torn_tail,
    rewind_history,
    rows_in_line,
    summarize,
)
from tracker_jupyter.store.null import NullSink
from tracker_jupyter.store.records import RecordFields, RunRecord, find_run, list_runs, projects
from tracker_jupyter.store.rundir import (
    CONFIG,
    FINAL_STATES,
    HISTORY,
    LOCK,
    META,
    SUMMARY,
    RunLock,
    check_name,
    is_locked,
    run_path,
    run_state,
)
from tracker_jupyter.store.writer import RunWriter

__all__ = [
    "BLOCK_ROWS",
    "CONFIG",
    "FINAL_STATES",
    "HISTORY",
    "LOCK",
    "META",
    "OUTPUT_LOG",
    "SUMMARY",
    "SYSTEM",
    "NullSink",
    "RecordFields",
    "RunLock",
    "RunRecord",
    "RunWriter",
    "atomic_write",
    "check_name",
    "check_step",
    "content_size",
    "copy_matching",
    "count_rows",
    "dumps",
    "encode_rows",
    "find_run",
    "history_until",
    "is_locked",
    "iter_history",
    "iter_lines",
    "last_row",
    "last_system_sample",
    "list_runs",
    "mend_torn_tail",
    "projects",
    "put_file",
    "read_bytes",
    "read_json",
    "rewind_history",
    "rows_in_line",
    "run_path",
    "run_state",
    "summarize",
    "tail_lines",
    "write_json_atomic",
]
