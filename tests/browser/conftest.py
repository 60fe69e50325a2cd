"""A real ``wf serve`` (SQLite, embedded worker) and Debian's Chromium driven by Playwright.

``server`` works its queue in-process and limits tenant ``quota`` to one active run;
``idle_server`` serves another SQLite file with no worker, so a run started there stays
where the test leaves it (for the lease-expired banner). Chromium is found with
``shutil.which("chromium")``; without it the tests skip, or fail under
``WF_REQUIRE_SERVICES=1``. Screenshots go to ``artifacts/screenshots/`` (or
``WF_SCREENSHOT_DIR``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.apps.conftest import VAULT, run_async
from tests.conftest import unavailable
from wfadapters.system import SystemClock
from wfapps import Settings
from wfapps.bootstrap import open_api_keys
from wfapps.keys import create_api_key

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
STUCK_AFTER_S = 1
QUOTA_TENANT = "quota"
"""The tenant ``server`` lets run one active run at a time (the others pause for quota)."""


@dataclass(frozen=True)
class Server:
    """A served console: its address, engine URL, an API key of tenant acme, the engine it
    may move runs to (move target ``other``), and API keys of further tenants."""

    base: str
    engine_url: str
    key: str
    other_url: str
    tenant_keys: dict[str, str] = field(default_factory=dict)

    def client(self, tenant: str = "acme") -> httpx.Client:
        key = self.key if tenant == "acme" else self.tenant_keys[tenant]
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {key}"},
                            timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"wf serve exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling the server's start with a deadline
    pytest.fail(f"wf serve did not become healthy: {log.read_text()}")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable("Debian's chromium is not installed (apt-get install -y chromium)")
    return path


@contextmanager
def serve(folder: Path, *, worker: bool, tenants: tuple[str, ...] = ("acme",),
          env: dict[str, str] | None = None, engine_url: str | None = None) -> Iterator[Server]:
    """Run ``wf serve`` until the block ends, over ``engine_url`` or a new SQLite file in
    ``folder`` (which then also holds the API keys: a ``temporal://`` engine keeps none)."""
    url = engine_url or f"sqlite:///{folder / 'wf.db'}"
    keys_url = url if engine_url is None else f"sqlite:///{folder / 'keys.db'}"
    other_url = f"sqlite:///{folder / 'other.db'}"

    async def make_keys() -> dict[str, str]:
        async with open_api_keys(Settings.from_url(keys_url)) as keys:
            return {tenant: (await create_api_key(keys, tenant, "browser tests",
                                                  SystemClock().now()))[1]
                    for tenant in tenants}

    made = run_async(make_keys())
    port = _free_port()
    log = folder / "serve.log"
    served_env = {**os.environ, "WF_ENGINE_URL": url, "WF_STUCK_AFTER_S": str(STUCK_AFTER_S),
                  **(env or {})}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "wf"), "serve", "--workflows", str(VAULT),
             "--port", str(port), *(["--worker"] if worker else []),
             *(["--keys-engine", keys_url] if keys_url != url else []),
             "--move-target", f"other={other_url}"],
            env=served_env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process, log)
        yield Server(base=base, engine_url=url, key=made["acme"], other_url=other_url,
                     tenant_keys=made)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    limits = f'{{"{QUOTA_TENANT}": 1}}'
    with serve(tmp_path_factory.mktemp("serve"), worker=True, tenants=("acme", QUOTA_TENANT),
               env={"WF_TENANT_MAX_ACTIVE_RUNS_JSON": limits}) as served:
        yield served


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("idle"), worker=False) as served:
        yield served


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


# A shared CI machine can be slow to render: expectations wait as long as page actions.
expect.set_options(timeout=15_000)


@contextmanager
def console(browser: Browser, base: str, key: str) -> Iterator[Page]:
    """A console page at ``base`` using the API key ``key``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.goto(f"{base}/console/")
    opened.fill("#api-key", key)
    opened.click("text=Use key")
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with console(browser, server.base, server.key) as opened:
        yield opened


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("WF_SCREENSHOT_DIR", ROOT / "artifacts" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
