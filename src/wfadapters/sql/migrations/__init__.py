"""Alembic migrations of the SQL schema, applied by ``wfadapters.sql.migrate.upgrade``."""
