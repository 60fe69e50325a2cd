"""The real sources of time and identifiers, for production composition roots."""

from wfadapters.system.clock import SystemClock
from wfadapters.system.ids import UuidIds

__all__ = ["SystemClock", "UuidIds"]
