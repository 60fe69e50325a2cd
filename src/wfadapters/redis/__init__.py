"""The Redis transport: Redis Streams, fenced leases and a due-time scheduler.

Used with the Postgres event store (``postgres://...?redis=redis://...``): Postgres is the
source of truth, Redis the fast transport.
"""

__all__: list[str] = []
