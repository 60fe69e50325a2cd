"""Add ``wf_held``: messages a worker handles in place, published only if it does not.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the held-messages table and its index on the release time."""
    op.create_table(
        "wf_held",
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_wf_held")),
    )
    op.create_index("ix_wf_held_due_at", "wf_held", ["due_at"])


def downgrade() -> None:
    """Drop the held-messages table."""
    op.drop_index("ix_wf_held_due_at", table_name="wf_held")
    op.drop_table("wf_held")
