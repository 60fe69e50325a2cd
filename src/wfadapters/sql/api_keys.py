"""API keys in the ``wf_api_keys`` table (SQLite and Postgres)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from wfadapters.sql._errors import is_unique_violation
from wfadapters.sql.database import Database
from wfadapters.sql.schema import wf_api_keys
from wfadapters.sql.types import from_micros, micros
from wfdomain.api_keys import ApiKeyRecord

__all__ = ["SqlApiKeyStore"]

_k = wf_api_keys.c


def _record(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id, tenant=row.tenant, key_hash=row.key_hash, name=row.name,
        created_at=from_micros(row.created_at),
        revoked_at=None if row.revoked_at is None else from_micros(row.revoked_at),
    )


class SqlApiKeyStore:
    """An ``ApiKeyStore`` over one SQL database, with the semantics of the in-memory one.

    Args:
        db: The database (its schema migrated to a revision with ``wf_api_keys``).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_key(self, record: ApiKeyRecord) -> None:
        statement = insert(wf_api_keys).values(
            key_id=record.key_id, tenant=record.tenant, key_hash=record.key_hash,
            name=record.name, created_at=micros(record.created_at),
            revoked_at=None if record.revoked_at is None else micros(record.revoked_at),
        )
        try:
            async with self._db.transaction() as conn:
                await conn.execute(statement)
        except Exception as e:
            if is_unique_violation(e):
                raise ValueError(f"API key {record.key_id} already exists") from e
            raise

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        async with self._db.transaction(read_only=True) as conn:
            row = (await conn.execute(select(wf_api_keys).where(_k.key_id == key_id))).first()
        return None if row is None else _record(row)

    async def revoke_key(self, key_id: str, *, at: datetime) -> bool:
        statement = (update(wf_api_keys)
                     .where(_k.key_id == key_id, _k.revoked_at.is_(None))
                     .values(revoked_at=micros(at)))
        async with self._db.transaction() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def list_keys(self, *, tenant: str | None = None) -> list[ApiKeyRecord]:
        query = select(wf_api_keys).order_by(_k.created_at, _k.key_id)
        if tenant is not None:
            query = query.where(_k.tenant == tenant)
        async with self._db.transaction(read_only=True) as conn:
            return [_record(row) for row in await conn.execute(query)]
