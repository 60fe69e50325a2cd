"""The operator console in Chromium: runs, versions, redaction, replay, cancel, the stuck
banners (no worker, lease expired), a run paused for quota and the human-task inbox, over a
real ``wf serve`` on SQLite."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.apps.conftest import VAULT, run_async
from tests.browser.conftest import QUOTA_TENANT, Server, console
from wfapps import Settings, open_runtime
from wfapps.loading import load_package
from wfdomain.keys import run_lock_key

SECRET = "tok-SECRET-9876"


def start(server: Server, definition: str, run_input: Any,
          tenant: str = "acme") -> dict[str, Any]:
    with server.client(tenant) as client:
        response = client.post("/v1/runs", json={"definition_id": definition, "input": run_input})
        assert response.status_code == 201, response.text
        run: dict[str, Any] = response.json()
        return run


def wait_for(server: Server, run_id: str, predicate: Any, what: str,
             tenant: str = "acme") -> dict[str, Any]:
    deadline = time.monotonic() + 20
    with server.client(tenant) as client:
        while time.monotonic() < deadline:
            run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
            if predicate(run):
                return run
            time.sleep(0.05)  # polling the embedded worker's progress with a deadline
    raise AssertionError(f"run {run_id} never got {what}: {run}")


def stored_input(server: Server, run_id: str) -> Any:
    async def read() -> Any:
        async with open_runtime(Settings.from_url(server.engine_url),
                               load_package(VAULT).actions) as runtime:
            return (await runtime.history("acme", run_id))[0].data["input"]

    return run_async(read())


def open_run(page: Page, run_id: str) -> None:
    page.goto(page.url.split("#")[0] + f"#/run/{run_id}")
    expect(page.locator("#run-id")).to_have_text(run_id)


def test_list_open_a_run_move_through_versions_secret_redacted(
        page: Page, server: Server, screenshots: Path) -> None:
    run = start(server, "vault_access", {"user": "ada", "token": SECRET})
    version = wait_for(server, run["run_id"], lambda r: r["status"] == "waiting",
                       "to wait")["version"]
    page.goto(page.url.split("#")[0] + "#/runs")
    row = page.locator(f"tr.run-row[data-run-id='{run['run_id']}']")
    expect(row).to_be_visible()
    row.click()
    expect(page.locator("#run-id")).to_have_text(run["run_id"])
    expect(page.locator("#version-label")).to_have_text(f"version {version} of {version}")
    page.click("#version-prev")
    expect(page.locator("#version-label")).to_have_text(f"version {version - 1} of {version}")
    expect(page.locator("#state")).to_contain_text(f'"version": {version - 1}')
    page.locator("#version").fill("1")
    expect(page.locator("#state")).to_contain_text('"version": 1,')
    expect(page.locator("#state")).to_contain_text('"status": "running"')
    expect(page.locator("#input")).to_contain_text('"token": "***"')
    assert SECRET not in page.content()
    page.locator("tr.event-row").nth(2).click()  # an event row moves the state there
    expect(page.locator("#version-label")).to_have_text(f"version 3 of {version}")
    expect(page.locator("#state")).to_contain_text('"version": 3,')
    page.screenshot(path=str(screenshots / "run.png"), full_page=True)


def test_replay_unedited_lands_on_a_new_run_with_the_original_input(
        page: Page, server: Server, screenshots: Path) -> None:
    original = {"user": "grace", "token": SECRET}
    run = start(server, "vault_access", original)
    wait_for(server, run["run_id"], lambda r: r["status"] == "waiting", "to wait")
    open_run(page, run["run_id"])
    page.click("#replay")
    expect(page.locator("#replay-input")).to_contain_text('"token": "***"')
    page.screenshot(path=str(screenshots / "replay.png"), full_page=True)
    page.click("#replay-start")
    expect(page.locator("#run-id")).not_to_have_text(run["run_id"])
    new_id = page.locator("#run-id").inner_text()
    expect(page.locator("#message")).to_contain_text(f"replay of {run['run_id']}")
    assert stored_input(server, new_id) == original


def test_cancel_a_waiting_run_reports_what_the_engine_did(page: Page, server: Server) -> None:
    run = start(server, "vault_wait", {"order": "o-cancel", "card": "4111-2222"})
    wait_for(server, run["run_id"], lambda r: r["status"] == "waiting", "to wait")
    open_run(page, run["run_id"])
    page.click("#cancel")
    expect(page.locator("#message")).to_have_text(f"The engine cancelled run {run['run_id']}.")
    expect(page.locator("p .status")).to_have_text("cancelled")
    expect(page.locator("#cancel")).to_have_count(0)


def test_a_run_no_worker_serves_shows_the_stuck_banner(
        page: Page, server: Server, screenshots: Path) -> None:
    async def start_elsewhere() -> str:
        package = load_package(VAULT)
        settings = Settings.from_url(server.engine_url + "?queue=nobody")
        async with open_runtime(settings, package.actions) as producer:
            await producer.register_definition("acme", package.main)
            return (await producer.start_run("acme", "vault_access",
                                             {"user": "lin", "token": SECRET})).run_id

    run_id = run_async(start_elsewhere())
    wait_for(server, run_id, lambda r: r["stuck"] is not None, "stuck")
    open_run(page, run_id)
    banner = page.locator("#stuck-banner")
    expect(banner).to_have_attribute("data-kind", "no_worker")
    expect(banner).to_contain_text("no worker serves queue 'nobody'")
    page.screenshot(path=str(screenshots / "stuck.png"), full_page=True)


def test_a_human_task_decided_in_the_inbox_lets_the_run_finish(
        page: Page, server: Server, screenshots: Path) -> None:
    run = start(server, "vault_access", {"user": "kim", "token": SECRET})
    wait_for(server, run["run_id"], lambda r: r["status"] == "waiting", "to wait")
    page.goto(page.url.split("#")[0] + "#/inbox?assignee=ops@example.com")
    card = page.locator(f".task[data-task-id^='{run['run_id']}']")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Grant vault access")
    page.screenshot(path=str(screenshots / "inbox.png"), full_page=True)
    card.locator("button[data-outcome='grant']").click()
    expect(page.locator("#message")).to_contain_text("DECISION_INVALID")
    card.locator("input[name='comment']").fill("approved for the audit")
    card.locator("input[name='days']").fill("3")
    card.locator("button[data-outcome='grant']").click()
    expect(page.locator("#message")).to_contain_text(re.compile("accepted; the run resumes"))
    done = wait_for(server, run["run_id"], lambda r: r["status"] == "completed", "to complete")
    assert done["output"] == {"user": "kim", "outcome": "grant", "granted": True}
    open_run(page, run["run_id"])
    expect(page.locator("p .status")).to_have_text("completed")
    page.goto(page.url.split("#")[0] + "#/runs")  # every test's runs are listed by now
    expect(page.locator(f"tr.run-row[data-run-id='{run['run_id']}']")).to_be_visible()
    page.screenshot(path=str(screenshots / "runs.png"), full_page=True)
    page.select_option("#filter-status", "completed")
    page.click("text=Filter")
    expect(page.locator("tr.run-row")).to_have_count(1)
    expect(page.locator("tr.run-row .status")).to_have_text("completed")
    page.fill("#filter-definition", "vault_wait")
    page.click("text=Filter")
    expect(page.locator("tr.run-row")).to_have_count(0)


def test_move_a_waiting_run_to_another_engine(
        page: Page, server: Server, screenshots: Path) -> None:
    run = start(server, "vault_wait", {"order": "o-move", "card": "4111-3333"})
    wait_for(server, run["run_id"], lambda r: r["status"] == "waiting", "to wait")
    open_run(page, run["run_id"])
    page.once("dialog", lambda dialog: dialog.accept())
    page.select_option("#move-target", "other")
    page.click("#move")
    expect(page.locator("#moved-banner")).to_contain_text(
        f"now executes on sqlite/default at {server.other_url}")
    expect(page.locator("p .status")).to_have_text("moved")
    expect(page.locator("#cancel")).to_have_count(0)
    page.screenshot(path=str(screenshots / "moved.png"), full_page=True)

    async def on_other() -> str:
        async with open_runtime(Settings.from_url(server.other_url),
                               load_package(VAULT).actions) as other:
            return (await other.get_run("acme", run["run_id"])).status

    assert run_async(on_other()) == "waiting"


def test_a_run_over_the_tenant_limit_is_paused_for_quota_until_a_slot_frees(
        browser: Browser, server: Server, screenshots: Path) -> None:
    active = start(server, "vault_wait", {"order": "o-q1", "card": "4111-4444"}, QUOTA_TENANT)
    wait_for(server, active["run_id"], lambda r: r["status"] == "waiting", "to wait",
             QUOTA_TENANT)
    paused = start(server, "vault_wait", {"order": "o-q2", "card": "4111-5555"}, QUOTA_TENANT)
    assert paused["status"] == "paused_for_quota"
    with console(browser, server.base, server.tenant_keys[QUOTA_TENANT]) as page:
        page.goto(page.url.split("#")[0] + "#/runs?status=paused_for_quota")
        expect(page.locator("tr.run-row")).to_have_count(1)
        row = page.locator(f"tr.run-row[data-run-id='{paused['run_id']}']")
        expect(row.locator(".status")).to_have_text("paused for quota")
        row.click()
        expect(page.locator("#run-id")).to_have_text(paused["run_id"])
        expect(page.locator("p .status")).to_have_text("paused for quota")
        expect(page.locator("#quota-banner")).to_contain_text(
            "Paused for quota: this tenant is at its limit of active runs")
        page.screenshot(path=str(screenshots / "paused.png"), full_page=True)

        # The active run ends: its slot goes to the paused run, which starts and waits.
        open_run(page, active["run_id"])
        page.click("#cancel")
        expect(page.locator("#message")).to_have_text(
            f"The engine cancelled run {active['run_id']}.")
        wait_for(server, paused["run_id"], lambda r: r["status"] == "waiting", "admitted",
                 QUOTA_TENANT)
        open_run(page, paused["run_id"])
        expect(page.locator("p .status")).to_have_text("waiting")
        expect(page.locator("#quota-banner")).to_have_count(0)


def test_a_run_whose_worker_died_mid_message_shows_the_lease_expired_banner(
        browser: Browser, idle_server: Server, screenshots: Path) -> None:
    # No worker serves this server's queue: the run stays running, its message unprocessed.
    run = start(idle_server, "vault_access", {"user": "noor", "token": SECRET})
    assert run["status"] == "running"

    async def die_holding_the_lease() -> None:
        # What a worker does before processing the run's message, then dies: it never
        # releases, and its short lease runs out.
        async with open_runtime(Settings.from_url(idle_server.engine_url),
                               load_package(VAULT).actions) as runtime:
            lease = await runtime.ports.lock.acquire(run_lock_key("acme", run["run_id"]),
                                                     "worker-dead",
                                                     ttl=timedelta(milliseconds=200))
            assert lease is not None

    run_async(die_holding_the_lease())
    shown = wait_for(idle_server, run["run_id"],
                     lambda r: r["stuck"] is not None and r["stuck"]["kind"] == "lease_expired",
                     "stuck with lease_expired")
    assert shown["stuck"]["details"]["holder"] == "worker-dead"
    with console(browser, idle_server.base, idle_server.key) as page:
        page.goto(page.url.split("#")[0] + "#/runs")
        badge = page.locator(f"tr.run-row[data-run-id='{run['run_id']}'] .badge")
        expect(badge).to_have_attribute("data-kind", "lease_expired")
        open_run(page, run["run_id"])
        banner = page.locator("#stuck-banner")
        expect(banner).to_have_attribute("data-kind", "lease_expired")
        expect(banner).to_contain_text("Stuck: lease expired (its worker died mid-message).")
        expect(banner).to_contain_text(
            f"(holder worker-dead, lease expired at {shown['stuck']['details']['expired_at']})")
        expect(page.locator("p .status")).to_have_text("running")
        page.screenshot(path=str(screenshots / "lease-expired.png"), full_page=True)
