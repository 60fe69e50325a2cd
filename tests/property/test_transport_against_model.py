"""Stream, Lock and Scheduler adapters against the in-memory model, by random operations.

Each machine runs the same random operations on the in-memory adapter (the model) and on a
real adapter (SQLite file, Postgres schema, Redis key prefix) and compares every return
value and raised error. Time-dependent behaviour (lease expiry, idle claims, due times) runs on one
``ManualClock`` that both sides share and that a rule moves on.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

from tests.contract.helpers import T0, message
from tests.property.sides import POSTGRES_SETTINGS, SideBySide, run_machine
from wfadapters.memory import InMemoryLock, InMemoryScheduler, InMemoryStream, ManualClock
from wfadapters.redis import RedisConnection, RedisLock, RedisScheduler, RedisStream
from wfadapters.sql.database import Database
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream
from wfdomain.ports import Lock, Scheduler, Stream
from wfdomain.records import Delivery, Lease, ScheduledMessage

GROUPS = st.sampled_from(["g1", "g2"])
CONSUMERS = st.sampled_from(["c1", "c2"])
COUNTS = st.sampled_from([1, 1, 2, 3, 4, 0])
"""Mostly valid counts; 0 checks that both sides refuse it alike."""
SECONDS = st.sampled_from([0, 1, 10, 29, 30, 31, 61, 600])
MAX_DELIVERIES = 3


class ClockedMachine(SideBySide[Any]):
    """A machine whose sides share one manual clock."""

    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        super().__init__()

    @rule(seconds=SECONDS)
    def advance_clock(self, seconds: int) -> None:
        self.trace.append(f"clock.advance({seconds}s)")
        self.clock.advance(timedelta(seconds=seconds))


# ----------------------------------------------------------------------------------- stream


class StreamMachine(ClockedMachine):
    """Publish, consume, ack, claim idle, dead letters and pending counts."""

    def __init__(self) -> None:
        super().__init__()
        self.published = 0
        # Each side's delivery ids, by publish order: ids are the adapter's own.
        self.ids: list[list[str]] = [[] for _ in self.sides]

    def build(self, db: Database | None) -> Stream:
        if db is None:
            return InMemoryStream(self.clock, max_deliveries=MAX_DELIVERIES)
        return SqlStream(db, self.clock, max_deliveries=MAX_DELIVERIES)

    def build_redis(self, conn: RedisConnection) -> Stream:
        return RedisStream(conn, self.clock, max_deliveries=MAX_DELIVERIES)

    def _index(self, delivery_id: str, side: int) -> int:
        return self.ids[side].index(delivery_id)

    def _deliveries(self, value: list[Delivery], side: int) -> list[tuple[int, Any, int]]:
        return [(self._index(d.delivery_id, side), d.message, d.delivery_count) for d in value]

    @rule()
    def publish(self) -> None:
        self.published += 1
        msg = message(self.published)

        async def op(stream: Stream, side: int) -> str:
            delivery_id = await stream.publish(msg)
            self.ids[side].append(delivery_id)
            return delivery_id

        self.compare(f"publish(msg-{self.published})", op, lambda _, __: "id")

    @rule(group=GROUPS, consumer=CONSUMERS, count=COUNTS)
    def consume(self, group: str, consumer: str, count: int) -> None:
        self.compare(f"consume({group}, {consumer}, count={count})",
                     lambda s, _: s.consume(group, consumer, count=count), self._deliveries)

    @rule(group=GROUPS, data=st.data())
    def ack(self, group: str, data: st.DataObject) -> None:
        if not self.published:
            return
        index = data.draw(st.integers(0, self.published - 1), label="message")
        self.compare(f"ack({group}, #{index})",
                     lambda s, side: s.ack(group, self.ids[side][index]))

    @rule(group=GROUPS)
    def ack_unknown(self, group: str) -> None:
        self.compare(f"ack({group}, unknown)", lambda s, _: s.ack(group, "999999999-0"))

    @rule(group=GROUPS, consumer=CONSUMERS, idle=SECONDS, count=COUNTS)
    def claim_idle(self, group: str, consumer: str, idle: int, count: int) -> None:
        self.compare(
            f"claim_idle({group}, {consumer}, min_idle={idle}s, count={count})",
            lambda s, _: s.claim_idle(group, consumer, min_idle=timedelta(seconds=idle),
                                      count=count),
            self._deliveries,
        )

    @rule(group=GROUPS, consumer=CONSUMERS)
    def redeliver_everything_pending(self, group: str, consumer: str) -> None:
        """A dead consumer's messages taken over after 31 s: drives them to dead letters."""
        self.advance_clock(31)
        self.claim_idle(group, consumer, 30, 10)

    @rule(group=GROUPS)
    def dead_letters(self, group: str) -> None:
        self.compare(f"dead_letters({group})", lambda s, _: s.dead_letters(group),
                     self._deliveries)

    @rule(group=GROUPS)
    def pending_count(self, group: str) -> None:
        self.compare(f"pending_count({group})", lambda s, _: s.pending_count(group))


# ------------------------------------------------------------------------------------- lock

KEYS = st.sampled_from(["k1", "k2"])
TTLS = st.sampled_from([1, 30, 30, 60, 0])


class LockMachine(ClockedMachine):
    """Acquire, extend and release, with leases that expire as the clock moves."""

    def __init__(self) -> None:
        super().__init__()
        # Each side's granted leases in grant order; rules pick one by index.
        self.leases: list[list[Lease]] = [[] for _ in self.sides]
        # Each side's tokens per key in grant order: the port promises increasing tokens,
        # not their values (Redis starts from the time), so tokens compare by rank.
        self.tokens: list[dict[str, list[int]]] = [{} for _ in self.sides]

    def _ranked(self, value: Any, side: int) -> Any:
        if not isinstance(value, Lease):
            return value
        seen = self.tokens[side].setdefault(value.key, [])
        if value.token not in seen:
            assert not seen or value.token > seen[-1], f"token went down: {seen} {value}"
            seen.append(value.token)
        return replace(value, token=seen.index(value.token) + 1)

    def build(self, db: Database | None) -> Lock:
        return InMemoryLock(self.clock) if db is None else SqlLock(db, self.clock)

    def build_redis(self, conn: RedisConnection) -> Lock:
        return RedisLock(conn, self.clock)

    def _keep(self, side: int, lease: Lease | None) -> None:
        if lease is not None:
            self.leases[side].append(lease)

    @rule(key=KEYS, owner=CONSUMERS, ttl=TTLS)
    def acquire(self, key: str, owner: str, ttl: int) -> None:
        async def op(lock: Lock, side: int) -> Lease | None:
            lease = await lock.acquire(key, owner, ttl=timedelta(seconds=ttl))
            self._keep(side, lease)
            return lease

        self.compare(f"acquire({key}, {owner}, ttl={ttl}s)", op, self._ranked)

    @rule(data=st.data(), ttl=TTLS)
    def extend(self, data: st.DataObject, ttl: int) -> None:
        if not self.leases[0]:
            return
        index = data.draw(st.integers(0, len(self.leases[0]) - 1), label="lease")

        async def op(lock: Lock, side: int) -> Lease:
            lease = await lock.extend(self.leases[side][index], ttl=timedelta(seconds=ttl))
            self._keep(side, lease)
            return lease

        self.compare(f"extend(lease #{index}, ttl={ttl}s)", op, self._ranked)

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if not self.leases[0]:
            return
        index = data.draw(st.integers(0, len(self.leases[0]) - 1), label="lease")
        self.compare(f"release(lease #{index})",
                     lambda lock, side: lock.release(self.leases[side][index]))

    @rule(data=st.data())
    def release_forged(self, data: st.DataObject) -> None:
        """A granted lease with another owner written in never releases anything."""
        if not self.leases[0]:
            return
        index = data.draw(st.integers(0, len(self.leases[0]) - 1), label="lease")
        self.compare(
            f"release(lease #{index} with another owner)",
            lambda lock, side: lock.release(replace(self.leases[side][index], owner="intruder")),
        )


# -------------------------------------------------------------------------------- scheduler

SCHEDULE_KEYS = st.sampled_from(["t1", "t2", "t3", "t4"])


class SchedulerMachine(ClockedMachine):
    """Schedule, cancel, take due items and read the next due time."""

    def build(self, db: Database | None) -> Scheduler:
        return InMemoryScheduler() if db is None else SqlScheduler(db)

    def build_redis(self, conn: RedisConnection) -> Scheduler:
        return RedisScheduler(conn)

    @rule(key=SCHEDULE_KEYS, due_s=st.sampled_from([-30, 0, 1, 3, 10, 30, 3600]),
          n=st.integers(0, 3))
    def schedule(self, key: str, due_s: int, n: int) -> None:
        item = ScheduledMessage(key=key, due_at=self.clock.now() + timedelta(seconds=due_s),
                                message=message(n))
        self.compare(f"schedule({key}, due {due_s}s, msg-{n})", lambda s, _: s.schedule(item))

    @rule(key=SCHEDULE_KEYS)
    def cancel(self, key: str) -> None:
        self.compare(f"cancel({key})", lambda s, _: s.cancel(key))

    @rule(limit=st.sampled_from([1, 2, 3, 100, 0]), behind_s=st.sampled_from([0, 0, 20]))
    def take_due(self, limit: int, behind_s: int) -> None:
        now = self.clock.now() - timedelta(seconds=behind_s)
        self.compare(f"take_due(now-{behind_s}s, limit={limit})",
                     lambda s, _: s.take_due(now, limit=limit))

    @rule()
    def next_due(self) -> None:
        self.compare("next_due()", lambda s, _: s.next_due())


MACHINES = [StreamMachine, LockMachine, SchedulerMachine]


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.__name__)
def test_sqlite_agrees_with_the_model(machine: type[SideBySide[Any]], tmp_path: Path) -> None:
    run_machine(machine, sqlite_dir=tmp_path)


@pytest.mark.postgres
@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.__name__)
def test_postgres_agrees_with_the_model(machine: type[SideBySide[Any]], postgres_dsn: str) -> None:
    run_machine(machine, postgres_dsn=postgres_dsn, budget=POSTGRES_SETTINGS)


@pytest.mark.redis
@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.__name__)
def test_redis_agrees_with_the_model(machine: type[SideBySide[Any]], redis_url: str) -> None:
    run_machine(machine, redis_url=redis_url)
