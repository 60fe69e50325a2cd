"""The correlation resolver: which runs an external event is for.

An explicit correlation key wins. Otherwise the first derivation path configured for the
event's name (then for ``*``) that finds a string or number in the payload gives the key.
The event id is never used as a fallback: an event that resolves nothing routes nothing
and is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CorrelationResolver"]


def _lookup(payload: Any, dotted: str) -> Any:
    value = payload
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


class CorrelationResolver:
    """Derives correlation keys from configured payload paths, per event name."""

    def __init__(self, paths: Mapping[str, Sequence[str]] | None = None) -> None:
        """Create a resolver.

        Args:
            paths: Dotted payload paths per event name (``{"payment.received":
                ["order.id"], "*": ["correlation_id"]}``); ``*`` applies to every name.
        """
        self._paths = {name: tuple(p) for name, p in (paths or {}).items()}

    def resolve(self, event_name: str, payload: Any, explicit: str | None = None) -> str | None:
        """Return the event's correlation key, or None when nothing resolves it."""
        if explicit is not None and explicit != "":
            return explicit
        for path in (*self._paths.get(event_name, ()), *self._paths.get("*", ())):
            value = _lookup(payload, path)
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, (str, int, float)):
                return str(value)
        return None
