"""The shape of the package: modules readable in one sitting, short functions, no import of the package root
from inside it. The layers themselves are import-linter's contracts in pyproject.toml (``make lint``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tracker_jupyter"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MODULES = sorted(PACKAGE.rglob("*.py"))


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_the_package_has_its_modules() -> None:
    names = {_name(p) for p in MODULES}
    assert {
        "tracker_jupyter/core/run.py",
        "tracker_jupyter/store/writer.py",
        "tracker_jupyter/_init.py",
    } <= names


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_are_at_most_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines; split it by concern"


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's signature and code: its docstring (the public API's reference) not counted."""
    lines = (function.end_lineno or function.lineno) - function.lineno + 1
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        docstring = body[0]
        lines -= (docstring.end_lineno or docstring.lineno) - docstring.lineno + 1
    return lines


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_functions_are_at_most_80_lines(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{f.name} ({_code_lines(f)} lines, line {f.lineno})"
        for f in _functions(tree)
        if _code_lines(f) > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_name(path)}: {', '.join(long)}"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_imports_the_package_root(path: Path) -> None:
    """The root is the public surface on top of everything: importing it from below would be a cycle."""
    if path == PACKAGE / "__init__.py":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name == "tracker_jupyter"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "tracker_jupyter":
            modules = {p.stem for p in PACKAGE.iterdir()} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
            bad += [f"tracker_jupyter.{a.name}" for a in node.names if a.name not in modules]
    assert not bad, f"{_name(path)} imports {bad} from the package root"


def test_the_import_graph_sees_lazy_imports_and_core_reaches_nothing_above() -> None:
    """The graph import-linter checks holds the imports inside functions too, so lazy imports obey the layers."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("tracker_jupyter")
    # the real graph holds a function-level import, so lazy imports are part of what is checked
    assert "tracker_jupyter.display.widget" in graph.find_modules_directly_imported_by(
        "tracker_jupyter.ipython.attach"
    )
    assert not graph.find_modules_directly_imported_by("tracker_jupyter.core.run") & {
        m for m in graph.modules if m.startswith(("tracker_jupyter.display", "tracker_jupyter.store"))
    }
