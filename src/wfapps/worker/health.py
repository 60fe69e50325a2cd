"""The health and metrics endpoint: a minimal HTTP/1.1 server on asyncio, loopback only.

``GET /healthz`` answers 200 with a JSON status while the worker serves, 503 while it
drains or when a consumer died; ``GET /metrics`` answers the Prometheus text format.
No web framework: the worker must not need one, and two routes do not justify it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["HealthServer"]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """Serve ``/healthz`` and ``/metrics``.

    Args:
        status: Returns ``(healthy, details)`` for ``/healthz``.
        metrics: Returns the metrics text for ``/metrics``.
    """

    def __init__(self, status: Callable[[], tuple[bool, dict[str, Any]]],
                 metrics: Callable[[], bytes]) -> None:
        self._status = status
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); return the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed
            parts = request.decode("latin-1").split()
            code, body, content_type = self._answer(parts[:2])
            head = (f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass  # a broken probe must not disturb the worker
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, request: list[str]) -> tuple[int, bytes, str]:
        if len(request) != 2:
            return 405, b"", "text/plain"
        method, path = request
        if method != "GET":
            return 405, b"", "text/plain"
        path = path.split("?", 1)[0]
        if path == "/healthz":
            healthy, details = self._status()
            return (200 if healthy else 503), json.dumps(details).encode(), "application/json"
        if path == "/metrics":
            return 200, self._metrics(), CONTENT_TYPE_LATEST
        return 404, b"", "text/plain"
