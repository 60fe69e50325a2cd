"""The common SQLite append as one function on the connection, past SQLAlchemy.

SQLite's counterpart of ``_one_statement`` (Postgres). The common append (a run's start,
an action reporting, a step starting: no wait or human task opened, no tenant limit to
check) runs as one write transaction of plain sqlite3 calls on the event loop's thread
(``Database.write_inline``). Through SQLAlchemy the same five statements cost about 1 ms
of CPU here, most of an ``execute_run`` on SQLite; as sqlite3 calls, tens of µs.

The run row is written first, under the same checks as ``_one_statement``'s: the version,
the fencing token, the action outcome's key not yet in the ledger and, when asked, the
definition version still the latest. When that matches no row the transaction is rolled
back having written nothing, and the store takes its full path, which tells a conflict, a
retry of a stored batch, a stale token or a superseded definition apart as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from wfadapters.sql._one_statement import RUN_COLUMNS, run_params
from wfadapters.sql.queue_schema import wf_held, wf_stream
from wfadapters.sql.schema import (
    wf_action_results,
    wf_definitions,
    wf_events,
    wf_human_tasks,
    wf_runs,
    wf_waits,
)
from wfadapters.sql.types import json_text

__all__ = ["SqliteAppend"]

_NAMES: Final = [name for name, _ in RUN_COLUMNS]

_NOT_SUPERSEDED: Final = f"""NOT (:w_latest AND EXISTS (
    SELECT 1 FROM {wf_definitions.name}
    WHERE tenant = :w_tenant AND definition_id = :v_definition_id
      AND version > :v_definition_version))"""

_NO_OUTCOME_YET: Final = f"""NOT EXISTS (
    SELECT 1 FROM {wf_action_results.name} WHERE result_key = :r_key)"""

# INSERT ... SELECT ... WHERE: SQLite needs the WHERE before ON CONFLICT (its parser).
_CREATE: Final = f"""
INSERT INTO {wf_runs.name} (tenant, run_id, {", ".join(_NAMES)}, fencing_token)
SELECT :w_tenant, :w_run_id, {", ".join(f":v_{n}" for n in _NAMES)}, :w_token
WHERE {_NOT_SUPERSEDED} AND {_NO_OUTCOME_YET}
ON CONFLICT (tenant, run_id) DO NOTHING"""

_UPDATE: Final = f"""
UPDATE {wf_runs.name} SET {", ".join(f"{n} = :v_{n}" for n in _NAMES)},
  fencing_token = COALESCE(:w_token, fencing_token)
WHERE tenant = :w_tenant AND run_id = :w_run_id AND version = :w_expected
  AND (fencing_token IS NULL OR :w_token IS NULL OR fencing_token <= :w_token)
  AND {_NO_OUTCOME_YET} AND {_NOT_SUPERSEDED}"""

_CLEAR_WAITS: Final = f"DELETE FROM {wf_waits.name} WHERE tenant = ? AND run_id = ?"
_CLEAR_TASKS: Final = f"DELETE FROM {wf_human_tasks.name} WHERE tenant = ? AND run_id = ?"
_EVENTS: Final = (f"INSERT INTO {wf_events.name} (tenant, run_id, version, type, at, data) "
                  "VALUES (?, ?, ?, ?, ?, ?)")
_STREAM: Final = (f"INSERT INTO {wf_stream.name} "
                  "(message_id, kind, tenant, run_id, body, published_at) "
                  "VALUES (?, ?, ?, ?, ?, ?)")
_HOLD: Final = f"INSERT INTO {wf_held.name} (message_id, message, due_at) VALUES (?, ?, ?)"
_RELEASE: Final = f"DELETE FROM {wf_held.name} WHERE message_id = ?"
_RESULT: Final = (f"INSERT INTO {wf_action_results.name} "
                  "(result_key, idempotency_key, ok, outcome) VALUES (?, ?, ?, ?)")


@dataclass(frozen=True, slots=True)
class SqliteAppend:
    """One common append's rows, ready for ``__call__`` on a connection in a transaction.

    Attributes:
        rows: Event rows (``_rows.event_row``).
        run_row: The run row (``_rows.run_row``).
        expected_version: The version the run must be at (0: a new run).
        stream_rows: ``wf_stream`` rows (the SQL stream is SQLite's outbox).
        held_rows: ``wf_held`` rows to insert; ``release``: held message ids to drop.
        result: The ledger row (result_key, idempotency_key, ok, outcome) or None.
        latest: The run's definition version must be the latest registered.
    """

    rows: Sequence[dict[str, Any]]
    run_row: dict[str, Any]
    expected_version: int
    stream_rows: Sequence[dict[str, Any]]
    held_rows: Sequence[dict[str, Any]]
    release: Sequence[str]
    result: dict[str, Any] | None
    latest: bool

    def __call__(self, conn: sqlite3.Connection) -> bool:
        """Write it all, or nothing and return False (the run row did not match)."""
        run = self.run_row
        result = self.result or {}
        params = run_params(run)
        params.update(w_tenant=run["tenant"], w_run_id=run["run_id"],
                      w_token=run["fencing_token"], w_expected=self.expected_version,
                      w_latest=self.latest, r_key=result.get("result_key"))
        if self.expected_version == 0:
            if conn.execute(_CREATE, params).rowcount != 1:
                return False
        else:
            if conn.execute(_UPDATE, params).rowcount != 1:
                return False
            # Whatever waits or tasks the run had are closed: this append opens none.
            key = (run["tenant"], run["run_id"])
            conn.execute(_CLEAR_WAITS, key)
            conn.execute(_CLEAR_TASKS, key)
        if self.rows:
            conn.executemany(_EVENTS, [
                (r["tenant"], r["run_id"], r["version"], r["type"], r["at"], json_text(r["data"]))
                for r in self.rows])
        if self.release:
            conn.executemany(_RELEASE, [(i,) for i in self.release])
        if self.held_rows:
            conn.executemany(_HOLD, [(h["message_id"], json_text(h["message"]), h["due_at"])
                                     for h in self.held_rows])
        if self.stream_rows:
            conn.executemany(_STREAM, [
                (m["message_id"], m["kind"], m["tenant"], m["run_id"], json_text(m["body"]),
                 m["published_at"]) for m in self.stream_rows])
        if self.result is not None:
            conn.execute(_RESULT, (result["result_key"], result["idempotency_key"],
                                   result["ok"], json_text(result["outcome"])))
        return True
