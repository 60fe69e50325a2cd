"""The Redis transport: Redis Streams, fenced leases and a due-time scheduler.

Used with the Postgres event store (``postgres://...?redis=redis://...``): Postgres is the
source of truth, Redis the fast transport. ``wfapps.relay`` joins the two (the outbox).
"""

from wfadapters.redis.client import RedisConnection
from wfadapters.redis.lock import RedisLock
from wfadapters.redis.scheduler import RedisScheduler
from wfadapters.redis.stream import EntryState, RedisStream, check_claim_idle

__all__ = [
    "EntryState",
    "RedisConnection",
    "RedisLock",
    "RedisScheduler",
    "RedisStream",
    "check_claim_idle",
]
