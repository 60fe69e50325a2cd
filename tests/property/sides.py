"""Running one port's operations on the in-memory model and on real adapters, side by side.

A ``SideBySide`` state machine owns one event loop (``asyncio.Runner``) for its whole run,
opens fresh storage per run (a SQLite file, a Postgres schema, a Redis key prefix) and
disposes of it in ``teardown``. ``compare`` runs the same operation on every side and asserts
that each returns the same normalised value, or raises the same error type and code, as the
model (the in-memory adapter, always the first side).

Adapters hand out their own identifiers (delivery ids, global positions); the machines
normalise those before comparing, so only the behaviour the port promises is compared.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from tests.contract.redis_fixtures import redis_connection
from tests.contract.sql_fixtures import postgres_database, sqlite_database
from wfadapters.redis import RedisConnection
from wfadapters.sql.database import Database
from wfdomain.errors import WorkflowEngineError

__all__ = [
    "MACHINE_SETTINGS",
    "POSTGRES_SETTINGS",
    "Outcome",
    "Side",
    "SideBySide",
    "outcome_of",
    "run_machine",
]

MACHINE_SETTINGS = settings(
    max_examples=15,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
"""The fixed budget of every machine run here (each example opens fresh databases)."""

POSTGRES_SETTINGS = settings(MACHINE_SETTINGS, max_examples=5)
"""Postgres runs fewer examples: a fresh schema per example costs seconds on a busy host."""

P = TypeVar("P")
Outcome = tuple[Any, ...]


@dataclass(slots=True)
class Side(Generic[P]):
    """One implementation of the port under comparison."""

    name: str
    adapter: P


async def outcome_of(
    awaitable: Awaitable[Any], normalise: Callable[[Any], Any] = lambda v: v
) -> Outcome:
    """Await and describe the result: ``("ok", value)`` or the error's type and code.

    ``ValueError`` (a rejected argument) compares by type only: its message is free text.
    """
    try:
        value = await awaitable
    except WorkflowEngineError as e:
        return ("error", type(e).__name__, e.code)
    except ValueError:
        return ("error", "ValueError")
    return ("ok", normalise(value))


def _call(normalise: Callable[[Any, int], Any], side: int, value: Any) -> Any:
    return normalise(value, side)


class SideBySide(RuleBasedStateMachine, Generic[P]):
    """Base of the comparison machines. Subclasses implement ``build``.

    ``run_machine`` sets the class attributes that choose the real side: ``sqlite_dir``
    (a fresh SQLite file under it per run), ``postgres_dsn`` (a fresh schema per run) or
    ``redis_url`` (a fresh random key prefix per run, its keys deleted afterwards).
    """

    postgres_dsn: ClassVar[str | None] = None
    sqlite_dir: ClassVar[Path | None] = None
    redis_url: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.stack = AsyncExitStack()
        self.sides: list[Side[P]] = self.run(self._open())
        self.trace: list[str] = []

    def run(self, awaitable: Awaitable[Any]) -> Any:
        """Run a coroutine on the machine's own event loop."""

        async def wrapped() -> Any:
            return await awaitable

        return self.runner.run(wrapped())

    async def _open(self) -> list[Side[P]]:
        sides = [Side("memory", self.build(None))]
        if self.sqlite_dir is not None:
            run_dir = self.sqlite_dir / f"machine-{uuid.uuid4().hex[:8]}"
            run_dir.mkdir()
            sqlite = await self.stack.enter_async_context(sqlite_database(run_dir))
            sides.append(Side("sqlite", self.build(sqlite)))
        if self.postgres_dsn is not None:
            postgres = await self.stack.enter_async_context(postgres_database(self.postgres_dsn))
            sides.append(Side("postgres", self.build(postgres)))
        if self.redis_url is not None:
            conn = await self.stack.enter_async_context(redis_connection(self.redis_url))
            sides.append(Side("redis", self.build_redis(conn)))
        return sides

    def build(self, db: Database | None) -> P:
        """Return the adapter over ``db``, or the in-memory model when ``db`` is None."""
        raise NotImplementedError

    def build_redis(self, conn: RedisConnection) -> P:
        """Return the Redis adapter over ``conn`` (a fresh key prefix per run)."""
        raise NotImplementedError

    def compare(
        self,
        label: str,
        operation: Callable[[P, int], Awaitable[Any]],
        normalise: Callable[[Any, int], Any] = lambda v, _: v,
    ) -> Outcome:
        """Run ``operation(adapter, side_index)`` on every side; assert equal outcomes.

        Returns the model's outcome. ``normalise(value, side_index)`` maps a side's own
        identifiers to comparable ones.
        """
        self.trace.append(label)

        async def each() -> list[Outcome]:
            results = []
            for i, side in enumerate(self.sides):
                results.append(
                    await outcome_of(operation(side.adapter, i), partial(_call, normalise, i))
                )
            return results

        results: Sequence[Outcome] = self.run(each())
        model = results[0]
        for side, result in zip(self.sides[1:], results[1:], strict=True):
            assert result == model, (
                f"{side.name} disagrees with the model on {label}:\n"
                f"  model:   {model!r}\n  {side.name}: {result!r}\n"
                "operations so far:\n  " + "\n  ".join(self.trace)
            )
        return model

    def teardown(self) -> None:
        """Dispose every database and close the machine's event loop."""
        try:
            self.run(self.stack.aclose())
        finally:
            self.runner.close()


def run_machine(
    machine: type[SideBySide[Any]], *, sqlite_dir: Path | None = None,
    postgres_dsn: str | None = None, redis_url: str | None = None,
    budget: settings = MACHINE_SETTINGS,
) -> None:
    """Run ``machine`` against the in-memory model and the real sides given."""
    configured = type(machine.__name__, (machine,), {
        "sqlite_dir": sqlite_dir, "postgres_dsn": postgres_dsn, "redis_url": redis_url,
    })
    run_state_machine_as_test(configured, settings=budget)
