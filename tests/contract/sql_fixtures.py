"""Isolated SQL databases for the contract suites: a fresh SQLite file or Postgres schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text

from wfadapters.sql.database import Database


@asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A new SQLite file with every table created."""
    db = Database.open(f"sqlite:///{tmp_path / f'wf-{uuid.uuid4().hex[:8]}.db'}")
    try:
        await db.create_tables()
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def postgres_database(dsn: str) -> AsyncIterator[Database]:
    """A new Postgres schema with every table created; dropped afterwards."""
    schema = f"wf_test_{uuid.uuid4().hex[:12]}"
    admin = Database.open(dsn)
    async with admin.transaction() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database.open(dsn, schema=schema)
    try:
        await db.create_tables()
        yield db
    finally:
        await db.dispose()
        async with admin.transaction() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
