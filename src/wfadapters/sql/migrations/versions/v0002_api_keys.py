"""Add ``wf_api_keys``: the HTTP API's per-tenant keys, stored as SHA-256 hashes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table and its tenant index."""
    op.create_table(
        "wf_api_keys",
        sa.Column("key_id", sa.String(length=200), nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_wf_api_keys")),
    )
    op.create_index("ix_wf_api_keys_tenant", "wf_api_keys", ["tenant"], unique=False)


def downgrade() -> None:
    """Drop the table."""
    op.drop_index("ix_wf_api_keys_tenant", table_name="wf_api_keys")
    op.drop_table("wf_api_keys")
