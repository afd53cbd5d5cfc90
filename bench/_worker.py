"""One measurement in a fresh process; ``run.py`` starts one of these per contender, kind and repeat.

    python _worker.py import MODULE OUT
    python _worker.py run CONTENDER STEPS OUT WORKDIR
    python _worker.py flat CONTENDER STEPS OUT WORKDIR

``import`` times the tracker's import alone; ``run`` times init, every log() call, finish and reads peak RSS;
``flat`` is ``run`` without the per-call timing array, so peak RSS at two step counts shows only the tracker's
own growth. The result is one JSON object written to OUT.
"""

# Only sys and time before the timed import: anything imported earlier would be free for the tracker.
import sys
import time


def _time_import(module: str) -> dict[str, object]:
    start = time.perf_counter_ns()
    try:
        __import__(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return {"status": "not installed"}
        return {"status": "import failed", "error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # any import error is a result to report, not a crash
        return {"status": "import failed", "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "import_s": (time.perf_counter_ns() - start) / 1e9}


def main(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "import":
        result = _time_import(argv[1])
        out = argv[2]
    else:
        name, steps, out, workdir = argv[1], int(argv[2]), argv[3], argv[4]
        # Imported only now so the import kind above runs with nothing but sys and time loaded.
        from _measure import measure

        try:
            result = measure(name, steps, workdir, per_call=kind == "run")
        except Exception as exc:  # reported in the table as this contender's failure
            import traceback

            traceback.print_exc()
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}

    import json

    with open(out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0 if result["status"] in ("ok", "not installed") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
