"""A real ``wf serve`` (SQLite, embedded worker) and Debian's Chromium driven by Playwright.

Chromium is found with ``shutil.which("chromium")``; without it the tests skip, or fail
under ``WF_REQUIRE_SERVICES=1``. Screenshots go to ``artifacts/screenshots/`` (or
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
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

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


@dataclass(frozen=True)
class Server:
    """A served console: its address, engine URL, an API key of tenant acme, and the
    engine it may move runs to (move target ``other``)."""

    base: str
    engine_url: str
    key: str
    other_url: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"},
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{folder / 'wf.db'}"
    other_url = f"sqlite:///{folder / 'other.db'}"

    async def make_key() -> str:
        async with open_api_keys(Settings.from_url(url)) as keys:
            return (await create_api_key(keys, "acme", "browser tests", SystemClock().now()))[1]

    key = run_async(make_key())
    port = _free_port()
    log = folder / "serve.log"
    env = {**os.environ, "WF_ENGINE_URL": url, "WF_STUCK_AFTER_S": str(STUCK_AFTER_S)}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "wf"), "serve", "--workflows", str(VAULT),
             "--port", str(port), "--worker", "--move-target", f"other={other_url}"],
            env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process, log)
        yield Server(base=base, engine_url=url, key=key, other_url=other_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.goto(f"{server.base}/console/")
    opened.fill("#api-key", server.key)
    opened.click("text=Use key")
    yield opened
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("WF_SCREENSHOT_DIR", ROOT / "artifacts" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
