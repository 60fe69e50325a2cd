"""Tables of the SQL event store (events, runs, snapshots, definitions, ledger, audit).

One schema for both dialects. Times are integer microseconds since the Unix epoch, UTC:
SQLite has no timezone-aware type, and integers compare and sort the same everywhere.
JSON columns are JSON text on both dialects: documents read back exactly as written.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from wfadapters.sql.metadata import metadata
from wfadapters.sql.types import Json, Position

__all__ = [
    "wf_action_results",
    "wf_api_keys",
    "wf_audit",
    "wf_definitions",
    "wf_events",
    "wf_human_tasks",
    "wf_runs",
    "wf_snapshots",
    "wf_waits",
]

_Id = String(200)

wf_events = Table(
    "wf_events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("tenant", _Id, nullable=False),
    Column("run_id", _Id, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(100), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("data", Json, nullable=False),
    # The optimistic-concurrency backstop: two writers racing to create the same run (no
    # runs row to lock yet) cannot both store a version; the loser gets a unique violation.
    UniqueConstraint("tenant", "run_id", "version"),
    sqlite_autoincrement=True,
)

wf_runs = Table(
    "wf_runs",
    metadata,
    Column("tenant", _Id, primary_key=True),
    Column("run_id", _Id, primary_key=True),
    Column("definition_id", _Id, nullable=False),
    Column("definition_version", Integer, nullable=False),
    Column("definition_hash", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("engine", String(100), nullable=False),
    Column("queue", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_progress_at", BigInteger, nullable=False),
    Column("next_due_at", BigInteger, nullable=True),
    Column("parent_run_id", _Id, nullable=True),
    Column("replay_of", _Id, nullable=True),
    Column("error", Json, nullable=True),
    # The projection's waits and tasks as given (order kept); wf_waits and wf_human_tasks
    # index the same values for lookups.
    Column("waits", Json, nullable=False),
    Column("human_tasks", Json, nullable=False),
    Column("fencing_token", BigInteger, nullable=True),
)
Index("ix_wf_runs_tenant_created_at_run_id", wf_runs.c.tenant, wf_runs.c.created_at,
      wf_runs.c.run_id)
Index("ix_wf_runs_tenant_status", wf_runs.c.tenant, wf_runs.c.status)
Index("ix_wf_runs_tenant_next_due_at", wf_runs.c.tenant, wf_runs.c.next_due_at)

wf_waits = Table(
    "wf_waits",
    metadata,
    # Primary key order serves find_waits: (tenant, event, key) prefix, run id next.
    Column("tenant", _Id, primary_key=True),
    Column("event_name", _Id, primary_key=True),
    Column("correlation_key", String(500), primary_key=True),
    Column("run_id", _Id, primary_key=True),
    Column("step_key", String(500), primary_key=True),
)
Index("ix_wf_waits_tenant_run_id", wf_waits.c.tenant, wf_waits.c.run_id)

wf_human_tasks = Table(
    "wf_human_tasks",
    metadata,
    # A task id is unique per tenant, whichever run holds it.
    Column("tenant", _Id, primary_key=True),
    Column("task_id", _Id, primary_key=True),
    Column("run_id", _Id, nullable=False),
    Column("step_key", String(500), nullable=False),
    Column("title", String(1000), nullable=False),
    Column("assignee", _Id, nullable=True),
    Column("outcomes", Json, nullable=False),
    Column("form_schema", Json, nullable=True),
    Column("deadline", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("overdue", Boolean, nullable=False),
)
Index("ix_wf_human_tasks_tenant_run_id", wf_human_tasks.c.tenant, wf_human_tasks.c.run_id)
Index("ix_wf_human_tasks_tenant_assignee", wf_human_tasks.c.tenant, wf_human_tasks.c.assignee)

wf_snapshots = Table(
    "wf_snapshots",
    metadata,
    Column("tenant", _Id, primary_key=True),
    Column("run_id", _Id, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("state", Json, nullable=False),
)

wf_definitions = Table(
    "wf_definitions",
    metadata,
    Column("tenant", _Id, primary_key=True),
    Column("definition_id", _Id, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content_hash", String(200), nullable=False),
    Column("document", Json, nullable=False),
)

wf_action_results = Table(
    "wf_action_results",
    metadata,
    Column("result_key", String(500), primary_key=True),
    Column("idempotency_key", String(500), nullable=False),
    Column("ok", Boolean, nullable=False),
    # The whole outcome (output and error) as one JSON document, so that a JSON null
    # output and an absent one cannot be confused.
    Column("outcome", Json, nullable=False),
)

wf_audit = Table(
    "wf_audit",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("tenant", _Id, nullable=False),
    Column("kind", String(100), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("run_id", _Id, nullable=True),
    Column("data", Json, nullable=False),
    sqlite_autoincrement=True,
)
Index("ix_wf_audit_tenant_position", wf_audit.c.tenant, wf_audit.c.position)
Index("ix_wf_audit_tenant_kind_position", wf_audit.c.tenant, wf_audit.c.kind,
      wf_audit.c.position)

# API keys of the HTTP API: the SHA-256 of each key, never the key itself.
wf_api_keys = Table(
    "wf_api_keys",
    metadata,
    Column("key_id", _Id, primary_key=True),
    Column("tenant", _Id, nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)
Index("ix_wf_api_keys_tenant", wf_api_keys.c.tenant)
