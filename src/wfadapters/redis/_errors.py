"""Redis exceptions become domain errors here, once, at the boundary (with ``from e``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis import exceptions as redis_exc

from wfdomain.errors import StorageUnavailableError, WorkflowEngineError

__all__ = ["translated"]


@asynccontextmanager
async def translated(address: str) -> AsyncIterator[None]:
    """Map redis-py failures to ``StorageUnavailableError`` (retryable), with the address.

    Lost or refused connections, timeouts and a server still loading its data are
    transient. Any other Redis error (a script error, a wrong type) is reported the same
    way but names the command error, so an operator sees it; retrying it is harmless.
    """
    try:
        yield
    except WorkflowEngineError:
        raise
    except (redis_exc.ConnectionError, redis_exc.TimeoutError, redis_exc.BusyLoadingError,
            OSError) as e:
        raise StorageUnavailableError(f"redis at {address} is unavailable: {e}",
                                      details={"address": address}) from e
    except redis_exc.RedisError as e:
        raise StorageUnavailableError(f"redis at {address} failed a command: {e}",
                                      details={"address": address,
                                               "error": type(e).__name__}) from e
