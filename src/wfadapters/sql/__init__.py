"""SQL backends (SQLite and Postgres) through SQLAlchemy Core async."""
