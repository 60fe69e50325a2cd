"""Alembic environment: runs on the connection ``migrate.upgrade`` hands over, never alone.

There is no ``alembic.ini``: ``wfadapters.sql.migrate`` configures Alembic in code, so the
migrations ship inside the package and run the same way from ``wf db upgrade`` and tests.
"""

from __future__ import annotations

from alembic import context

import wfadapters.sql.queue_schema
import wfadapters.sql.schema  # noqa: F401 - registers the tables on the metadata
from wfadapters.sql.metadata import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("apply the migrations with wfadapters.sql.migrate.upgrade (`wf db upgrade`)")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=context.config.attributes["version_table"],
    # SQLite cannot ALTER most things: future revisions use batch (copy-and-move) mode.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
