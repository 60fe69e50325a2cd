"""The in-memory backend: complete, in-process implementations of every storage port.

Production-grade for single-process deployments and the backend that unit and app tests
use: it passes the same contract suites as the database adapters. Nothing is persisted.
"""

from wfadapters.memory.clock import ManualClock
from wfadapters.memory.event_store import InMemoryEventStore
from wfadapters.memory.lock import InMemoryLock
from wfadapters.memory.scheduler import InMemoryScheduler
from wfadapters.memory.stream import InMemoryStream

__all__ = [
    "InMemoryEventStore",
    "InMemoryLock",
    "InMemoryScheduler",
    "InMemoryStream",
    "ManualClock",
]
