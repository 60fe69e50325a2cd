"""An API over a real engine for the tests: keys for two tenants, a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from tests.apps.conftest import VAULT
from wfadapters.memory import ManualClock
from wfapps import Settings, open_runtime
from wfapps.api import ApiOptions, create_app
from wfapps.bootstrap import open_api_keys
from wfapps.keys import create_api_key
from wfapps.loading import load_package
from wfdomain.runtime import Runtime, RuntimeSettings

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STUCK_AFTER = timedelta(minutes=5)
MAX_BODY = 4096


@dataclass
class Api:
    """A client per tenant over one engine."""

    runtime: Runtime
    clock: ManualClock
    acme: httpx.AsyncClient
    globex: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    revoked_key: str
    url: str


@asynccontextmanager
async def open_api(url: str, *, move_targets: dict[str, str] | None = None
                   ) -> AsyncIterator[Api]:
    """Open the engine at ``url``, make keys for tenants acme and globex, serve the app."""
    package = load_package(VAULT)
    clock = ManualClock(T0)
    options = RuntimeSettings(stuck_after=STUCK_AFTER)
    settings = Settings.from_url(url)
    async with open_runtime(settings, package.actions, clock=clock, options=options) as runtime, \
            open_api_keys(settings) as keys:
        _, acme = await create_api_key(keys, "acme", "tests", T0)
        _, globex = await create_api_key(keys, "globex", "tests", T0)
        old, revoked = await create_api_key(keys, "acme", "old", T0)
        await keys.revoke_key(old.key_id, at=T0)
        app = create_app(runtime, keys, definitions=package.definitions,
                         options=ApiOptions(max_body_bytes=MAX_BODY,
                                            move_targets=move_targets or {}))
        transport = httpx.ASGITransport(app=app)

        def client(key: str | None) -> httpx.AsyncClient:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return httpx.AsyncClient(transport=transport, base_url="http://test",
                                     headers=headers)

        async with client(acme) as a, client(globex) as g, client(None) as anon:
            yield Api(runtime=runtime, clock=clock, acme=a, globex=g, anonymous=anon,
                      revoked_key=revoked, url=url)
