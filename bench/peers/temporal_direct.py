"""The end-to-end workloads written directly with temporalio (no engine in between).

``OneAction`` runs one activity. ``TenStep`` has the engine's ``bench_ten`` shape: six
activities, an ``if``, and a wait for a signal (the engine's ``wait_event`` resolved by a
submitted event). The worker runs in the harness's process, on the dev server the harness
started; the task queue is fresh per run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

TIMEOUT = timedelta(seconds=30)


@activity.defn
async def echo(key: str) -> dict[str, Any]:
    return {"echo": key}


@activity.defn
async def work(step: str) -> dict[str, Any]:
    return {"step": step}


@workflow.defn
class OneAction:
    @workflow.run
    async def run(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = await workflow.execute_activity(
            echo, key, start_to_close_timeout=TIMEOUT)
        return result


@workflow.defn
class TenStep:
    def __init__(self) -> None:
        self.tip: int | None = None

    @workflow.signal
    def go(self, tip: int) -> None:
        self.tip = tip

    @workflow.run
    async def run(self, value: dict[str, Any]) -> dict[str, Any]:
        total = value["amount"]                                          # 1 assign
        await workflow.execute_activity(work, "validate", start_to_close_timeout=TIMEOUT)
        branch = "big" if value["amount"] > 100 else "small"             # 3 if
        await workflow.execute_activity(work, branch, start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity(work, "reserve", start_to_close_timeout=TIMEOUT)
        await workflow.wait_condition(lambda: self.tip is not None)      # 5 wait_event
        await workflow.execute_activity(work, "charge", start_to_close_timeout=TIMEOUT)
        assert self.tip is not None
        total += self.tip                                                # 7 assign
        await workflow.execute_activity(work, "ship", start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity(work, "notify", start_to_close_timeout=TIMEOUT)
        return {"key": value["key"], "total": total}                     # 10 return
