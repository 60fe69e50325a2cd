"""A barrier action for the parallelism test: each call waits until ``$WF_TEST_PARTIES``
calls of the same run and group have arrived (files in ``$WF_TEST_DIR``), so the run can only
finish when its branches execute at the same time, in different single-consumer workers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import BaseModel

from wfdomain import ActionContext, ActionFailedError, ActionRegistry

actions = ActionRegistry()


class Part(BaseModel):
    name: str
    group: str


class Met(BaseModel):
    name: str
    pid: int


def _arrived(folder: Path, run_id: str, group: str) -> int:
    return len(list(folder.glob(f"arrived-{run_id}-{group}-*")))


@actions.action()
async def meet(inp: Part, ctx: ActionContext) -> Met:
    folder = Path(os.environ["WF_TEST_DIR"])
    parties = int(os.environ["WF_TEST_PARTIES"])
    (folder / f"arrived-{ctx.run_id}-{inp.group}-{inp.name}-{os.getpid()}").touch()
    for _ in range(3000):  # up to 60 s, then fail the attempt (no retry: the run fails)
        if _arrived(folder, ctx.run_id, inp.group) >= parties:
            return Met(name=inp.name, pid=os.getpid())
        await asyncio.sleep(0.02)
    raise ActionFailedError(f"{inp.name}: the other branches never ran alongside",
                            retryable=False)
