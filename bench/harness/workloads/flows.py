"""The end-to-end workloads' definitions and drivers, shared by every in-process backend.

* ``bench_one``: one action (echo), then the run completes.
* ``bench_ten``: ten top-level steps: an ``assign``, actions, an ``if`` (whose ``then``
  branch runs one more action), a ``wait_event`` resolved by a submitted event, another
  ``assign`` and a ``return``. Six actions run per run.

Two ways to drive a run: the queue (``start_run``, then ``run_until_idle``, the loop the
CLI uses in place of a worker: tick + work until nothing is due or queued), and
``execute_run`` (the durable function call: this process records the run and carries it
through in place, no message queued). A sequential run is timed from the start until the
run has completed: for ``bench_ten`` that includes ``submit_event`` once the wait is open
(events are not buffered, so it must be open).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from wfdomain import ActionRegistry, ExecutedRun, Runtime, parse_definition

TENANT = "bench"

ONE = parse_definition({
    "id": "bench_one", "version": 1,
    "steps": [{"type": "action", "id": "echo", "action": "echo", "input": {"key": "input.key"}}],
    "output": "steps.echo",
})


def _action(step: str) -> dict[str, Any]:
    return {"type": "action", "id": step, "action": "work",
            "input": {"step": f"'{step}'", "key": "input.key"}}


TEN = parse_definition({
    "id": "bench_ten", "version": 1,
    "steps": [
        {"type": "assign", "id": "init", "values": {"total": "input.amount"}},
        _action("validate"),
        {"type": "if", "id": "size", "condition": "input.amount > 100",
         "then": [_action("big")], "else": [_action("small")]},
        _action("reserve"),
        {"type": "wait_event", "id": "go", "event": "bench.go", "correlation": "input.key"},
        _action("charge"),
        {"type": "assign", "id": "sum", "values": {"total": "state.total + steps.go.payload.tip"}},
        _action("ship"),
        _action("notify"),
        {"type": "return", "id": "done", "output": "{'key': input.key, 'total': state.total}"},
    ],
})

actions = ActionRegistry()


@actions.action()
async def echo(inp: dict[str, Any]) -> dict[str, Any]:
    return {"echo": inp["key"]}


@actions.action()
async def work(inp: dict[str, Any]) -> dict[str, Any]:
    return {"step": inp["step"], "key": inp["key"]}


async def register(runtime: Runtime) -> None:
    await runtime.register_definition(TENANT, ONE)
    await runtime.register_definition(TENANT, TEN)


RunFn = Callable[..., Awaitable[float]]


async def one_run(runtime: Runtime, key: str, *, check: bool = True) -> float:
    """Start and drive one ``bench_one`` run; return its start-to-finish seconds.

    ``check`` (outside the timed part) asserts the run completed with the right output.
    """
    start = time.perf_counter()
    run = await runtime.start_run(TENANT, "bench_one", {"key": key})
    await runtime.run_until_idle()
    elapsed = time.perf_counter() - start
    if check:
        await _check(runtime, run.run_id, {"echo": key})
    return elapsed


async def ten_run(runtime: Runtime, key: str, *, check: bool = True) -> float:
    """Start and drive one ``bench_ten`` run, submitting its event once it waits."""

    async def started() -> str:
        run = await runtime.start_run(TENANT, "bench_ten", {"key": key, "amount": 150})
        await runtime.run_until_idle()
        return run.run_id

    return await _ten(runtime, key, started, check)


async def _ten(runtime: Runtime, key: str, started: Callable[[], Awaitable[str]],
               check: bool) -> float:
    """Time ``started`` (which brings a ``bench_ten`` run to its wait) and the event."""
    start = time.perf_counter()
    run_id = await started()
    await runtime.submit_event(TENANT, "bench.go", {"tip": 5}, correlation_key=key)
    await runtime.run_until_idle()
    elapsed = time.perf_counter() - start
    if check:
        await _check(runtime, run_id, {"key": key, "total": 155})
    return elapsed


async def one_exec(runtime: Runtime, key: str, *, check: bool = True) -> float:
    """``bench_one`` through ``execute_run`` (the durable function call, as DBOS's call of
    its workflow function): recorded and carried through in this process, no worker.

    The check reads what the call returned, as DBOS's driver checks its workflow's return
    value: ``execute_run`` returns the run's output with its summary.
    """
    start = time.perf_counter()
    run = await runtime.execute_run(TENANT, "bench_one", {"key": key})
    elapsed = time.perf_counter() - start
    if check:
        _check_executed(run, {"echo": key})
    return elapsed


async def ten_exec(runtime: Runtime, key: str, *, check: bool = True) -> float:
    """``bench_ten`` through ``execute_run`` until its wait, then the event as a worker
    handles it (``submit_event`` + ``run_until_idle``), as DBOS's ``send`` wakes ``recv``."""

    async def started() -> str:
        run = await runtime.execute_run(TENANT, "bench_ten", {"key": key, "amount": 150})
        return run.run_id

    return await _ten(runtime, key, started, check)


async def one_exec_batch(runtime: Runtime, keys: list[str]) -> None:
    """``len(keys)`` ``bench_one`` runs through ``execute_run`` at once (DBOS's threads)."""
    runs = await asyncio.gather(*(runtime.execute_run(TENANT, "bench_one", {"key": k})
                                  for k in keys))
    for run, key in zip(runs, keys, strict=True):
        _check_executed(run, {"echo": key})


async def one_batch(runtime: Runtime, keys: list[str]) -> None:
    """Start ``len(keys)`` ``bench_one`` runs, then drive them all together."""
    runs = [await runtime.start_run(TENANT, "bench_one", {"key": k}) for k in keys]
    await runtime.run_until_idle()
    for run, key in zip(runs, keys, strict=True):
        await _check(runtime, run.run_id, {"echo": key})


def _check_executed(run: ExecutedRun, output: object) -> None:
    if (run.status, run.output) != ("completed", output):
        raise RuntimeError(f"run {run.run_id} ended {run.status} with {run.output!r}, "
                           f"expected completed with {output!r}")


async def _check(runtime: Runtime, run_id: str, output: object) -> None:
    summary = await runtime.get_run(TENANT, run_id)
    if summary.status != "completed":
        raise RuntimeError(f"run {run_id} ended {summary.status}, not completed")
    state = await runtime.get_state(TENANT, run_id)
    if state.output != output:
        raise RuntimeError(f"run {run_id} returned {state.output!r}, expected {output!r}")
