"""SQL leases with fencing tokens: one row per key (SQLite and Postgres)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from wfadapters.sql.database import Database
from wfadapters.sql.queue_schema import wf_leases
from wfadapters.sql.types import from_micros, micros
from wfdomain.errors import LeaseLostError
from wfdomain.ports import Clock
from wfdomain.records import Lease

__all__ = ["SqlLock"]

_lease = wf_leases.c


def _check_ttl(ttl: timedelta) -> None:
    if ttl <= timedelta(0):
        raise ValueError(f"ttl must be positive, got {ttl}")


class SqlLock:
    """A ``Lock`` in the ``wf_leases`` table, with the semantics of ``InMemoryLock``.

    Each key has one row holding its holder, its expiry and the token of its last grant.
    Tokens count up per key from 1 and are never reset: a release only clears the holder
    and expiry, so the next grant still gets a larger token. A lease is held while
    ``clock.now()`` is before its expiry; a held key is refused to every caller, its own
    holder included. ``extend`` sets the expiry to ``now + ttl``. ``holder`` reads the row:
    an expired lease keeps its owner and expiry until the next grant or its release.

    Postgres advisory locks are not used: they belong to a database session, so they can
    neither expire after a TTL while the holder's connection stays open, nor be given to
    another worker after a crash until its connection drops, nor carry a fencing token. A
    lease row expresses all three and behaves the same on SQLite.

    Args:
        db: The database (SQLite file or Postgres).
        clock: Source of time for grants and expiry (shared by every worker's leases).
    """

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def acquire(self, key: str, owner: str, *, ttl: timedelta) -> Lease | None:
        _check_ttl(ttl)
        now = self._clock.now()
        expires_at = now + ttl
        dialect_insert = sqlite.insert if self._db.is_sqlite else postgresql.insert
        grant = dialect_insert(wf_leases).values(
            key=key, owner=owner, token=1, expires_at=micros(expires_at)
        )
        # One statement decides and grants: the upsert locks the key's row (Postgres) or
        # runs under the BEGIN IMMEDIATE write lock (SQLite), so two acquirers can never
        # both find the key free. A held key matches no row and RETURNING yields nothing.
        upsert = grant.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "owner": grant.excluded.owner,
                "token": _lease.token + 1,
                "expires_at": grant.excluded.expires_at,
            },
            where=or_(_lease.owner.is_(None), _lease.expires_at <= micros(now)),
        ).returning(_lease.token)
        async with self._db.transaction() as conn:
            token = (await conn.execute(upsert)).scalar_one_or_none()
        if token is None:
            return None
        return Lease(key=key, owner=owner, token=int(token), expires_at=expires_at)

    def _held_by(self, lease: Lease) -> list[ColumnElement[bool]]:
        return [
            _lease.key == lease.key,
            _lease.owner == lease.owner,
            _lease.token == lease.token,
            _lease.expires_at > micros(self._clock.now()),
        ]

    async def extend(self, lease: Lease, *, ttl: timedelta) -> Lease:
        _check_ttl(ttl)
        expires_at = self._clock.now() + ttl
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(wf_leases).where(*self._held_by(lease)).values(expires_at=micros(expires_at))
            )
        if result.rowcount != 1:
            raise LeaseLostError(
                f"lease {lease.key} token {lease.token} of {lease.owner} is no longer held",
                details={"key": lease.key, "owner": lease.owner, "token": lease.token},
            )
        return replace(lease, expires_at=expires_at)

    async def release(self, lease: Lease) -> bool:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(wf_leases).where(*self._held_by(lease)).values(owner=None, expires_at=None)
            )
        return result.rowcount == 1

    async def holder(self, key: str) -> Lease | None:
        query = select(_lease.owner, _lease.token, _lease.expires_at).where(
            _lease.key == key, _lease.owner.is_not(None))
        async with self._db.transaction(read_only=True) as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            return None
        return Lease(key=key, owner=row.owner, token=int(row.token),
                     expires_at=from_micros(int(row.expires_at)))
