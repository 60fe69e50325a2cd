"""Loading a run in one read: its newest snapshot and the events after it, decoded.

``Runtime`` loads a run it has no state for on every first message of that run in a
process; two reads (the snapshot, then the tail) cost two round trips to Postgres and two
transactions on SQLite. One ``UNION ALL`` answers both: part 0 is the snapshot row (at
most one), part 1 the events after it. Events are decoded straight from their columns
(``decode_event``), without the envelope ``read`` builds, and consecutive rows of one
decision, which share their time, share one decoded ``at``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Integer,
    Select,
    String,
    bindparam,
    func,
    literal_column,
    null,
    select,
    type_coerce,
    union_all,
)

from wfadapters.sql.schema import wf_events, wf_snapshots
from wfadapters.sql.types import from_micros
from wfdomain.codec import decode_event
from wfdomain.events import WorkflowEvent

__all__ = ["NO_LIMIT", "SNAPSHOT_AND_TAIL", "TAIL", "decode_rows"]

NO_LIMIT: Final = 2**31 - 1
"""``upto`` when there is none: one statement (prepared once) serves both cases."""

_events = wf_events.c
_run = (_events.tenant == bindparam("l_tenant")) & (_events.run_id == bindparam("l_run_id"))


def _snapshot_and_tail() -> CompoundSelect[Any]:
    snaps = wf_snapshots.c
    snap = (select(snaps.version, snaps.state)
            .where(snaps.tenant == bindparam("l_tenant"), snaps.run_id == bindparam("l_run_id"),
                   snaps.version <= bindparam("l_upto"))
            .order_by(snaps.version.desc()).limit(1).cte("snap"))
    head = select(literal_column("0", Integer).label("part"), snap.c.version,
                  type_coerce(null(), String).label("type"),
                  type_coerce(null(), BigInteger).label("at"), snap.c.state.label("data"))
    after = func.coalesce(select(snap.c.version).scalar_subquery(), 0)
    tail = select(literal_column("1", Integer), _events.version, _events.type, _events.at,
                  _events.data).where(_run, _events.version > after,
                                      _events.version <= bindparam("l_upto"))
    return union_all(head, tail).order_by(literal_column("part"), literal_column("version"))


SNAPSHOT_AND_TAIL: Final = _snapshot_and_tail()
"""Rows ``(part, version, type, at, data)``: the snapshot (part 0), then the events."""

TAIL: Final[Select[Any]] = (
    select(_events.type, _events.at, _events.data)
    .where(_run, _events.version > bindparam("l_after"), _events.version <= bindparam("l_upto"))
    .order_by(_events.version)
)
"""Rows ``(type, at, data)``: the events with ``l_after < version <= l_upto``."""


def decode_rows(rows: Iterable[Any]) -> list[WorkflowEvent]:
    """Events from ``(type, at, data)`` rows, in the order given."""
    events: list[WorkflowEvent] = []
    last_micros: int | None = None
    at: datetime | None = None
    for row in rows:
        if row.at != last_micros:
            last_micros, at = row.at, from_micros(row.at)
        assert at is not None
        events.append(decode_event(row.type, at, row.data))
    return events
