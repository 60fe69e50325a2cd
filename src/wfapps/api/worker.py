"""An in-process worker for ``wf serve --worker``: the embedded, one-process deployment."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from wfdomain.runtime import Runtime

__all__ = ["drive"]

_log = logging.getLogger("wfapps.api.worker")


async def drive(runtime: Runtime, stop: asyncio.Event, *, idle_s: float = 0.1) -> None:
    """Work the runtime's queue until ``stop`` is set, pausing ``idle_s`` when idle."""
    while not stop.is_set():
        try:
            handled = await runtime.run_until_idle()
        except Exception:
            # A storage hiccup must not end the worker: log it, pause, go on.
            _log.exception("worker round failed")
            handled = 0
        if not handled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle_s)
