"""``create_app``: the HTTP API (and the operator console) over an engine given to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from wfapps.api import routes_runs, routes_work
from wfapps.api.errors import install_error_handlers
from wfapps.api.limits import BodyLimit
from wfapps.api.services import ApiOptions, Services
from wfapps.api.worker import drive
from wfapps.views import placement
from wfdomain.actions import ActionRegistry
from wfdomain.definition import Definition
from wfdomain.engine import Engine
from wfdomain.ports import ApiKeyStore
from wfdomain.runtime import Runtime

__all__ = ["CONSOLE_DIR", "create_app"]

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"


def create_app(
    engine: Engine,
    keys: ApiKeyStore,
    *,
    actions: ActionRegistry | None = None,
    definitions: Sequence[Definition] = (),
    options: ApiOptions | None = None,
    embedded_worker: bool = False,
) -> FastAPI:
    """Build the API over an open engine; nothing connects or starts here.

    Args:
        engine: An open engine (``wfapps.bootstrap.open_engine``): local or Temporal.
        keys: Where API keys are looked up.
        actions: The actions of the served definitions, which a move target checks
            (default: a local runtime's own).
        definitions: The definitions runs may be started of; they are registered for a
            tenant on its first start. Their actions must be in ``engine.actions``.
        options: Limits and switches (``ApiOptions``).
        embedded_worker: Also work a local engine's queue in this process while serving
            (a Temporal engine's worker comes with ``open_engine(embedded_worker=True)``).
    """
    opts = options or ApiOptions()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not embedded_worker or not isinstance(engine, Runtime):
            yield
            return
        stop = asyncio.Event()
        task = asyncio.create_task(drive(engine, stop))
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="wfengine", version="1", lifespan=lifespan,
                  description="Start and control workflow runs. Every error is "
                              '`{"error": {"code", "message", "path", "details"}}`.')
    if actions is None:
        actions = engine.actions if isinstance(engine, Runtime) else ActionRegistry()
    app.state.services = Services(engine=engine, actions=actions, keys=keys,
                                  catalog=tuple(definitions), options=opts)
    install_error_handlers(app)
    app.include_router(routes_runs.router)
    app.include_router(routes_work.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness (no API key needed)."""
        name, queue = placement(engine)
        return {"status": "ok", "engine": name, "queue": queue}

    if opts.console:
        @app.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse("/console/")

        app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    app.add_middleware(BodyLimit, max_bytes=opts.max_body_bytes)
    return app
