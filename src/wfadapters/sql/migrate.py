"""Applying and checking the SQL schema migrations (Alembic, configured in code).

The schema's revision lives in the ``wf_schema_version`` table (Alembic's version table,
renamed). ``upgrade`` brings a database to the newest revision; ``check_schema`` is what an
engine calls on start, so that an old, empty, foreign or corrupt database is refused with a
stable error code instead of failing later on a missing column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from wfadapters.sql._errors import SchemaOutdatedError, StorageCorruptError
from wfadapters.sql.database import Database

__all__ = ["UPGRADE_COMMAND", "VERSION_TABLE", "check_schema", "head_revision", "upgrade"]

VERSION_TABLE = "wf_schema_version"
UPGRADE_COMMAND = "wf db upgrade"
_SCRIPTS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x77665F6D69677261  # "wf_migra": the advisory lock id of schema upgrades


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    config.attributes["version_table"] = VERSION_TABLE
    return config


def head_revision() -> str:
    """Return the newest revision this engine version knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError("no schema migrations found")
    return head


@dataclass(frozen=True, slots=True)
class _State:
    tables: frozenset[str]
    versioned: bool
    revision: str | None


def _state(connection: Connection) -> _State:
    tables = frozenset(inspect(connection).get_table_names())
    if VERSION_TABLE not in tables:
        return _State(tables, False, None)
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return _State(tables - {VERSION_TABLE}, True, context.get_current_revision())


def _refuse_unversioned(db: Database, state: _State) -> None:
    if state.versioned or not state.tables:
        return
    raise StorageCorruptError(
        f"{db.address} holds tables ({', '.join(sorted(state.tables)[:5])}...) but no "
        f"{VERSION_TABLE} table: it is not a wfengine database, or was not created by "
        "its migrations; use an empty database",
        details={"address": db.address, "tables": sorted(state.tables)},
    )


async def upgrade(db: Database) -> str:
    """Apply every missing migration in one transaction; return the resulting revision.

    Safe to run again (a database at the newest revision is left as it is) and from
    several processes at once: they take turns, and the later ones find nothing to do.

    Raises:
        StorageCorruptError: the file is not a database, or the database holds other
            tables but no schema version.
        StorageUnavailableError: the database cannot be reached.
    """

    def run(connection: Connection) -> str | None:
        _refuse_unversioned(db, _state(connection))
        command.upgrade(_config(connection), "head")
        return _state(connection).revision

    async with db.transaction() as conn:
        if not db.is_sqlite:
            # Postgres: a transaction-scoped advisory lock makes concurrent upgraders take
            # turns (else both would CREATE the same tables and one would fail midway).
            # SQLite needs none: the transaction began with BEGIN IMMEDIATE.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        revision = await conn.run_sync(run)
    return revision or head_revision()


async def check_schema(db: Database) -> None:
    """Raise unless the database is at the newest schema revision.

    Raises:
        SchemaOutdatedError: code ``SCHEMA_OUTDATED``: the database is empty or behind
            (run ``wf db upgrade``), or ahead of this engine version (upgrade wfengine).
        StorageCorruptError: code ``STORAGE_CORRUPT``: not a database file, or a database
            with other tables and no schema version.
        StorageUnavailableError: the database cannot be reached.
    """
    async with db.transaction() as conn:
        state = await conn.run_sync(_state)
    _refuse_unversioned(db, state)
    head = head_revision()
    if state.revision == head:
        return
    details = {"address": db.address, "revision": state.revision, "head": head,
               "command": UPGRADE_COMMAND}
    known = {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
    if state.revision is not None and state.revision not in known:
        raise SchemaOutdatedError(
            f"{db.address} is at schema revision {state.revision}, which this wfengine "
            f"version does not know (it only goes up to {head}): upgrade wfengine",
            details=details,
        )
    at = "has no schema yet" if state.revision is None else (
        f"is at schema revision {state.revision}, behind {head}")
    raise SchemaOutdatedError(f"{db.address} {at}: run `{UPGRADE_COMMAND}`", details=details)
