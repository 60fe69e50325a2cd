"""In-memory leases with fencing tokens."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from wfdomain.errors import LeaseLostError
from wfdomain.ports import Clock
from wfdomain.records import Lease

__all__ = ["InMemoryLock"]


class InMemoryLock:
    """A ``Lock`` in process memory.

    Fencing tokens count up per key from 1 and are never reset, even after a release, so a
    later grant always outranks an earlier one. A lease is held while ``clock.now()`` is
    before its ``expires_at``; from that instant it is lost to its owner (``extend`` raises
    ``LeaseLostError``, ``release`` returns False) whether or not anyone took the key since,
    and ``holder`` still returns it until the key is taken or released. A held key is
    refused to every caller, its own holder included. ``extend`` sets the expiry to
    ``now + ttl``.

    Args:
        clock: Source of time for grants and expiry.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # Serialises grants: the free-check and the grant of a key must be one step, or two
        # acquirers could both see the key free and both get a lease.
        self._lock = asyncio.Lock()
        self._leases: dict[str, Lease] = {}
        self._tokens: dict[str, int] = {}

    def _held(self, lease: Lease) -> bool:
        current = self._leases.get(lease.key)
        return (
            current is not None
            and current.token == lease.token
            and current.owner == lease.owner
            and self._clock.now() < current.expires_at
        )

    async def acquire(self, key: str, owner: str, *, ttl: timedelta) -> Lease | None:
        _check_ttl(ttl)
        async with self._lock:
            now = self._clock.now()
            current = self._leases.get(key)
            if current is not None and now < current.expires_at:
                return None
            token = self._tokens.get(key, 0) + 1
            self._tokens[key] = token
            lease = Lease(key=key, owner=owner, token=token, expires_at=now + ttl)
            self._leases[key] = lease
            return lease

    async def extend(self, lease: Lease, *, ttl: timedelta) -> Lease:
        _check_ttl(ttl)
        async with self._lock:
            if not self._held(lease):
                raise LeaseLostError(
                    f"lease {lease.key} token {lease.token} of {lease.owner} is no longer held",
                    details={"key": lease.key, "owner": lease.owner, "token": lease.token},
                )
            extended = replace(lease, expires_at=self._clock.now() + ttl)
            self._leases[lease.key] = extended
            return extended

    async def release(self, lease: Lease) -> bool:
        async with self._lock:
            if not self._held(lease):
                return False
            del self._leases[lease.key]
            return True

    async def holder(self, key: str) -> Lease | None:
        return self._leases.get(key)


def _check_ttl(ttl: timedelta) -> None:
    if ttl <= timedelta(0):
        raise ValueError(f"ttl must be positive, got {ttl}")
