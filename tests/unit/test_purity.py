"""STYLE rule 4: wfdomain takes time, randomness, identifiers and environment as values.

import-linter (rule 1) forbids importing the ambient modules; this AST guard also catches
what import-linter cannot see, such as ``datetime.now()`` on an imported ``datetime``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WFDOMAIN = Path(__file__).resolve().parents[2] / "src" / "wfdomain"
BANNED_ATTRIBUTES = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("uuid", "uuid1"),
    ("uuid", "uuid4"),
    ("time", "time"),
}
BANNED_MODULES = {"os", "time", "random", "uuid", "secrets", "threading"}


def dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``, or None when the chain does not start at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def violations(source: str) -> list[str]:
    """Every ambient call, attribute or import in ``source``, as ``"line N: what"``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            parts = dotted(node)
            if parts and (tuple(parts[-2:]) in BANNED_ATTRIBUTES or parts[0] == "random"):
                found.append(f"line {node.lineno}: uses {'.'.join(parts)}")
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: imports {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] in BANNED_MODULES
            ]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] in BANNED_MODULES
        ):
            found.append(f"line {node.lineno}: imports from {node.module}")
    return found


def domain_files() -> list[Path]:
    return sorted(WFDOMAIN.rglob("*.py"))


def test_wfdomain_has_modules_to_check() -> None:
    assert domain_files(), f"no .py files under {WFDOMAIN}"


@pytest.mark.parametrize("path", domain_files(), ids=lambda p: str(p.relative_to(WFDOMAIN)))
def test_pure_core_makes_no_ambient_calls(path: Path) -> None:
    found = violations(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(WFDOMAIN.parent)}: " + "; ".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "stamp = time.time()",
        "ident = uuid.uuid4()",
        "x = random.choice([1, 2])",
        "import os",
        "import os.path",
        "from time import monotonic",
        "from secrets import token_hex",
        "import threading as t",
    ],
)
def test_guard_catches_ambient_access(source: str) -> None:
    assert violations(source)


def test_guard_allows_values_passed_in() -> None:
    source = (
        "from datetime import datetime, timedelta\n"
        "from .ids import uuid4_like\n"
        "def f(now: datetime) -> datetime:\n"
        "    return now + timedelta(seconds=1)\n"
    )
    assert violations(source) == []
