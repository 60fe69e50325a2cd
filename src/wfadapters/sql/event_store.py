"""The SQL event store: histories, projections, definitions, action ledger and audit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from wfadapters.sql import _load, _rows
from wfadapters.sql._append import already_stored, check_task_ids_free, replace_index
from wfadapters.sql._errors import is_unique_violation
from wfadapters.sql._one_statement import SINGLE_APPEND, SINGLE_CREATE, single_append_params
from wfadapters.sql._sqlite_append import SqliteAppend
from wfadapters.sql.database import Database
from wfadapters.sql.queue_schema import (
    message_from_json,
    message_to_json,
    wf_held,
    wf_outbox,
    wf_stream,
)
from wfadapters.sql.schema import (
    wf_action_results,
    wf_audit,
    wf_definitions,
    wf_events,
    wf_human_tasks,
    wf_runs,
    wf_snapshots,
    wf_waits,
)
from wfadapters.sql.types import micros
from wfdomain.errors import (
    ConcurrencyConflictError,
    DefinitionError,
    DefinitionSupersededError,
    ErrorCode,
    NondeterminismError,
    QuotaFullError,
)
from wfdomain.events import WorkflowEvent
from wfdomain.quota import ACTIVE_STATUSES, PAUSED_FOR_QUOTA, Admission
from wfdomain.records import (
    ActionResult,
    AuditRecord,
    EventEnvelope,
    HeldMessage,
    HumanTaskRecord,
    Message,
    RunSummary,
    Snapshot,
    StoredDefinition,
)

__all__ = ["SqlEventStore"]

_SUMMARY_COLUMNS = tuple(
    c.name for c in wf_runs.c if c.name not in ("tenant", "run_id", "fencing_token")
)


def _fast_update(where: ColumnElement[bool]) -> Any:
    # BIGINT: Redis lease tokens are microsecond timestamps (see RedisLock).
    token = bindparam("w_token", type_=BigInteger)
    had_index = or_(
        exists().where(wf_waits.c.tenant == wf_runs.c.tenant,
                       wf_waits.c.run_id == wf_runs.c.run_id),
        exists().where(wf_human_tasks.c.tenant == wf_runs.c.tenant,
                       wf_human_tasks.c.run_id == wf_runs.c.run_id),
    )
    return (
        update(wf_runs)
        .where(where, wf_runs.c.version == bindparam("w_expected", type_=Integer),
               or_(wf_runs.c.fencing_token.is_(None), token.is_(None),
                   wf_runs.c.fencing_token <= token))
        # The WHERE let through only a token at least as new as the stored one.
        .values({**{name: bindparam(f"v_{name}") for name in _SUMMARY_COLUMNS},
                 "fencing_token": func.coalesce(token, wf_runs.c.fencing_token)})
        # Evaluated before this statement's own change, and the lookups are untouched by
        # it: whether the run had open waits or tasks, i.e. whether DELETEs are needed.
        .returning(had_index.label("had_index"))
    )


@dataclass(slots=True)
class _Outbox:
    """What one write records besides its events, and whether the write stored it.

    ``rows`` are the outbox rows; ``result`` is the action outcome an append reports
    (recorded in the ledger in the same transaction, see ``EventStore.append``).
    """

    rows: list[dict[str, Any]]
    result: ActionResult | None = None
    held: list[dict[str, Any]] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    written: bool = False


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


class SqlEventStore:
    """``EventStore``, ``DefinitionStore``, ``ActionLedger`` and ``AuditLog`` on SQL.

    SQLite and Postgres run the same statements; the differences (row locking, upsert
    syntax) are decided from ``db.is_sqlite``. Every write is one transaction, so an
    append, its projection, waits and human tasks commit together or not at all.
    Driver failures leave as domain errors (``Database.transaction`` translates them).
    The tables must exist: see ``wfadapters.sql.migrate.upgrade``.

    Messages recorded by ``append`` and ``record_messages`` are written in the same
    transaction as the events (the transactional outbox), to one of two places:

    - ``outbox="stream"``: straight into ``wf_stream``, the table ``SqlStream`` consumes,
      so the SQL stream is itself the outbox and no relay is needed;
    - ``outbox="table"``: into ``wf_outbox``, which a relay (``wfapps.relay``) publishes
      to another transport (Redis) and clears once the message was handled there.

    Args:
        db: The database (SQLite file or Postgres).
        outbox: Where recorded messages go (see above).
    """

    def __init__(self, db: Database, *, outbox: Literal["stream", "table"] = "stream") -> None:
        if outbox not in ("stream", "table"):
            raise ValueError(f"outbox must be 'stream' or 'table', got {outbox!r}")
        self._db = db
        self._outbox = outbox
        self._insert_outbox = (wf_stream if outbox == "stream" else wf_outbox).insert()
        # Postgres hands out BIGSERIAL positions at insert, not at commit: see
        # SqlStream.publish for why publishers to wf_stream serialise on this lock. It is
        # taken last in the transaction, so it is held only for the insert and COMMIT.
        self._lock_stream = (
            text(f"LOCK TABLE {wf_stream.name} IN EXCLUSIVE MODE")
            if outbox == "stream" and not db.is_sqlite else None
        )
        self._insert: Callable[..., Any] = sqlite_insert if db.is_sqlite else postgres_insert
        self._single_append = not db.is_sqlite
        if self._single_append:
            from wfadapters.sql import _pg_raw  # asyncpg: the postgres extra's

            self._pg_raw = _pg_raw
            self._raw_append = _pg_raw.RawStatement.of(SINGLE_APPEND)
            self._raw_create = _pg_raw.RawStatement.of(SINGLE_CREATE)
        # Built once: a statement built per call pays SQLAlchemy's cache-key walk every
        # time (measured at a third of an append's time in bench/storage.py).
        where = (wf_runs.c.tenant == bindparam("w_tenant")) & (
            wf_runs.c.run_id == bindparam("w_run_id"))
        head = select(wf_runs.c.version, wf_runs.c.fencing_token, wf_runs.c.waits,
                      wf_runs.c.human_tasks).where(where)
        # Postgres: FOR UPDATE makes concurrent appenders to one run queue on its row;
        # under READ COMMITTED the waiter then reads the winner's committed version and
        # fails the version check cleanly. SQLite needs no row lock: the transaction
        # began with BEGIN IMMEDIATE, which already serialises every writer.
        self._run_head = head if db.is_sqlite else head.with_for_update()
        self._update_run = update(wf_runs).where(where)
        self._insert_events = wf_events.insert()
        self._fast_update = _fast_update(where)
        self._insert_result = (
            self._insert(wf_action_results)
            .on_conflict_do_nothing(index_elements=["result_key"])
            .returning(wf_action_results.c.result_key)
        )
        self._select_result = select(wf_action_results).where(
            wf_action_results.c.result_key == bindparam("r_key"))
        self._insert_held = wf_held.insert()
        self._release_held = delete(wf_held).where(
            wf_held.c.message_id.in_(bindparam("ids", expanding=True)))
        self._any_overdue = select(wf_held.c.message_id).where(
            wf_held.c.due_at <= bindparam("cutoff")).limit(1)
        # SKIP LOCKED (Postgres): two releasers take disjoint rows, each published once.
        # On SQLite BEGIN IMMEDIATE serialises them.
        self._overdue = (
            select(wf_held.c.message_id, wf_held.c.message)
            .where(wf_held.c.due_at <= bindparam("cutoff"))
            .order_by(wf_held.c.due_at, wf_held.c.message_id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
        self._newest_definition = select(func.max(wf_definitions.c.version)).where(
            wf_definitions.c.tenant == bindparam("d_tenant"),
            wf_definitions.c.definition_id == bindparam("d_id"))
        self._quota_lock = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
        self._quota_count = (
            select(wf_runs.c.status, func.count())
            .where(wf_runs.c.tenant == bindparam("q_tenant"),
                   wf_runs.c.run_id != bindparam("q_run_id"),
                   wf_runs.c.parent_run_id.is_(None),  # children hold their root's slot
                   wf_runs.c.status.in_([*ACTIVE_STATUSES, PAUSED_FOR_QUOTA]))
            .group_by(wf_runs.c.status)
        )

    # -- EventStore -------------------------------------------------------------------

    async def append(
        self,
        events: Sequence[EventEnvelope],
        *,
        expected_version: int,
        summary: RunSummary,
        fencing_token: int | None = None,
        messages: Sequence[Message] = (),
        admission: Admission | None = None,
        result: ActionResult | None = None,
        held: Sequence[HeldMessage] = (),
        release: Sequence[str] = (),
        latest_definition: bool = False,
    ) -> int:
        version, _ = await self.append_reporting(
            events, expected_version=expected_version, summary=summary,
            fencing_token=fencing_token, messages=messages, admission=admission,
            result=result, held=held, release=release, latest_definition=latest_definition)
        return version

    async def append_reporting(
        self,
        events: Sequence[EventEnvelope],
        *,
        expected_version: int,
        summary: RunSummary,
        fencing_token: int | None = None,
        messages: Sequence[Message] = (),
        admission: Admission | None = None,
        result: ActionResult | None = None,
        held: Sequence[HeldMessage] = (),
        release: Sequence[str] = (),
        latest_definition: bool = False,
    ) -> tuple[int, bool]:
        """``append``, also saying whether this call recorded ``messages``.

        False when the batch was recognised as already stored (a retry): its messages
        were recorded by the first attempt, and a relay's fast path must not publish
        this call's copies.
        """
        batch = _rows.validated_batch(events, expected_version, summary)
        rows = [_rows.event_row(e) for e in batch]
        run_row = _rows.run_row(summary, fencing_token)
        outbox = self._outbox_rows(messages, result)
        outbox.held = [{"message_id": h.message.id, "message": message_to_json(h.message),
                        "due_at": micros(h.until)} for h in held]
        outbox.release = list(release)
        try:
            # The common append (a new run's start too: it has events) opens no wait or
            # task (the lookups it would fill) and checks no tenant limit.
            if (admission is None and not summary.waits and not summary.human_tasks
                    and (expected_version > 0 or rows)
                    and await self._append_common(rows, run_row, expected_version, outbox,
                                                  latest_definition)):
                return summary.version, True
            async with self._db.transaction() as conn:
                if admission is not None and not await self._admits(conn, summary, admission):
                    if rows and await already_stored(conn, rows):
                        return summary.version, False  # a retry of a batch that did commit
                    raise QuotaFullError(
                        f"tenant {summary.tenant!r} is at its limit of {admission.limit} "
                        "active runs", details={"limit": admission.limit})
                version = await self._append(conn, rows, expected_version, summary, run_row,
                                             outbox, latest_definition)
            return version, outbox.written
        except sa_exc.IntegrityError as e:
            if not is_unique_violation(e):
                raise
            if "wf_human_tasks" in str(e.orig):
                raise ValueError(
                    f"a human task id of run {summary.run_id} is open on another run"
                ) from e
            # Two writers created the same run at once: neither saw a runs row to lock,
            # and the unique (tenant, run_id, version) index let only one of them in.
            raise ConcurrencyConflictError(summary.run_id, expected_version, None) from e

    async def _append_common(
        self, rows: list[dict[str, Any]], run_row: dict[str, Any], expected_version: int,
        outbox: _Outbox, latest_definition: bool,
    ) -> bool:
        """Try the common append past SQLAlchemy; False: not done (or not possible here).

        Postgres: one statement (``_one_statement``). SQLite: one function of sqlite3 calls
        (``_sqlite_append``). False means nothing was written, and the caller's full path
        decides why.
        """
        result = None
        if outbox.result is not None:
            r = outbox.result
            result = {"result_key": r.result_key, "idempotency_key": r.idempotency_key,
                      "ok": r.ok, "outcome": {"output": r.output, "error": r.error}}
        if self._db.writes_inline and self._outbox == "stream":
            matched = await self._db.write_inline(SqliteAppend(
                rows, run_row, expected_version, outbox.rows, outbox.held, outbox.release,
                result, latest_definition))
        elif self._single_append and (not outbox.rows or self._outbox == "table"):
            params = single_append_params(rows, run_row, expected_version, outbox.rows,
                                          result, outbox.held, outbox.release,
                                          latest=latest_definition)
            statement = self._raw_append if expected_version > 0 else self._raw_create
            matched = await self._pg_raw.fetch_value(self._db.engine, self._db.address,
                                                     statement, params)
        else:
            return False
        if matched:
            outbox.written = True
        return bool(matched)

    async def _admits(
        self, conn: AsyncConnection, summary: RunSummary, admission: Admission
    ) -> bool:
        """Count the tenant's other active and paused runs, serialised per tenant.

        Postgres: a transaction-scoped advisory lock per tenant, taken first (before any
        row lock, so no lock cycle), makes admitting appends of one tenant queue; under
        READ COMMITTED the count statement after it sees every admission committed before.
        Appends that only finish runs take no such lock: they can only lower the count,
        and the runtime then re-drives admission. SQLite: BEGIN IMMEDIATE already
        serialises every writer.
        """
        if not self._db.is_sqlite:
            await conn.execute(self._quota_lock, {"key": f"wf-quota:{summary.tenant}"})
        result = await conn.execute(self._quota_count, {
            "q_tenant": summary.tenant, "q_run_id": summary.run_id})
        counts: dict[str, int] = {row[0]: row[1] for row in result}
        active = sum(n for status, n in counts.items() if status in ACTIVE_STATUSES)
        return admission.admits(active, counts.get(PAUSED_FOR_QUOTA, 0))

    async def _append(
        self,
        conn: AsyncConnection,
        rows: list[dict[str, Any]],
        expected_version: int,
        summary: RunSummary,
        run_row: dict[str, Any],
        outbox: _Outbox,
        latest_definition: bool = False,
    ) -> int:
        keys = {"w_tenant": summary.tenant, "w_run_id": summary.run_id}
        if expected_version > 0 and not latest_definition:
            fast = await self._append_existing(conn, rows, expected_version, summary, run_row,
                                               keys, outbox)
            if fast is not None:
                return fast
        row = (await conn.execute(self._run_head, keys)).one_or_none()
        current = row.version if row is not None else 0
        stored_token = row.fencing_token if row is not None else None
        token = run_row["fencing_token"]
        # Fencing first: a writer whose lease was taken over may not even retry.
        if token is not None and stored_token is not None and token < stored_token:
            raise ConcurrencyConflictError(summary.run_id, expected_version, current)
        if current != expected_version:
            if rows and current >= summary.version and await already_stored(conn, rows):
                return summary.version  # a retry of a batch that did commit
            raise ConcurrencyConflictError(summary.run_id, expected_version, current)
        if row is None and not rows:
            raise ValueError(f"run {summary.run_id} must start with at least one event")
        if latest_definition:
            await self._check_latest_definition(conn, summary)
        if stored_token is not None and (token is None or token < stored_token):
            run_row["fencing_token"] = stored_token
        if row is None:
            await conn.execute(wf_runs.insert().values(run_row))
        else:
            await conn.execute(self._update_run, {**run_row, **keys})
        had_index = row is not None and bool(row.waits or row.human_tasks)
        return await self._write_events(conn, rows, summary, outbox, had_index=had_index)

    async def _check_latest_definition(self, conn: AsyncConnection,
                                       summary: RunSummary) -> None:
        newest = (await conn.execute(self._newest_definition, {
            "d_tenant": summary.tenant, "d_id": summary.definition_id})).scalar()
        if newest is not None and newest > summary.definition_version:
            raise DefinitionSupersededError(
                f"definition {summary.definition_id} v{newest} is registered, newer than "
                f"v{summary.definition_version}", details={"latest": newest})

    async def _write_events(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], summary: RunSummary,
        outbox: _Outbox, *, had_index: bool,
    ) -> int:
        """What every append does once its run row is written: events, then the lookups."""
        await check_task_ids_free(conn, summary)
        if rows:
            # Positions come from the sequence at insert time: unique, and increasing within
            # a run, but appends to two runs may commit out of position order. Nothing reads
            # across runs by position, so no table lock is taken to order commits.
            await conn.execute(self._insert_events, rows)
        # The lookups change only when a wait or task opens or closes: most appends (an
        # action finishing, a step starting) leave both empty, and skip the DELETEs.
        if had_index or summary.waits or summary.human_tasks:
            await replace_index(conn, summary, had_index=had_index)
        await self._write_outbox(conn, outbox)
        if outbox.result is not None:
            await self._record_result_in(conn, outbox.result)
        return summary.version

    def _outbox_rows(self, messages: Sequence[Message],
                     result: ActionResult | None = None) -> _Outbox:
        if not messages:
            return _Outbox([], result=result)
        # published_at/created_at are informational (nothing orders by them): wall time.
        now = micros(datetime.now(UTC))
        if self._outbox == "stream":
            return _Outbox([{"message_id": m.id, "kind": m.kind, "tenant": m.tenant,
                             "run_id": m.run_id, "body": m.body, "published_at": now}
                            for m in messages], result=result)
        return _Outbox([{"message_id": m.id, "message": message_to_json(m), "created_at": now}
                        for m in messages], result=result)

    async def _write_outbox(self, conn: AsyncConnection, outbox: _Outbox) -> None:
        outbox.written = True
        if outbox.release:
            await conn.execute(self._release_held, {"ids": outbox.release})
        if outbox.held:
            await conn.execute(self._insert_held, outbox.held)
        if not outbox.rows:
            return
        if self._lock_stream is not None:
            await conn.execute(self._lock_stream)
        await conn.execute(self._insert_outbox, outbox.rows)

    async def release_overdue(self, now: datetime, *, limit: int = 100) -> list[Message]:
        _positive("limit", limit)
        cutoff = micros(now)
        # Most calls (every scheduler tick) find nothing: a read answers them without
        # taking SQLite's write lock or a Postgres row lock.
        async with self._db.transaction(read_only=True) as conn:
            if (await conn.execute(self._any_overdue, {"cutoff": cutoff})).first() is None:
                return []
        async with self._db.transaction() as conn:
            rows = (await conn.execute(self._overdue, {"cutoff": cutoff, "limit": limit})).all()
            if not rows:
                return []
            await conn.execute(self._release_held, {"ids": [r.message_id for r in rows]})
            messages = [message_from_json(r.message) for r in rows]
            await self._write_outbox(conn, self._outbox_rows(messages))
        return messages

    async def record_messages(
        self, messages: Sequence[Message], *, audit: AuditRecord | None = None
    ) -> None:
        outbox = self._outbox_rows(messages)
        if not outbox.rows and audit is None:
            return
        async with self._db.transaction() as conn:
            if audit is not None:
                await conn.execute(wf_audit.insert().values(_rows.audit_row(audit)))
            await self._write_outbox(conn, outbox)

    async def _append_existing(
        self,
        conn: AsyncConnection,
        rows: list[dict[str, Any]],
        expected_version: int,
        summary: RunSummary,
        run_row: dict[str, Any],
        keys: dict[str, Any],
        outbox: _Outbox,
    ) -> int | None:
        """The common append in two statements; None sends the caller down the full path.

        The conditional UPDATE is the version and fencing check: it matches only a run at
        ``expected_version`` whose token is not newer than ours, and (Postgres) takes the
        row lock a concurrent appender then waits on before re-checking its WHERE. When it
        matches nothing (a conflict, a retry, a stale token) the caller's SELECT path works
        out which, so every error stays exactly as before.
        """
        params = {f"v_{name}": value for name, value in run_row.items()}
        params.update(keys, w_expected=expected_version, w_token=run_row["fencing_token"])
        hit = (await conn.execute(self._fast_update, params)).one_or_none()
        if hit is None:
            return None
        return await self._write_events(conn, rows, summary, outbox,
                                        had_index=bool(hit.had_index))

    async def read(
        self, tenant: str, run_id: str, *, after: int = 0, upto: int | None = None
    ) -> list[EventEnvelope]:
        query = select(wf_events).where(
            wf_events.c.tenant == tenant,
            wf_events.c.run_id == run_id,
            wf_events.c.version > after,
        )
        if upto is not None:
            query = query.where(wf_events.c.version <= upto)
        async with self._db.transaction(read_only=True) as conn:
            result = await conn.execute(query.order_by(wf_events.c.version))
            return [_rows.envelope(r) for r in result]

    async def load_run(
        self, tenant: str, run_id: str, *, after: int | None = None, upto: int | None = None
    ) -> tuple[Snapshot | None, list[WorkflowEvent]]:
        keys = {"l_tenant": tenant, "l_run_id": run_id,
                "l_upto": _load.NO_LIMIT if upto is None else upto}
        async with self._db.transaction(read_only=True) as conn:
            if after is not None:
                rows = (await conn.execute(_load.TAIL, {**keys, "l_after": after})).all()
                return None, _load.decode_rows(rows)
            rows = (await conn.execute(_load.SNAPSHOT_AND_TAIL, keys)).all()
        snapshot = None
        if rows and rows[0].part == 0:
            head, rows = rows[0], rows[1:]
            snapshot = Snapshot(tenant=tenant, run_id=run_id, version=head.version,
                                state=head.data)
        return snapshot, _load.decode_rows(rows)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        async with self._db.transaction() as conn:
            version = await _run_version(conn, snapshot.tenant, snapshot.run_id)
            if version is None:
                raise ValueError(f"snapshot of unknown run {snapshot.run_id}")
            if not 1 <= snapshot.version <= version:
                raise ValueError(
                    f"snapshot of run {snapshot.run_id} at version {snapshot.version}, "
                    f"outside its history 1..{version}"
                )
            stmt = self._insert(wf_snapshots).values(
                tenant=snapshot.tenant,
                run_id=snapshot.run_id,
                version=snapshot.version,
                state=snapshot.state,
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["tenant", "run_id", "version"],
                    set_={"state": stmt.excluded.state},
                )
            )

    async def load_snapshot(
        self, tenant: str, run_id: str, *, at_or_before: int | None = None
    ) -> Snapshot | None:
        query = select(wf_snapshots).where(
            wf_snapshots.c.tenant == tenant, wf_snapshots.c.run_id == run_id
        )
        if at_or_before is not None:
            query = query.where(wf_snapshots.c.version <= at_or_before)
        query = query.order_by(wf_snapshots.c.version.desc()).limit(1)
        async with self._db.transaction(read_only=True) as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            return None
        return Snapshot(tenant=row.tenant, run_id=row.run_id, version=row.version,
                        state=row.state)

    async def get_run(self, tenant: str, run_id: str) -> RunSummary | None:
        query = select(wf_runs).where(wf_runs.c.tenant == tenant, wf_runs.c.run_id == run_id)
        async with self._db.transaction(read_only=True) as conn:
            row = (await conn.execute(query)).one_or_none()
        return _rows.summary(row) if row is not None else None

    async def list_runs(
        self,
        tenant: str,
        *,
        statuses: Sequence[str] | None = None,
        definition_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        _positive("limit", limit)
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        query = select(wf_runs).where(wf_runs.c.tenant == tenant)
        if statuses is not None:
            query = query.where(wf_runs.c.status.in_(list(statuses)))
        if definition_id is not None:
            query = query.where(wf_runs.c.definition_id == definition_id)
        query = query.order_by(wf_runs.c.created_at.desc(), wf_runs.c.run_id.desc())
        async with self._db.transaction(read_only=True) as conn:
            result = await conn.execute(query.limit(limit).offset(offset))
            return [_rows.summary(r) for r in result]

    async def find_waits(
        self, tenant: str, event_name: str, correlation_key: str
    ) -> list[tuple[str, str]]:
        query = (
            select(wf_waits.c.run_id, wf_waits.c.step_key)
            .where(
                wf_waits.c.tenant == tenant,
                wf_waits.c.event_name == event_name,
                wf_waits.c.correlation_key == correlation_key,
            )
            .order_by(wf_waits.c.run_id, wf_waits.c.step_key)
        )
        async with self._db.transaction(read_only=True) as conn:
            return [(r.run_id, r.step_key) for r in await conn.execute(query)]

    async def list_human_tasks(
        self, tenant: str, *, assignee: str | None = None
    ) -> list[HumanTaskRecord]:
        query = select(wf_human_tasks).where(wf_human_tasks.c.tenant == tenant)
        if assignee is not None:
            query = query.where(wf_human_tasks.c.assignee == assignee)
        query = query.order_by(wf_human_tasks.c.created_at, wf_human_tasks.c.task_id)
        async with self._db.transaction(read_only=True) as conn:
            return [_rows.task_from_json(r._mapping) for r in await conn.execute(query)]

    async def get_human_task(self, tenant: str, task_id: str) -> HumanTaskRecord | None:
        query = select(wf_human_tasks).where(
            wf_human_tasks.c.tenant == tenant, wf_human_tasks.c.task_id == task_id
        )
        async with self._db.transaction(read_only=True) as conn:
            row = (await conn.execute(query)).one_or_none()
        return _rows.task_from_json(row._mapping) if row is not None else None

    # -- DefinitionStore --------------------------------------------------------------

    async def put_definition(self, definition: StoredDefinition) -> None:
        key = {
            "tenant": definition.tenant,
            "definition_id": definition.definition_id,
            "version": definition.version,
        }
        # Insert-or-ignore, then compare: a racing writer of the same version blocks on
        # the primary key until the first commits, then reads what was stored.
        stmt = self._insert(wf_definitions).values(
            **key, content_hash=definition.content_hash, document=definition.document
        )
        async with self._db.transaction() as conn:
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=list(key)))
            stored = await conn.scalar(
                select(wf_definitions.c.content_hash).where(
                    *(wf_definitions.c[name] == value for name, value in key.items())
                )
            )
        if stored != definition.content_hash:
            raise DefinitionError(
                f"definition {definition.definition_id} version {definition.version} "
                "is already registered with different content",
                code=ErrorCode.DEFINITION_CONFLICT,
                details={
                    "definition_id": definition.definition_id,
                    "version": definition.version,
                    "stored_hash": stored,
                    "new_hash": definition.content_hash,
                },
            )

    async def get_definition(
        self, tenant: str, definition_id: str, version: int | None = None
    ) -> StoredDefinition | None:
        query = select(wf_definitions).where(
            wf_definitions.c.tenant == tenant, wf_definitions.c.definition_id == definition_id
        )
        if version is not None:
            query = query.where(wf_definitions.c.version == version)
        query = query.order_by(wf_definitions.c.version.desc()).limit(1)
        async with self._db.transaction(read_only=True) as conn:
            row = (await conn.execute(query)).one_or_none()
        return _rows.stored_definition(row) if row is not None else None

    # -- ActionLedger -----------------------------------------------------------------

    async def get_result(self, result_key: str) -> ActionResult | None:
        query = select(wf_action_results).where(wf_action_results.c.result_key == result_key)
        async with self._db.transaction(read_only=True) as conn:
            row = (await conn.execute(query)).one_or_none()
        return _rows.action_result(row) if row is not None else None

    async def record_result(self, result: ActionResult) -> ActionResult:
        async with self._db.transaction() as conn:
            return await self._record_result_in(conn, result)

    async def _record_result_in(self, conn: AsyncConnection,
                                result: ActionResult) -> ActionResult:
        outcome = {"output": result.output, "error": result.error}
        wanted = ActionResult(
            result_key=result.result_key,
            idempotency_key=result.idempotency_key,
            ok=result.ok,
            output=_rows.json_normal(result.output),
            error=_rows.json_normal(result.error),
        )
        # Insert-or-ignore: of two racing recorders the second waits on the primary key,
        # inserts nothing, and reads and compares against the first one's outcome. The
        # common case (a new key) is one statement: RETURNING says the row is ours.
        inserted = (await conn.execute(self._insert_result, {
            "result_key": result.result_key, "idempotency_key": result.idempotency_key,
            "ok": result.ok, "outcome": outcome,
        })).one_or_none()
        if inserted is not None:
            return wanted
        stored = _rows.action_result((await conn.execute(
            self._select_result, {"r_key": result.result_key})).one())
        if stored != wanted:  # raised inside the transaction: nothing of it commits
            raise NondeterminismError(
                f"action result {result.result_key} is already stored with another outcome",
                details={
                    "result_key": result.result_key,
                    "idempotency_key": result.idempotency_key,
                },
            )
        return stored

    # -- AuditLog ---------------------------------------------------------------------

    async def append_audit(self, record: AuditRecord) -> None:
        row = _rows.audit_row(record)
        async with self._db.transaction() as conn:
            await conn.execute(wf_audit.insert().values(row))

    async def list_audit(
        self, tenant: str, *, kind: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        _positive("limit", limit)
        query = select(wf_audit).where(wf_audit.c.tenant == tenant)
        if kind is not None:
            query = query.where(wf_audit.c.kind == kind)
        query = query.order_by(wf_audit.c.position).limit(limit)
        async with self._db.transaction(read_only=True) as conn:
            return [_rows.audit_record(r) for r in await conn.execute(query)]


async def _run_version(conn: AsyncConnection, tenant: str, run_id: str) -> int | None:
    query = select(wf_runs.c.version).where(wf_runs.c.tenant == tenant,
                                             wf_runs.c.run_id == run_id)
    version: int | None = await conn.scalar(query)
    return version
