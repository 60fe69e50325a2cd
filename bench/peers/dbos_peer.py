"""DBOS Transact running the harness's end-to-end workloads, driven over stdin/stdout.

Run as ``python -m bench.peers.dbos_peer SYSTEM_DATABASE_URL`` in the benchmark's own
environment (``.venv-bench``). DBOS keeps process-wide state (one launched instance per
process), so each backend gets its own process, and the harness sends it one command per
repetition, interleaved with the engine's repetitions in the same run:

    {"op": "one" | "ten" | "one_threads", "n": 200, "budget_s": 4}
        ->   {"latencies": [...], "elapsed": s}

A series stops after ``n`` runs or once ``budget_s`` has passed (at least 3 runs, or one
batch of 10), so a slow machine bounds the run's wall time instead of stretching it.

``one`` is a workflow with one step, called sequentially (sync API). ``ten`` is the ten-step
workflow of ``bench/harness/workloads/flows.py``: steps, an ``if``, and a ``DBOS.recv`` that
the driver resolves with ``DBOS.send`` (the engine's ``wait_event`` + ``submit_event``).
``one_threads`` runs ``one`` from 10 threads (the engine's 10-in-flight figure).
``commits`` counts the SQLAlchemy transactions one run of each shape commits.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbos import DBOS, DBOSConfig
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine


@DBOS.step()
def echo(value: dict[str, Any]) -> dict[str, Any]:
    return {"echo": value["key"]}


@DBOS.workflow()
def one_action(value: dict[str, Any]) -> dict[str, Any]:
    return echo(value)


@DBOS.step()
def work(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"step": name, "key": value["key"]}


@DBOS.workflow()
def ten_step(value: dict[str, Any]) -> dict[str, Any]:
    # The same shape as the engine's definition: 10 top-level steps, 6 actions.
    total = value["amount"]                                   # 1 assign
    work("validate", value)                                   # 2 action
    if value["amount"] > 100:                                 # 3 if
        work("big", value)
    else:
        work("small", value)
    work("reserve", value)                                    # 4 action
    event = DBOS.recv("bench.go", timeout_seconds=30)         # 5 wait_event
    if event is None:
        raise RuntimeError("no bench.go event within 30 s")
    work("charge", value)                                     # 6 action
    total += event["tip"]                                     # 7 assign
    work("ship", value)                                       # 8 action
    work("notify", value)                                     # 9 action
    return {"key": value["key"], "total": total}              # 10 return


def run_one(i: int) -> float:
    start = time.perf_counter()
    result = one_action({"key": f"k{i}"})
    assert result == {"echo": f"k{i}"}
    return time.perf_counter() - start


def run_ten(i: int) -> float:
    start = time.perf_counter()
    key = f"t-{uuid.uuid4().hex}"
    handle = DBOS.start_workflow(ten_step, {"key": key, "amount": 150})
    DBOS.send(handle.workflow_id, {"tip": 5}, topic="bench.go")
    result = handle.get_result()
    assert result == {"key": key, "total": 155}
    return time.perf_counter() - start


def count_commits(fn: Callable[[int], float], i: int) -> int:
    commits = 0

    def on_commit(conn: Connection) -> None:
        nonlocal commits
        commits += 1

    event.listen(Engine, "commit", on_commit)
    try:
        fn(i)
    finally:
        event.remove(Engine, "commit", on_commit)
    return commits


def serve(url: str) -> None:
    config: DBOSConfig = {
        "name": "wfbench",
        "system_database_url": url,
        "log_level": "WARNING",
        # DBOS's default is 1 s; the engine's driver does not poll at all between steps.
        "notification_listener_polling_interval_sec": 0.01,
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            op, n = command["op"], int(command["n"])
            budget = float(command.get("budget_s") or 1e9)
            start = time.perf_counter()
            if op in ("one", "ten"):
                fn = run_one if op == "one" else run_ten
                latencies = []
                for i in range(n):
                    latencies.append(fn(i))
                    if i >= 2 and time.perf_counter() - start > budget:
                        break
            elif op == "one_threads":
                latencies = []
                with ThreadPoolExecutor(10) as pool:
                    for b in range(0, n, 10):
                        latencies += pool.map(run_one, range(b, b + 10))
                        if time.perf_counter() - start > budget:
                            break
            elif op == "commits":
                # Transactions committed by one run of each shape (background threads too).
                latencies = [float(count_commits(run_one, 0)), float(count_commits(run_ten, 0))]
            elif op == "quit":
                break
            else:
                raise SystemExit(f"unknown op {op!r}")
            elapsed = time.perf_counter() - start
            print(json.dumps({"latencies": latencies, "elapsed": elapsed}), flush=True)
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    serve(sys.argv[1])
