"""Driver exceptions become domain errors here, once, at the boundary (with ``from e``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from wfdomain.errors import ErrorCode, StorageUnavailableError, WorkflowEngineError

__all__ = ["SchemaOutdatedError", "StorageCorruptError", "is_unique_violation", "translated"]


class StorageCorruptError(WorkflowEngineError):
    """The database file is not a database, or not this engine's (not retryable)."""

    default_code = ErrorCode.STORAGE_CORRUPT


class SchemaOutdatedError(WorkflowEngineError):
    """The database schema is not the one this engine version needs (run the migrations)."""

    default_code = ErrorCode.SCHEMA_OUTDATED


_CORRUPT = ("file is not a database", "database disk image is malformed")
_UNAVAILABLE = ("database is locked", "unable to open database", "connection", "timeout",
                "could not connect", "terminating", "closed", "refused")


def is_unique_violation(error: BaseException) -> bool:
    """Whether a driver error is a unique-constraint violation (on either dialect)."""
    text = str(getattr(error, "orig", error)).lower()
    return isinstance(error, sa_exc.IntegrityError) and ("unique" in text or "duplicate" in text)


@contextmanager
def translated(address: str) -> Iterator[None]:
    """Map driver failures: lost or refused connections are retryable, with the address."""
    try:
        yield
    except WorkflowEngineError:
        raise
    except sa_exc.IntegrityError:
        # A constraint violation is the adapters' to interpret (a lost race, a taken id);
        # its message quotes stored values, which must not be mistaken for the markers.
        raise
    except sa_exc.DBAPIError as e:
        text = str(e.orig).lower() if e.orig is not None else str(e).lower()
        if any(marker in text for marker in _CORRUPT):
            raise StorageCorruptError(f"{address}: {e.orig}",
                                      details={"address": address}) from e
        if e.connection_invalidated or isinstance(e, (sa_exc.OperationalError,
                                                      sa_exc.InterfaceError)) or any(
                marker in text for marker in _UNAVAILABLE):
            raise StorageUnavailableError(f"{address} is unavailable: {e.orig}",
                                          details={"address": address}) from e
        raise
    except (OSError, ConnectionError) as e:
        raise StorageUnavailableError(f"{address} is unavailable: {e}",
                                      details={"address": address}) from e
