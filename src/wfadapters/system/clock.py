"""The wall clock."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["SystemClock"]


class SystemClock:
    """A ``Clock`` reading the operating system's wall time, timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)
