"""The steps of an SQL append after the version check: dedupe, task ids, lookup rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wfadapters.sql import _rows
from wfadapters.sql.schema import wf_events, wf_human_tasks, wf_waits
from wfdomain.records import RunSummary

__all__ = ["already_stored", "check_task_ids_free", "replace_index"]


async def already_stored(conn: AsyncConnection, rows: list[dict[str, Any]]) -> bool:
    """Whether exactly these events are already stored at their versions."""
    first = rows[0]
    query = (
        select(wf_events.c.version, wf_events.c.type, wf_events.c.at, wf_events.c.data)
        .where(
            wf_events.c.tenant == first["tenant"],
            wf_events.c.run_id == first["run_id"],
            wf_events.c.version >= first["version"],
            wf_events.c.version <= rows[-1]["version"],
        )
        .order_by(wf_events.c.version)
    )
    stored = [(r.version, r.type, r.at, r.data) for r in await conn.execute(query)]
    wanted = [(r["version"], r["type"], r["at"], _rows.json_normal(r["data"])) for r in rows]
    return stored == wanted


async def check_task_ids_free(conn: AsyncConnection, summary: RunSummary) -> None:
    if not summary.human_tasks:
        return
    query = select(wf_human_tasks.c.task_id, wf_human_tasks.c.run_id).where(
        wf_human_tasks.c.tenant == summary.tenant,
        wf_human_tasks.c.task_id.in_([t.task_id for t in summary.human_tasks]),
        wf_human_tasks.c.run_id != summary.run_id,
    )
    holder = (await conn.execute(query.limit(1))).one_or_none()
    if holder is not None:
        raise ValueError(f"human task id {holder.task_id} is open on run {holder.run_id}")


async def replace_index(conn: AsyncConnection, summary: RunSummary, *,
                        had_index: bool = True) -> None:
    """Replace the run's rows in the wait and human task lookups by the summary's.

    ``had_index=False`` says the run had no rows there before, so nothing is deleted.
    """
    for table in (wf_waits, wf_human_tasks) if had_index else ():
        await conn.execute(
            delete(table).where(table.c.tenant == summary.tenant,
                                table.c.run_id == summary.run_id)
        )
    waits = {
        (w.event_name, w.correlation_key, w.step_key): None for w in summary.waits
    }
    if waits:
        await conn.execute(wf_waits.insert(), [
            {"tenant": summary.tenant, "run_id": summary.run_id, "event_name": name,
             "correlation_key": key, "step_key": step}
            for name, key, step in waits
        ])
    if summary.human_tasks:
        await conn.execute(wf_human_tasks.insert(),
                           [_rows.task_to_json(t) for t in summary.human_tasks])

