"""Redis leases with fencing tokens: one hash per key, changed only by Lua scripts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from wfadapters.redis import _scripts
from wfadapters.redis._errors import translated
from wfadapters.redis.client import RedisConnection
from wfdomain.errors import LeaseLostError
from wfdomain.ports import Clock
from wfdomain.records import Lease

__all__ = ["RedisLock"]

# Released or expired lease hashes linger this long past their expiry so the next grant
# still sees the last token; after that the time-based token floor takes over.
_KEEP_MS = 10 * 60 * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _check_ttl(ttl: timedelta) -> None:
    if ttl <= timedelta(0):
        raise ValueError(f"ttl must be positive, got {ttl}")


class RedisLock:
    """A ``Lock`` on Redis hashes, with the semantics of ``InMemoryLock``.

    Each key is a hash ``<prefix>:lock:<key>`` holding owner, token and expiry (on
    ``clock``). Acquire, extend and release are Lua scripts: a grant checks and takes the
    key in one step; extend and release compare owner and token first, so a former
    holder never touches the lease of whoever took the key after it.

    Fencing tokens are ``max(last token + 1, Redis server time in microseconds)``. They
    increase with every grant of a key, also after the hash is gone (expired, or lost in
    a Redis restart): the event store, which remembers the newest token per run, then
    still refuses a writer whose lease was taken over.

    ``holder`` reads the hash in one ``HGETALL``. An expired lease stays readable until the
    key is taken or released, or until Redis drops the hash ten minutes (server time)
    past the lease's ttl.

    Args:
        conn: The Redis connection and key prefix.
        clock: Source of time for grants and expiry (shared by every worker's leases).
    """

    def __init__(self, conn: RedisConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock
        r = conn.client
        self._acquire = r.register_script(_scripts.ACQUIRE)
        self._extend = r.register_script(_scripts.EXTEND)
        self._release = r.register_script(_scripts.RELEASE)

    def _key(self, key: str) -> str:
        return self._conn.key("lock", key)

    @staticmethod
    def _ms(ttl: timedelta) -> int:
        return int(ttl.total_seconds() * 1000)

    async def acquire(self, key: str, owner: str, *, ttl: timedelta) -> Lease | None:
        _check_ttl(ttl)
        now = self._clock.now()
        expires_at = now + ttl
        async with translated(self._conn.address):
            token = await self._acquire(
                keys=[self._key(key)],
                args=[owner, _us(now), _us(expires_at), self._ms(ttl) + _KEEP_MS],
            )
        if token is None:
            return None
        return Lease(key=key, owner=owner, token=int(token), expires_at=expires_at)

    async def extend(self, lease: Lease, *, ttl: timedelta) -> Lease:
        _check_ttl(ttl)
        now = self._clock.now()
        expires_at = now + ttl
        async with translated(self._conn.address):
            ok = await self._extend(
                keys=[self._key(lease.key)],
                args=[lease.owner, str(lease.token), _us(now), _us(expires_at),
                      self._ms(ttl) + _KEEP_MS],
            )
        if not ok:
            raise LeaseLostError(
                f"lease {lease.key} token {lease.token} of {lease.owner} is no longer held",
                details={"key": lease.key, "owner": lease.owner, "token": lease.token},
            )
        return replace(lease, expires_at=expires_at)

    async def release(self, lease: Lease) -> bool:
        async with translated(self._conn.address):
            ok = await self._release(keys=[self._key(lease.key)],
                                     args=[lease.owner, str(lease.token),
                                           _us(self._clock.now())])
        return bool(ok)

    async def holder(self, key: str) -> Lease | None:
        async with translated(self._conn.address):
            raw = await self._conn.client.hgetall(self._key(key))
        # The client decodes responses, so fields and values are already str.
        fields = {str(k): str(v) for k, v in raw.items()}
        owner = fields.get("owner")
        if not owner:  # no hash (never granted, or forgotten) or released (owner emptied)
            return None
        return Lease(key=key, owner=owner, token=int(fields["token"]),
                     expires_at=_EPOCH + timedelta(microseconds=int(fields["exp"])))


def _us(dt: datetime) -> int:
    # Exact microseconds since the epoch (a float timestamp could round across expiry).
    return (dt - _EPOCH) // timedelta(microseconds=1)
