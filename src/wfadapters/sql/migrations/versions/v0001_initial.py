"""Create every table: event store, stream, lock and scheduler.

Generated from ``wfadapters.sql.metadata`` (schema.py and queue_schema.py) and then frozen:
later schema changes go in new revisions, never here.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the schema's column types (a migration must not change with schema.py).
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tables and indexes."""
    op.create_table(
        "wf_action_results",
        sa.Column("result_key", sa.String(length=500), nullable=False),
        sa.Column("idempotency_key", sa.String(length=500), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("outcome", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("result_key", name=op.f("pk_wf_action_results")),
    )
    op.create_table(
        "wf_audit",
        sa.Column("position", _POSITION, autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column("data", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_wf_audit")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_wf_audit_tenant_kind_position", "wf_audit", ["tenant", "kind", "position"], unique=False
    )
    op.create_index("ix_wf_audit_tenant_position", "wf_audit", ["tenant", "position"], unique=False)
    op.create_table(
        "wf_definitions",
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("definition_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=200), nullable=False),
        sa.Column("document", _JSON, nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant", "definition_id", "version", name=op.f("pk_wf_definitions")
        ),
    )
    op.create_table(
        "wf_events",
        sa.Column("position", _POSITION, autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("data", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_wf_events")),
        sa.UniqueConstraint(
            "tenant", "run_id", "version", name=op.f("uq_wf_events_tenant_run_id_version")
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "wf_human_tasks",
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("task_id", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("step_key", sa.String(length=500), nullable=False),
        sa.Column("title", sa.String(length=1000), nullable=False),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("outcomes", _JSON, nullable=False),
        sa.Column("form_schema", _JSON, nullable=True),
        sa.Column("deadline", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "task_id", name=op.f("pk_wf_human_tasks")),
    )
    op.create_index(
        "ix_wf_human_tasks_tenant_assignee", "wf_human_tasks", ["tenant", "assignee"], unique=False
    )
    op.create_index(
        "ix_wf_human_tasks_tenant_run_id", "wf_human_tasks", ["tenant", "run_id"], unique=False
    )
    op.create_table(
        "wf_leases",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_wf_leases")),
    )
    op.create_table(
        "wf_runs",
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("definition_id", sa.String(length=200), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("definition_hash", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("engine", sa.String(length=100), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_progress_at", sa.BigInteger(), nullable=False),
        sa.Column("next_due_at", sa.BigInteger(), nullable=True),
        sa.Column("parent_run_id", sa.String(length=200), nullable=True),
        sa.Column("replay_of", sa.String(length=200), nullable=True),
        sa.Column("error", _JSON, nullable=True),
        sa.Column("waits", _JSON, nullable=False),
        sa.Column("human_tasks", _JSON, nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "run_id", name=op.f("pk_wf_runs")),
    )
    op.create_index(
        "ix_wf_runs_tenant_created_at_run_id",
        "wf_runs",
        ["tenant", "created_at", "run_id"],
        unique=False,
    )
    op.create_index(
        "ix_wf_runs_tenant_next_due_at", "wf_runs", ["tenant", "next_due_at"], unique=False
    )
    op.create_index("ix_wf_runs_tenant_status", "wf_runs", ["tenant", "status"], unique=False)
    op.create_table(
        "wf_scheduled",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=False),
        sa.Column("message", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_wf_scheduled")),
    )
    op.create_index("ix_wf_scheduled_due_at_key", "wf_scheduled", ["due_at", "key"], unique=False)
    op.create_table(
        "wf_snapshots",
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "run_id", "version", name=op.f("pk_wf_snapshots")),
    )
    op.create_table(
        "wf_stream",
        sa.Column("position", _POSITION, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column("body", _JSON, nullable=False),
        sa.Column("published_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_wf_stream")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "wf_stream_dead",
        sa.Column("group_name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("delivery_count", sa.Integer(), nullable=False),
        sa.Column("dead_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("group_name", "position", name=op.f("pk_wf_stream_dead")),
    )
    op.create_table(
        "wf_stream_groups",
        sa.Column("group_name", sa.String(length=200), nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("group_name", name=op.f("pk_wf_stream_groups")),
    )
    op.create_table(
        "wf_stream_pending",
        sa.Column("group_name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("delivery_count", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("group_name", "position", name=op.f("pk_wf_stream_pending")),
    )
    op.create_table(
        "wf_waits",
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("event_name", sa.String(length=200), nullable=False),
        sa.Column("correlation_key", sa.String(length=500), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("step_key", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant",
            "event_name",
            "correlation_key",
            "run_id",
            "step_key",
            name=op.f("pk_wf_waits"),
        ),
    )
    op.create_index("ix_wf_waits_tenant_run_id", "wf_waits", ["tenant", "run_id"], unique=False)


def downgrade() -> None:
    """Drop everything ``upgrade`` created."""
    op.drop_index("ix_wf_waits_tenant_run_id", table_name="wf_waits")
    op.drop_table("wf_waits")
    op.drop_table("wf_stream_pending")
    op.drop_table("wf_stream_groups")
    op.drop_table("wf_stream_dead")
    op.drop_table("wf_stream")
    op.drop_table("wf_snapshots")
    op.drop_index("ix_wf_scheduled_due_at_key", table_name="wf_scheduled")
    op.drop_table("wf_scheduled")
    op.drop_index("ix_wf_runs_tenant_status", table_name="wf_runs")
    op.drop_index("ix_wf_runs_tenant_next_due_at", table_name="wf_runs")
    op.drop_index("ix_wf_runs_tenant_created_at_run_id", table_name="wf_runs")
    op.drop_table("wf_runs")
    op.drop_table("wf_leases")
    op.drop_index("ix_wf_human_tasks_tenant_run_id", table_name="wf_human_tasks")
    op.drop_index("ix_wf_human_tasks_tenant_assignee", table_name="wf_human_tasks")
    op.drop_table("wf_human_tasks")
    op.drop_table("wf_events")
    op.drop_table("wf_definitions")
    op.drop_index("ix_wf_audit_tenant_position", table_name="wf_audit")
    op.drop_index("ix_wf_audit_tenant_kind_position", table_name="wf_audit")
    op.drop_table("wf_audit")
    op.drop_table("wf_action_results")
