"""Side-by-side benchmark: tracker_jupyter against wandb, trackio, MLflow and a naive json-lines writer.

Every figure comes from a fresh child process (``_worker.py``), one per contender, kind of measurement and
repeat, so no contender inherits another's imports, threads or heap. Prints a Markdown table, ratios against
ours and the DESIGN.md targets, and writes them to ``bench/results/latest.md`` and ``latest.json``.

    python bench/run.py [--steps N] [--only ours,wandb] [--repeat K] [--install]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

# Run as a script, so bench/ is sys.path[0] and the contenders package resolves.
from contenders import CONTENDERS

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
WORKER = BENCH / "_worker.py"

BASELINE = "ours"
FALLBACK_BASELINE = "naive"
# DESIGN.md section 6.
TARGET_IMPORT_S = 0.15
TARGET_INIT_S = 0.030
TARGET_LOG_MEDIAN_US = 2.0
TARGET_FLAT_MIB = 30.0
FLAT_FACTOR = 10


@dataclass
class Outcome:
    """Median figures of one contender and kind over its repeats, or why there are none."""

    status: str
    figures: dict[str, float] = field(default_factory=dict)
    version: str = ""
    error: str = ""
    raw: list[dict[str, object]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _pinned_peers(names: list[str]) -> list[str] | None:
    """The requirements of pyproject's ``bench`` extra that the contenders in ``names`` import.

    Read from the installed tracker-jupyter's metadata (so ``pip install -e .`` comes first), which keeps
    pyproject.toml the one place the peers' versions are pinned. None if tracker-jupyter is not installed.
    """
    from importlib.metadata import PackageNotFoundError, requires

    try:
        declared = requires("tracker-jupyter") or []
    except PackageNotFoundError:
        return None
    wanted = {_canonical(importlib.import_module(CONTENDERS[n]).DIST) for n in names}
    pins = []
    for entry in declared:  # e.g. 'wandb==0.31.0; extra == "bench"'
        requirement, _, marker = (part.strip() for part in entry.partition(";"))
        dist = re.split(r"[\s<>=!~\[(]", requirement, maxsplit=1)[0]
        if marker.replace("'", '"').split() == ["extra", "==", '"bench"'] and _canonical(dist) in wanted:
            pins.append(requirement)
    return pins


def _install_peers(names: list[str]) -> bool:
    pins = _pinned_peers(names)
    if pins is None:
        print(
            "bench: --install reads the pins from tracker-jupyter's metadata: pip install -e . first",
            file=sys.stderr,
        )
        return False
    if not pins:
        return True
    print(f"bench: installing {' '.join(pins)}", file=sys.stderr, flush=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install", *pins]
    return subprocess.run(pip).returncode == 0


def _child_env(contender: ModuleType, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The checkout first, so ours is measured from the source tree even before `pip install -e .`.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(contender.environ(workdir))
    return env


def _spawn(name: str, kind: str, args: list[str], timeout: float, log_path: Path) -> dict[str, object]:
    """Run one worker in its own session and workdir; return the JSON it wrote, or a failure record."""
    contender = importlib.import_module(CONTENDERS[name])
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-{kind}-"))
    out = workdir / "result.json"
    argv = [sys.executable, str(WORKER), kind, *args, str(out)]
    if kind != "import":
        argv.append(str(workdir))
    try:
        with log_path.open("w", encoding="utf-8") as log:
            # cwd=workdir: trackers that default to relative paths (MLflow's ./mlruns) write there.
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=_child_env(contender, workdir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return {"status": "timed out", "error": f"over {timeout:.0f} s"}
        if not out.exists():
            return {"status": "failed", "error": f"exit code {proc.returncode}, see {log_path}"}
        return json.loads(out.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _repeat(name: str, kind: str, args: list[str], repeat: int, timeout: float) -> Outcome:
    raw: list[dict[str, object]] = []
    label = f"{name}-{kind}" + (f"-{args[-1]}" if kind != "import" else "")
    for i in range(repeat):
        started = time.perf_counter()
        result = _spawn(name, kind, args, timeout, RESULTS / "logs" / f"{label}-{i}.log")
        print(
            f"  {label:20} {i + 1}/{repeat}: {result['status']} ({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        raw.append(result)
        if result["status"] != "ok":
            return Outcome(status=str(result["status"]), error=str(result.get("error", "")), raw=raw)
    numeric = [k for k, v in raw[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    figures = {k: statistics.median(float(r[k]) for r in raw) for k in numeric}  # type: ignore[arg-type]
    return Outcome(status="ok", figures=figures, version=str(raw[0].get("version", "")), raw=raw)


# ---- rendering -------------------------------------------------------------------------------------------

COLUMNS: list[tuple[str, str, str, float, int]] = [
    # header, (outcome kind, figure), scale to the unit shown, decimals
    ("import (s)", "import", "import_s", 1, 3),
    ("init (ms)", "run", "init_s", 1e3, 1),
    ("log() median (µs)", "run", "log_median_us", 1, 2),
    ("log() p99 (µs)", "run", "log_p99_us", 1, 2),
    ("log() mean (µs)", "run", "log_mean_us", 1, 2),
    ("finish (ms)", "run", "finish_s", 1e3, 1),
    ("log+finish (s)", "run", "log_finish_s", 1, 3),
]
RATIO_COLUMNS = [c for c in COLUMNS if c[2] != "log_p99_us"]


def _rss(run: Outcome) -> float:
    # The sum of two peaks is an upper bound on what the contender held at once.
    return run.figures["rss_self_mib"] + run.figures["rss_helpers_mib"]


def _rss_cell(run: Outcome) -> str:
    self_mib, helpers = run.figures["rss_self_mib"], run.figures["rss_helpers_mib"]
    return f"{self_mib:.0f}" + (f" + {helpers:.0f} helper" if helpers >= 1 else "")


def _value(rows: dict[str, dict[str, Outcome]], name: str, kind: str, key: str) -> float | None:
    outcome = rows[name].get(kind)
    return outcome.figures.get(key) if outcome is not None and outcome.ok else None


def _status(row: dict[str, Outcome]) -> str:
    for outcome in row.values():
        if not outcome.ok:
            return outcome.status + (f": {outcome.error}" if outcome.error else "")
    return ""


def render_main(rows: dict[str, dict[str, Outcome]]) -> list[str]:
    header = ["contender", "version", *(c[0] for c in COLUMNS), "peak RSS (MiB)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [name, row["run"].version if "run" in row else ""]
        status = _status(row)
        for _, kind, key, scale, decimals in COLUMNS:
            value = _value(rows, name, kind, key)
            if name == "naive" and key == "import_s":
                value = None  # importing json says nothing about a tracker
            cells.append("—" if value is None else f"{value * scale:.{decimals}f}")
        cells.append(_rss_cell(row["run"]) if "run" in row and row["run"].ok else "—")
        if status:
            cells[1] = status
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_ratios(rows: dict[str, dict[str, Outcome]], baseline: str) -> list[str]:
    header = ["contender", *(c[0].split(" (")[0] for c in RATIO_COLUMNS), "peak RSS"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        if _status(row):
            continue
        cells = [name]
        for _, kind, key, _scale, _decimals in RATIO_COLUMNS:
            mine, base = _value(rows, name, kind, key), _value(rows, baseline, kind, key)
            skip = "naive" in (name, baseline) and key == "import_s"
            cells.append("—" if skip or mine is None or not base else f"{mine / base:.3g}×")
        cells.append(f"{_rss(row['run']) / _rss(rows[baseline]['run']):.3g}×")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_targets(
    rows: dict[str, dict[str, Outcome]], flat: dict[int, Outcome], args: argparse.Namespace
) -> list[str]:
    def ours(kind: str, key: str) -> float | None:
        return _value(rows, BASELINE, kind, key) if BASELINE in rows else None

    imp, init, median = ours("import", "import_s"), ours("run", "init_s"), ours("run", "log_median_us")
    mine = ours("run", "log_finish_s")
    naive = _value(rows, "naive", "run", "log_finish_s") if "naive" in rows else None
    growth = _growth(flat) if args.flat_contender == BASELINE else None
    small, big = args.steps, args.steps * FLAT_FACTOR
    checks: list[tuple[str, str | None, bool]] = [
        (f"import ≤ {TARGET_IMPORT_S} s", _fmt(imp, "{:.3f} s"), _le(imp, TARGET_IMPORT_S)),
        (f"init() ≤ {TARGET_INIT_S * 1e3:.0f} ms", _fmt(init, "{:.1f} ms", 1e3), _le(init, TARGET_INIT_S)),
        (
            f"log() median ≤ {TARGET_LOG_MEDIAN_US} µs",
            _fmt(median, "{:.2f} µs"),
            _le(median, TARGET_LOG_MEDIAN_US),
        ),
        (
            "log+finish ≤ naive writer",
            None if mine is None or naive is None else f"{mine:.3f} s vs {naive:.3f} s",
            _le(mine, naive),
        ),
        (
            f"peak RSS growth {small:,} → {big:,} steps ≤ {TARGET_FLAT_MIB:.0f} MiB",
            _fmt(growth, "{:+.1f} MiB"),
            _le(growth, TARGET_FLAT_MIB),
        ),
    ]
    lines = ["| target | measured | |", "|---|---|---|"]
    for target, measured, met in checks:
        verdict = "not measured" if measured is None else "met" if met else "**not met**"
        lines.append(f"| {target} | {measured or '—'} | {verdict} |")
    return lines


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str | None:
    return None if value is None else spec.format(value * scale)


def _le(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value <= limit


def _growth(flat: dict[int, Outcome]) -> float | None:
    if len(flat) != 2 or not all(o.ok for o in flat.values()):
        return None
    (_, lo), (_, hi) = sorted(flat.items())
    return hi.figures["rss_self_mib"] - lo.figures["rss_self_mib"]


def render_flat(flat: dict[int, Outcome], who: str) -> list[str]:
    lines = [f"| {who} steps | peak RSS (MiB) | log() mean (µs) | log+finish (s) |", "|---|---|---|---|"]
    for steps, o in sorted(flat.items()):
        if o.ok:
            f = o.figures
            lines.append(f"| {steps:,} | {_rss_cell(o)} | {f['log_mean_us']:.2f} | {f['log_finish_s']:.3f} |")
        else:
            lines.append(f"| {steps:,} | {o.status} | — | — |")
    return lines


def render(
    rows: dict[str, dict[str, Outcome]], flat: dict[int, Outcome], args: argparse.Namespace, wall_s: float
) -> str:
    ours_ok = BASELINE in rows and not _status(rows[BASELINE])
    baseline = BASELINE if ours_ok else FALLBACK_BASELINE
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"## Benchmark: {args.steps:,} steps × 3 scalars, median of {args.repeat} fresh process(es)",
        "",
        (
            f"{when}; Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} CPUs, load average {args.load_before:.2f} before the run (other work on the "
            f"machine shows up as noise); whole run {wall_s:.0f} s."
        ),
        "",
        *render_main(rows),
        "",
    ]
    if baseline in rows and not _status(rows[baseline]):
        note = "" if baseline == BASELINE else f" (ours not measured in this run, so against `{baseline}`)"
        out += [f"### Ratios against {baseline}{note}: above 1× is slower or bigger", ""]
        out += [*render_ratios(rows, baseline), ""]
    if flat:
        out += ["### Memory flatness: peak RSS without the per-call timing array", ""]
        out += [*render_flat(flat, args.flat_contender), ""]
    out += ["### Targets (DESIGN.md §6)", "", *render_targets(rows, flat, args), ""]
    floors = [r["run"].figures.get("floor_median_us") for r in rows.values() if "run" in r and r["run"].ok]
    if floors:
        out.append(
            f"Per-call figures include the timer and a Python call: a no-op log() measures "
            f"{statistics.median(f for f in floors if f is not None) * 1e3:.0f} ns median the same way."
        )
    children = [
        n for n, r in rows.items() if "run" in r and r["run"].ok and r["run"].figures["rss_helpers_mib"] >= 1
    ]
    if children:
        out.append(
            "`+ N helper`: peak RSS (VmHWM) of the processes the tracker started, read after finish() "
            f"({', '.join(children)}); ratios use the sum."
        )
    return "\n".join(out) + "\n"


def _as_json(rows: dict[str, dict[str, Outcome]], flat: dict[int, Outcome]) -> dict[str, object]:
    def dump(o: Outcome) -> dict[str, object]:
        return {
            "status": o.status,
            "version": o.version,
            "error": o.error,
            "figures": o.figures,
            "raw": o.raw,
        }

    return {
        "contenders": {name: {kind: dump(o) for kind, o in row.items()} for name, row in rows.items()},
        "flat": {str(steps): dump(o) for steps, o in flat.items()},
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100_000, help="log() calls per run (default 100000)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated contenders to run (default all: {','.join(CONTENDERS)})"
    )
    parser.add_argument("--repeat", type=int, default=1, help="fresh processes per measurement; median taken")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before one process is killed")
    parser.add_argument(
        "--flat-contender",
        default=BASELINE,
        help=f"whose peak RSS is compared at --steps and {FLAT_FACTOR}× --steps; 'none' skips it",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="first pip-install the peers among the chosen contenders, at the pins of pyproject's bench extra",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(CONTENDERS)
    unknown = sorted(set(names) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    if args.steps < 1 or args.repeat < 1:
        parser.error("--steps and --repeat must be at least 1")
    args.names = [n for n in CONTENDERS if n in names]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.install and not _install_peers(args.names):
        return 1
    args.load_before = os.getloadavg()[0]
    started = time.perf_counter()
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, Outcome]] = {}
    for name in args.names:
        module = importlib.import_module(CONTENDERS[name]).MODULE
        # Untimed first import: writes .pyc files and warms the page cache so no contender pays for that.
        _spawn(name, "import", [module], args.timeout, RESULTS / "logs" / f"{name}-warmup.log")
        rows[name] = {"import": _repeat(name, "import", [module], args.repeat, args.timeout)}
        if rows[name]["import"].ok:
            rows[name]["run"] = _repeat(name, "run", [name, str(args.steps)], args.repeat, args.timeout)

    flat: dict[int, Outcome] = {}
    who = args.flat_contender
    if who in rows and not _status(rows[who]):
        for steps in (args.steps, args.steps * FLAT_FACTOR):
            flat[steps] = _repeat(who, "flat", [who, str(steps)], args.repeat, args.timeout)

    report = render(rows, flat, args, time.perf_counter() - started)
    print(report)
    (RESULTS / "latest.md").write_text(report, encoding="utf-8")
    payload = {
        "steps": args.steps,
        "repeat": args.repeat,
        "flat_contender": who,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": args.load_before,
        "wall_s": time.perf_counter() - started,
        **_as_json(rows, flat),
    }
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
