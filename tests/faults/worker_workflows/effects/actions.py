"""Actions with countable effects, for the worker process tests.

Every invocation appends ``<idempotency key> <attempt> <pid>`` to
``$WF_TEST_DIR/invocations-<pid>.log``. ``effect_once`` also records its effect in the
SQLite file ``$WF_TEST_DIR/effects.db`` keyed by the idempotency key (``INSERT OR IGNORE``):
it honours the key, so a repeated invocation has its effect once. ``effect_then_block``
does that, then waits until ``$WF_TEST_DIR/release`` exists (the test kills it there).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from pydantic import BaseModel

from wfdomain import ActionContext, ActionRegistry

actions = ActionRegistry()


class Step(BaseModel):
    n: int


def _dir() -> Path:
    return Path(os.environ["WF_TEST_DIR"])


def _invoked(ctx: ActionContext, *, sync: bool = False) -> None:
    path = _dir() / f"invocations-{os.getpid()}.log"
    with path.open("a", encoding="utf-8") as log:
        log.write(f"{ctx.idempotency_key} {ctx.attempt} {os.getpid()}\n")
        if sync:
            log.flush()
            os.fsync(log.fileno())


def _effect(ctx: ActionContext) -> None:
    with sqlite3.connect(_dir() / "effects.db", timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, pid INTEGER)")
        db.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (ctx.idempotency_key,
                                                                    os.getpid()))


@actions.action()
async def count(inp: Step, ctx: ActionContext) -> Step:
    _invoked(ctx)
    return inp


@actions.action()
async def effect_once(inp: Step, ctx: ActionContext) -> Step:
    _invoked(ctx, sync=True)
    _effect(ctx)
    return inp


@actions.action()
async def effect_then_block(inp: Step, ctx: ActionContext) -> Step:
    _invoked(ctx, sync=True)
    _effect(ctx)
    (_dir() / f"blocking-{os.getpid()}").touch()
    # Released through a file by the test process; the first worker is killed here.
    while not (_dir() / "release").exists():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return inp
