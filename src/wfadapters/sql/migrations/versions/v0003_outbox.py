"""Add ``wf_outbox``: messages recorded with their append, relayed to Redis.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the outbox table."""
    op.create_table(
        "wf_outbox",
        sa.Column("position", _POSITION, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("message", _JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_wf_outbox")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    """Drop the outbox table."""
    op.drop_table("wf_outbox")
