"""Store JSON as text on Postgres (``json``, not ``jsonb``), so documents read back as written.

JSONB re-orders object keys. JSON gives them no meaning, but JSONata does (``$keys``,
``$each``, ``$string``) and so does the interpreter's iteration over a snapshot's waits and
timers: a run loaded from Postgres could decide differently from the same run on another
backend or from the worker's cached state. ``json`` keeps the text verbatim. Rows written
before this revision keep the order JSONB gave them.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = {
    "wf_action_results": ("outcome",),
    "wf_audit": ("data",),
    "wf_definitions": ("document",),
    "wf_events": ("data",),
    "wf_human_tasks": ("outcomes", "form_schema"),
    "wf_runs": ("error", "waits", "human_tasks"),
    "wf_scheduled": ("message",),
    "wf_snapshots": ("state",),
    "wf_stream": ("body",),
    "wf_outbox": ("message",),
}


def _alter(to: str) -> None:
    if op.get_context().dialect.name != "postgresql":
        return  # SQLite stores JSON as text already
    for table, columns in _COLUMNS.items():
        for column in columns:
            # asyncpg runs each statement as a prepared statement: one ALTER per call.
            op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE {to} '
                       f'USING "{column}"::{to}')


def upgrade() -> None:
    """Change every JSONB column to JSON text."""
    _alter("json")


def downgrade() -> None:
    """Change them back to JSONB."""
    _alter("jsonb")
