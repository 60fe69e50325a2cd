"""A peer running in its own process, driven one repetition at a time over JSON lines.

Peers that keep process-wide state (DBOS launches one instance per process) run in a child
process of the benchmark's own interpreter. The harness sends one command per repetition,
between the engine's repetitions, so both sides see the same machine state.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any


class PeerProcess:
    """``python -m MODULE ARGS...``, answering one JSON line per JSON line sent."""

    def __init__(self, module: str, *args: str, log: Path, python: str = sys.executable,
                 cwd: Path | None = None) -> None:
        self.command = [python, "-m", module, *args]
        self.log = log
        self.cwd = cwd or Path.cwd()
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, *, timeout_s: float = 60.0) -> None:
        with self.log.open("ab") as err:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, cwd=self.cwd, limit=16 * 1024 * 1024,
            )
        ready = await self._read(timeout_s)
        if not ready.get("ready"):
            raise RuntimeError(f"{self.command}: unexpected first line {ready!r}")

    async def call(self, op: str, n: int, *, budget_s: float | None = None,
                   timeout_s: float = 300.0) -> tuple[list[float], float]:
        """Run ``op`` up to ``n`` times (or for ``budget_s``) in the peer.

        Returns the per-call latencies and the elapsed seconds.
        """
        proc = self._require()
        assert proc.stdin is not None
        command = {"op": op, "n": n, "budget_s": budget_s}
        proc.stdin.write((json.dumps(command) + "\n").encode())
        await proc.stdin.drain()
        answer = await self._read(timeout_s)
        return [float(x) for x in answer["latencies"]], float(answer["elapsed"])

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.returncode is None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(b'{"op": "quit", "n": 0}\n')
                await proc.stdin.drain()
                proc.stdin.close()
                await asyncio.wait_for(proc.wait(), 20)
            except (TimeoutError, ConnectionError):
                proc.kill()
                await proc.wait()

    def _require(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise RuntimeError(f"{self.command}: not started")
        return self._proc

    async def _read(self, timeout_s: float) -> dict[str, Any]:
        proc = self._require()
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
        if not line:
            code = await proc.wait()
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.command} exited {code}:\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer
