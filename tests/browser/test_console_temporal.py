"""The console over a ``temporal://`` engine in Chromium: a run that no worker picks up is
shown with the ``no_worker`` stuck banner (DESIGN: a run nobody picks up is detected and
shown, never silent)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.apps.conftest import VAULT, run_async
from tests.browser.conftest import STUCK_AFTER_S, Server, console, serve
from tests.browser.test_console import open_run, wait_for
from tests.contract.temporal_fixtures import (
    DevServer,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
)
from wfadapters.temporal import TemporalEngine, TemporalSettings, build_worker
from wfapps.loading import load_package

pytestmark = pytest.mark.temporal


@pytest.fixture(scope="module")
def temporal_console(tmp_path_factory: pytest.TempPathFactory,
                     temporal_server: DevServer) -> Iterator[Server]:  # noqa: F811
    """``wf serve`` over a fresh task queue of the dev server, with no worker anywhere."""
    queue = f"console-{uuid.uuid4().hex[:8]}"
    url = (f"temporal://{temporal_server.target}/{temporal_server.namespace}"
           f"?task_queue={queue}")
    with serve(tmp_path_factory.mktemp("temporal-console"), worker=False,
               engine_url=url) as served:
        yield served


def start_after_the_last_worker_left(server: DevServer, queue: str) -> str:
    """Register the definitions while a worker polls ``queue``, stop it, start a run."""
    async def go() -> str:
        package = load_package(VAULT)
        settings = TemporalSettings(target=server.target, namespace=server.namespace,
                                    task_queue=queue)
        engine = await TemporalEngine.connect(settings, package.actions)
        async with build_worker(engine.client, package.actions, queue):
            for definition in package.definitions:
                await engine.register_definition("acme", definition)
        return (await engine.start_run("acme", "vault_access",
                                       {"user": "ravi", "token": "tok-SECRET-1"})).run_id

    return run_async(go())


def test_a_temporal_run_no_worker_picks_up_shows_the_no_worker_banner(
        browser: Browser, temporal_console: Server, temporal_server: DevServer,  # noqa: F811
        screenshots: Path) -> None:
    queue = temporal_console.engine_url.rsplit("task_queue=", 1)[1]
    run_id = start_after_the_last_worker_left(temporal_server, queue)
    shown = wait_for(temporal_console, run_id, lambda r: r.get("stuck") is not None,
                     "stuck on Temporal")
    assert (shown["stuck"]["kind"], shown["history_available"]) == ("no_worker", False)
    assert shown["stuck"]["idle_s"] > STUCK_AFTER_S
    with console(browser, temporal_console.base, temporal_console.key) as page:
        page.goto(page.url.split("#")[0] + "#/runs")
        badge = page.locator(f"tr.run-row[data-run-id='{run_id}'] .badge")
        expect(badge).to_have_attribute("data-kind", "no_worker")
        open_run(page, run_id)
        banner = page.locator("#stuck-banner")
        expect(banner).to_have_attribute("data-kind", "no_worker")
        expect(banner).to_contain_text(f"no worker serves task queue '{queue}'")
        expect(page.locator("#unserved-banner")).to_contain_text(
            f"cannot be read until a worker polls task queue {queue}")
        expect(page.locator("p .status")).to_have_text("running")
        page.screenshot(path=str(screenshots / "stuck-temporal.png"), full_page=True)
