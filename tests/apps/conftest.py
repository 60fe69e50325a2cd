"""Real backends for the app tests: a SQLite file, or a fresh Postgres database."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from wfadapters.sql.database import Database
from wfadapters.sql.migrate import upgrade

VAULT = Path(__file__).resolve().parent / "vault"

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end in a thread of its own (pytest may hold a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def migrate(url: str) -> None:
    """Bring a database to the newest schema."""
    db = Database.open(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


def _database_url(dsn: str, name: str) -> str:
    return dsn.rsplit("/", 1)[0].replace("postgresql://", "postgres://") + f"/{name}"


@pytest.fixture(scope="session")
def postgres_template(postgres_dsn: str) -> Iterator[str]:
    """A migrated Postgres database that each test's database is copied from."""
    name = f"wf_app_template_{uuid.uuid4().hex[:8]}"
    run_async(_admin(postgres_dsn, f'CREATE DATABASE "{name}"'))
    try:
        run_async(migrate(_database_url(postgres_dsn, name)))
        yield name
    finally:
        run_async(_admin(postgres_dsn, f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
async def postgres_url(postgres_dsn: str, postgres_template: str) -> AsyncIterator[str]:
    """An engine URL of a new, migrated Postgres database, dropped afterwards."""
    name = f"wf_app_{uuid.uuid4().hex[:12]}"
    # Copying a migrated template is much faster than migrating each new database.
    await _admin(postgres_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    try:
        yield _database_url(postgres_dsn, name)
    finally:
        await _admin(postgres_dsn, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test's file is copied from."""
    path = tmp_path_factory.mktemp("template") / "wf.db"
    run_async(migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """An engine URL of a new, migrated SQLite file."""
    shutil.copyfile(sqlite_template, tmp_path / "wf.db")
    return f"sqlite:///{tmp_path / 'wf.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url
