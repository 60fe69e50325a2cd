"""Translating Temporal's errors, and quoting values into visibility queries."""

from __future__ import annotations

from wfdomain.errors import StorageUnavailableError

__all__ = ["quote", "unavailable"]


def quote(value: str) -> str:
    """A visibility-query string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unavailable(e: Exception) -> StorageUnavailableError:
    """The domain error for a Temporal call that failed (the server is the storage here)."""
    return StorageUnavailableError(f"Temporal: {type(e).__name__}: {e}")
