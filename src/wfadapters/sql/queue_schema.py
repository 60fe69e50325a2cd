"""Tables of the SQL stream, lock and scheduler."""
