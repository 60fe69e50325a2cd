"""A clock that moves only when told to, for deterministic timers, leases and idle claims."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["ManualClock"]


def _require_aware(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"ManualClock needs a timezone-aware datetime, got {dt!r}")
    return dt


class ManualClock:
    """A ``Clock`` whose time is set explicitly.

    Args:
        start: The initial time; must be timezone-aware.
    """

    def __init__(self, start: datetime) -> None:
        self._now = _require_aware(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward by ``delta`` (never backwards) and return the new time."""
        if delta < timedelta(0):
            raise ValueError(f"ManualClock.advance needs a non-negative delta, got {delta}")
        self._now += delta
        return self._now

    def set(self, dt: datetime) -> datetime:
        """Jump to ``dt`` (in either direction, e.g. to model clock skew); return it."""
        self._now = _require_aware(dt)
        return self._now
