"""The common Postgres appends as one statement: no BEGIN, no COMMIT, one round trip.

Most appends (a step starting, an action reporting) change a run that exists, open no wait
or human task, and record their messages in ``wf_outbox``. For them ``SqlEventStore``
first tries this statement, autocommitted: data-modifying CTEs update the run row under
the version and fencing checks, and only when that matched insert the events, the
outbox rows, the held messages and the action outcome, drop the released held messages,
and clear the run's wait and task lookups. A
statement is atomic, so all of it commits or none does.

Whenever the run row does not match (a version conflict, a retry of a stored batch, a
stale fencing token) or the outcome's key is already in the ledger, the statement writes
nothing and the store takes its full path in a transaction, which then tells those cases
apart exactly as before. Every worker of the Postgres + Redis engine pays for each network
write (measured on these machines: a third of a worker's busy time was in socket sends),
and this turns the six writes of such an append (BEGIN, UPDATE, three INSERTs, COMMIT)
into one.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import TextClause, text

from wfadapters.sql.queue_schema import wf_held, wf_outbox
from wfadapters.sql.schema import (
    wf_action_results,
    wf_definitions,
    wf_events,
    wf_human_tasks,
    wf_runs,
    wf_waits,
)
from wfadapters.sql.types import json_text

__all__ = ["RUN_COLUMNS", "SINGLE_APPEND", "SINGLE_CREATE", "run_params", "single_append_params"]

# The run row's columns an append replaces, with their Postgres types for the casts that
# let the server type every parameter (asyncpg prepares the statement).
RUN_COLUMNS: Final = (
    ("definition_id", "TEXT"), ("definition_version", "INTEGER"),
    ("definition_hash", "TEXT"), ("status", "TEXT"), ("engine", "TEXT"), ("queue", "TEXT"),
    ("version", "INTEGER"), ("created_at", "BIGINT"), ("last_progress_at", "BIGINT"),
    ("next_due_at", "BIGINT"), ("parent_run_id", "TEXT"), ("replay_of", "TEXT"),
    ("error", "JSON"), ("waits", "JSON"), ("human_tasks", "JSON"),
)
_JSON_COLUMNS: Final = frozenset(name for name, kind in RUN_COLUMNS if kind == "JSON")

_SET = ",\n    ".join(f"{name} = CAST(:v_{name} AS {kind})" for name, kind in RUN_COLUMNS)

# What a one-statement append writes once its run row matched: the events, the outbox
# rows, the held messages (and the released ones dropped), the action outcome.
_WRITES = f"""
), events AS (
  INSERT INTO {wf_events.name} (tenant, run_id, version, type, at, data)
  SELECT CAST(:w_tenant AS VARCHAR), CAST(:w_run_id AS VARCHAR), e.version, e.type, e.at,
         CAST(e.data AS JSON)
  FROM run, unnest(CAST(:e_versions AS INTEGER[]), CAST(:e_types AS TEXT[]),
                   CAST(:e_ats AS BIGINT[]), CAST(:e_datas AS TEXT[]))
       AS e(version, type, at, data)
), outbox AS (
  INSERT INTO {wf_outbox.name} (message_id, message, created_at)
  SELECT o.message_id, CAST(o.message AS JSON), o.created_at
  FROM run, unnest(CAST(:o_ids AS TEXT[]), CAST(:o_messages AS TEXT[]),
                   CAST(:o_created AS BIGINT[]))
       AS o(message_id, message, created_at)
), held AS (
  INSERT INTO {wf_held.name} (message_id, message, due_at)
  SELECT h.message_id, CAST(h.message AS JSON), h.due_at
  FROM run, unnest(CAST(:h_ids AS TEXT[]), CAST(:h_messages AS TEXT[]),
                   CAST(:h_due AS BIGINT[]))
       AS h(message_id, message, due_at)
), released AS (
  DELETE FROM {wf_held.name}
  WHERE message_id = ANY(CAST(:h_release AS TEXT[])) AND EXISTS (SELECT 1 FROM run)
), result AS (
  INSERT INTO {wf_action_results.name} (result_key, idempotency_key, ok, outcome)
  SELECT CAST(:r_key AS TEXT), CAST(:r_idempotency_key AS TEXT), CAST(:r_ok AS BOOLEAN),
         CAST(:r_outcome AS JSON)
  FROM run WHERE CAST(:r_key AS TEXT) IS NOT NULL
)
SELECT count(*) AS matched FROM run
"""

# ``latest_definition`` (EventStore.append): a newer version registered matches nothing,
# and the full path then raises DefinitionSupersededError.
_NOT_SUPERSEDED = f"""NOT (CAST(:w_latest AS BOOLEAN) AND EXISTS (
      SELECT 1 FROM {wf_definitions.name}
      WHERE tenant = CAST(:w_tenant AS VARCHAR)
        AND definition_id = CAST(:v_definition_id AS VARCHAR)
        AND version > CAST(:v_definition_version AS INTEGER)))"""

SINGLE_APPEND: Final[TextClause] = text(f"""
WITH run AS (
  UPDATE {wf_runs.name} SET
    {_SET},
    fencing_token = COALESCE(CAST(:w_token AS BIGINT), fencing_token)
  WHERE tenant = CAST(:w_tenant AS VARCHAR) AND run_id = CAST(:w_run_id AS VARCHAR)
    AND version = CAST(:w_expected AS INTEGER)
    AND (fencing_token IS NULL OR CAST(:w_token AS BIGINT) IS NULL
         OR fencing_token <= CAST(:w_token AS BIGINT))
    AND NOT EXISTS (SELECT 1 FROM {wf_action_results.name}
                    WHERE result_key = CAST(:r_key AS TEXT))
    AND {_NOT_SUPERSEDED}
  RETURNING 1
), clear_waits AS (
  DELETE FROM {wf_waits.name}
  WHERE tenant = CAST(:w_tenant AS VARCHAR) AND run_id = CAST(:w_run_id AS VARCHAR)
    AND EXISTS (SELECT 1 FROM run)
), clear_tasks AS (
  DELETE FROM {wf_human_tasks.name}
  WHERE tenant = CAST(:w_tenant AS VARCHAR) AND run_id = CAST(:w_run_id AS VARCHAR)
    AND EXISTS (SELECT 1 FROM run)
{_WRITES}""")
"""The common append to a run that exists (``expected_version > 0``)."""

_NAMES = ", ".join(name for name, _ in RUN_COLUMNS)
_VALUES = ", ".join(f"CAST(:v_{name} AS {kind})" for name, kind in RUN_COLUMNS)

SINGLE_CREATE: Final[TextClause] = text(f"""
WITH run AS (
  INSERT INTO {wf_runs.name} (tenant, run_id, {_NAMES}, fencing_token)
  SELECT CAST(:w_tenant AS VARCHAR), CAST(:w_run_id AS VARCHAR), {_VALUES}, CAST(:w_token AS BIGINT)
  WHERE {_NOT_SUPERSEDED}
  ON CONFLICT (tenant, run_id) DO NOTHING
  RETURNING 1
{_WRITES}""")
"""The start of a new run (``expected_version == 0``): its row, first events and messages.

A run id that is taken matches nothing (``ON CONFLICT DO NOTHING``) and writes nothing;
the full path then tells a retry of this very start from a conflict, as before.
"""


def run_params(run_row: dict[str, Any]) -> dict[str, Any]:
    """The run row's columns as ``v_<column>`` parameters, JSON columns as text."""
    return {f"v_{name}": json_text(run_row[name]) if name in _JSON_COLUMNS else run_row[name]
            for name, _ in RUN_COLUMNS}


def single_append_params(
    rows: list[dict[str, Any]], run_row: dict[str, Any], expected_version: int,
    outbox_rows: list[dict[str, Any]], result: dict[str, Any] | None,
    held_rows: list[dict[str, Any]] | None = None, release: list[str] | None = None,
    *, latest: bool = False,
) -> dict[str, Any]:
    """The parameters of ``SINGLE_APPEND``.

    Args:
        rows: Event rows (``_rows.event_row``).
        run_row: The run row (``_rows.run_row``).
        expected_version: The version the run must be at.
        outbox_rows: ``wf_outbox`` rows (message_id, message, created_at).
        result: The ledger row to insert (result_key, idempotency_key, ok, outcome), or
            None.
        held_rows: ``wf_held`` rows to insert (message_id, message, due_at).
        release: Message ids of held messages to drop.
        latest: The run's definition version must be the latest registered.
    """
    held_rows = held_rows or []
    params = run_params(run_row)
    params.update(
        w_tenant=run_row["tenant"], w_run_id=run_row["run_id"], w_expected=expected_version,
        w_token=run_row["fencing_token"], w_latest=latest,
        e_versions=[r["version"] for r in rows], e_types=[r["type"] for r in rows],
        e_ats=[r["at"] for r in rows], e_datas=[json_text(r["data"]) for r in rows],
        o_ids=[r["message_id"] for r in outbox_rows],
        o_messages=[json_text(r["message"]) for r in outbox_rows],
        o_created=[r["created_at"] for r in outbox_rows],
        h_ids=[r["message_id"] for r in held_rows],
        h_messages=[json_text(r["message"]) for r in held_rows],
        h_due=[r["due_at"] for r in held_rows], h_release=list(release or []),
        r_key=None, r_idempotency_key=None, r_ok=None, r_outcome=None,
    )
    if result is not None:
        params.update(r_key=result["result_key"], r_idempotency_key=result["idempotency_key"],
                      r_ok=result["ok"], r_outcome=json_text(result["outcome"]))
    return params
