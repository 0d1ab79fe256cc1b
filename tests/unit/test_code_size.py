"""Size limits on the code: modules stay under 600 lines, functions under 80.

Long modules and functions are where repeats and mixed concerns hide; a check that anyone
can run (and CI runs with the unit tests) keeps a clean-up from quietly coming undone.
Functions are measured with `ast` from `def` to their last line, methods and nested
functions included; a nested function counts inside its parent as well.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_LIMITED = ("shared", "infra", "functions", "bench", "tests")  # held to MAX_MODULE_LINES
FUNCTION_LIMITED = MODULE_LIMITED  # whose functions are held to MAX_FUNCTION_LINES
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def python_files(top: str) -> Iterator[Path]:
    """The Python sources under ROOT/top, skipping caches and hidden folders (build output)."""
    for path in sorted((ROOT / top).rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if not any(p == "__pycache__" or p.startswith(".") for p in parts):
            yield path


def long_functions(source: str, limit: int) -> Iterator[tuple[str, int, int]]:
    """(qualified name, first line, length) of every function longer than `limit` lines."""
    tree = ast.parse(source)

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}."
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                if length > limit:
                    yield name[:-1], child.lineno, length
            yield from visit(child, name)

    return visit(tree, "")


def test_modules_stay_under_the_limit() -> None:
    offenders = []
    for top in MODULE_LIMITED:
        for path in python_files(top):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_MODULE_LINES:
                offenders.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


def test_functions_stay_under_the_limit() -> None:
    offenders = []
    for top in FUNCTION_LIMITED:
        for path in python_files(top):
            found = long_functions(path.read_text(encoding="utf-8"), MAX_FUNCTION_LINES)
            offenders += [
                f"{path.relative_to(ROOT)}:{line} {name}: {length} lines"
                for name, line, length in found
            ]
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_the_measure_counts_methods_and_nested_functions() -> None:
    """The check itself: a long method and a long nested function are both found."""
    source = textwrap.dedent(
        """
        class A:
            def long(self):
                a = 1
                b = 2
                return a + b

            def short(self):
                return 1

        async def outer():
            def inner():
                a = 1
                b = 2
                return a + b

            return inner
        """
    )
    found = {name: length for name, _, length in long_functions(source, 3)}
    assert found == {"A.long": 4, "outer": 7, "outer.inner": 4}, found
