"""Plain field paths (``input.key``, ``steps.charge.id``) answered without the evaluator.

Most expressions in definitions are such paths, and a JSONata evaluation (a frame, the
guardrail hooks, a copy of the program, the evaluator's walk) costs tens of µs each: on
an ``execute_run`` of a one-action run, a fifth of the engine's CPU. A path whose every
step is an object that has the field answers with that field's value, which is exactly
what JSONata answers there. Anything else (a missing field, an array met on the way,
where JSONata maps over it, or an array at the end, where it may flatten) is left to
the evaluator, so results and errors never differ (``tests/property``).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

__all__ = ["NOT_PLAIN", "field_path", "follow"]

NOT_PLAIN: Final = object()
"""``follow``'s answer when the evaluator must answer instead."""

_PATH: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
# Words JSONata reads as literals or operators, not as field names.
_KEYWORDS: Final = frozenset({"and", "or", "in", "true", "false", "null"})


@functools.lru_cache(maxsize=2048)
def field_path(source: str) -> tuple[str, ...] | None:
    """The fields of a plain path expression (normalised source), or None."""
    if not _PATH.fullmatch(source):
        return None
    fields = tuple(source.split("."))
    return None if _KEYWORDS.intersection(fields) else fields


def follow(document: Any, fields: tuple[str, ...]) -> Any:
    """The value at ``fields`` in ``document``, or ``NOT_PLAIN``."""
    value = document
    for name in fields:
        if type(value) is not dict:
            return NOT_PLAIN
        value = value.get(name, NOT_PLAIN)
        if value is NOT_PLAIN:
            return NOT_PLAIN
    return NOT_PLAIN if type(value) is list else value
