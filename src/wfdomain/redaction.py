"""Redaction of fields a definition marks secret, for every view of a run.

The stored history keeps real values (replay needs them); views show ``"***"`` instead.
Paths are dotted from a root name: ``input.card.number``, ``state.api_token``. Views mask
by value, not by path: a secret copied into an action input or an output under another
name is masked there too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "mask", "secret_values"]

REDACTED = "***"


def secret_values(document: Any, root: str, secret_paths: Iterable[str]) -> frozenset[str]:
    """Return the string values found at the secret paths of ``document``.

    Views mask these values wherever they reappear (an action input built from a secret
    input field carries the secret too, under another name).
    """
    prefix = root + "."
    found: set[str] = set()
    for path in secret_paths:
        if not path.startswith(prefix):
            continue
        node = document
        for part in path[len(prefix):].split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str) and node:
            found.add(node)
    return frozenset(found)


def mask(value: Any, secrets: frozenset[str]) -> Any:
    """Return ``value`` with every string equal to a secret replaced by ``***``."""
    if not secrets:
        return value
    if isinstance(value, str):
        return REDACTED if value in secrets else value
    if isinstance(value, dict):
        return {k: mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, secrets) for v in value]
    return value
