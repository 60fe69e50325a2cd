"""Faults of the Postgres + Redis engine: a Redis restart, a poison message, a stale worker.

Real servers only: the restart test starts its own ``redis-server`` on a free loopback
port and restarts that one; the others use the shared Redis under a random key prefix and
a fresh Postgres schema. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import pytest

from tests.contract.engine_helpers import T0, TENANT, RecordingActions, action, doc, register, ret
from tests.contract.helpers import envelope, summary
from tests.contract.redis_fixtures import postgres_redis, redis_connection
from tests.contract.sql_fixtures import postgres_database
from tests.faults.redis_server import RedisServer, redis_server  # noqa: F401 - fixture
from tests.faults.worker_helpers import fresh_postgres
from tests.logs import json_logger, records
from wfadapters.memory import ManualClock
from wfadapters.redis import RedisConnection, RedisLock
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.system import SystemClock
from wfapps.bootstrap import open_runtime
from wfapps.settings import Settings, WorkerSettings
from wfapps.worker import WorkerService
from wfdomain.errors import ConcurrencyConflictError, LeaseLostError, StorageUnavailableError
from wfdomain.records import Message
from wfdomain.runtime import Runtime, RuntimeSettings

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

THREE = doc("three", [action("double", {"n": 1}, id="a"),
                      action("double", {"n": "steps.a.n"}, id="b"),
                      action("double", {"n": "steps.b.n"}, id="c"),
                      ret("steps.c.n")])


async def _finished(rt: Runtime, run_ids: list[str]) -> bool:
    runs = [await rt.get_run(TENANT, r) for r in run_ids]
    return all(run.status == "completed" for run in runs)


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "as-messages"])
async def test_redis_restart_with_runs_in_flight_loses_no_run(
    redis_server: RedisServer, postgres_dsn: str, in_place: bool  # noqa: F811
) -> None:
    async with postgres_database(postgres_dsn) as db:
        conn = RedisConnection.open(redis_server.url, prefix="wf")
        try:
            bundle = postgres_redis(db, conn, SystemClock())
            actions = RecordingActions()
            rt = Runtime(bundle.ports, actions.registry,
                         RuntimeSettings(engine="test", run_actions_in_place=in_place))
            await register(rt, THREE)
            run_ids = [(await rt.start_run(TENANT, "three", run_id=f"run-{i}")).run_id
                       for i in range(20)]
            # Some runs done, some part way (their action messages queued or pending when
            # actions travel as messages), the others' first messages still queued.
            for _ in range(2 if in_place else 4):
                await rt.work_once(count=5)
            assert not await _finished(rt, run_ids)
            redis_server.stop()
            # Started while Redis is down: committed to Postgres, the publish fails.
            run_ids += [(await rt.start_run(TENANT, "three", run_id=f"late-{i}")).run_id
                        for i in range(5)]
            redis_server.start()  # empty: streams, pending lists, leases and index lost
            republished = 0
            async with asyncio.timeout(60):
                while not await _finished(rt, run_ids):
                    with contextlib.suppress(StorageUnavailableError):
                        republished += (await bundle.relay.run_until_drained()).republished
                        await rt.run_until_idle()
            assert republished >= 5  # at least the late runs' first messages were re-driven
            # Each step's effect once: re-driven duplicates find the stored outcome.
            assert actions.count("double") == 3 * len(run_ids)
            assert [await rt.get_run(TENANT, r) for r in run_ids][-1].status == "completed"
            await bundle.relay.run_until_drained()
            assert await bundle.outbox.count() == 0  # everything handled was cleared
        finally:
            await conn.close()


async def test_timers_a_redis_restart_lost_fire_once_the_worker_reschedules_them(
    redis_server: RedisServer, postgres_dsn: str  # noqa: F811
) -> None:
    napper = doc("napper", [{"type": "sleep", "id": "nap", "seconds": 60},
                            action("double", {"n": 1}, id="a"), ret("steps.a.n")])
    clock = ManualClock(T0)
    async with postgres_database(postgres_dsn) as db:
        conn = RedisConnection.open(redis_server.url, prefix="wf")
        try:
            bundle = postgres_redis(db, conn, clock)
            actions = RecordingActions()
            rt = Runtime(bundle.ports, actions.registry,
                         RuntimeSettings(engine="test", stuck_after=timedelta(seconds=30)))
            await register(rt, napper)
            run_ids = [(await rt.start_run(TENANT, "napper", run_id=f"run-{i}")).run_id
                       for i in range(3)]
            await rt.run_until_idle()
            assert [(await rt.get_run(TENANT, r)).status for r in run_ids] == ["waiting"] * 3
            redis_server.stop()
            redis_server.start()  # empty: the three scheduled timers are gone
            clock.advance(timedelta(seconds=120))  # due 60 s ago: past the 30 s threshold
            with contextlib.suppress(StorageUnavailableError):
                await rt.tick()  # the pooled connection finds the server gone, once
            assert await rt.tick() == 0  # nothing left to fire on its own
            logger, logs = json_logger()
            service = WorkerService(rt, WorkerSettings(
                concurrency=2, metrics_port=0, poll_interval_s=0.01, tick_interval_s=0.01,
                stuck_check_interval_s=0.05, gauge_interval_s=0.05, shutdown_grace_s=10,
                tenants=(TENANT,)), logger=logger)
            serving = asyncio.create_task(service.run())
            try:
                for _ in range(1200):  # polling the service for at most a minute
                    if await _finished(rt, run_ids):
                        break
                    await asyncio.sleep(0.05)
            finally:
                service.stop()
                await asyncio.wait_for(serving, 30)
            assert actions.count("double") == 3
            rescheduled = records(logs, "run.timers_rescheduled")
            # A run may be rescheduled twice before its timer's append lands: harmless.
            assert sorted({r["run_id"] for r in rescheduled}) == run_ids
        finally:
            await conn.close()


async def test_fencing_tokens_keep_increasing_across_a_redis_restart(
    redis_server: RedisServer  # noqa: F811
) -> None:
    clock = ManualClock(T0)
    conn = RedisConnection.open(redis_server.url, prefix="wf")
    try:
        lock = RedisLock(conn, clock)
        before = await lock.acquire("run:acme:r1", "w1", ttl=timedelta(seconds=30))
        redis_server.restart()
        after = None
        async with asyncio.timeout(10):
            while after is None:
                with contextlib.suppress(StorageUnavailableError):
                    after = await lock.acquire("run:acme:r1", "w2", ttl=timedelta(seconds=30))
        assert before is not None
        assert after.token > before.token
    finally:
        await conn.close()


async def test_poison_message_is_dead_lettered_while_other_runs_complete(
    postgres_dsn: str, redis_url: str
) -> None:
    clock = ManualClock(T0)
    settings = RuntimeSettings(engine="test", claim_idle=timedelta(seconds=10),
                               lock_ttl=timedelta(seconds=5))
    async with postgres_database(postgres_dsn) as db, redis_connection(redis_url) as conn:
        bundle = postgres_redis(db, conn, clock, max_deliveries=3)
        actions = RecordingActions()
        rt = Runtime(bundle.ports, actions.registry, settings)
        await register(rt, THREE)
        # Its handler raises every time (no "input"): a bug's message, not an action error.
        poison = Message(id="poison", kind="advance", tenant=TENANT, run_id="run-0", body={})
        await bundle.ports.events.record_messages([poison])
        run_ids = [(await rt.start_run(TENANT, "three", run_id=f"run-{i}")).run_id
                   for i in range(10)]
        for _ in range(6):
            await rt.run_until_idle()
            clock.advance(settings.claim_idle)
        group = settings.group
        dead = await bundle.stream.dead_letters(group)
        assert [(d.message, d.delivery_count) for d in dead] == [(poison, 3)]
        assert await _finished(rt, run_ids)
        assert await bundle.stream.pending_count(group) == 0
        failed = await rt.ports.audit.list_audit(TENANT, kind="message.failed")
        assert [r.data["delivery_count"] for r in failed] == [1, 2, 3]
        await bundle.relay.run_until_drained()
        assert await bundle.outbox.count() == 0  # dead-lettered counts as handled


async def test_worker_paused_past_its_lease_cannot_append(
    postgres_dsn: str, redis_url: str
) -> None:
    clock = ManualClock(T0)
    ttl = timedelta(seconds=5)
    async with postgres_database(postgres_dsn) as db, redis_connection(redis_url) as conn:
        store, lock = SqlEventStore(db), RedisLock(conn, clock)
        await store.append([envelope("run-1", 1)], expected_version=0,
                           summary=summary("run-1", 1))
        stale = await lock.acquire("run:acme:run-1", "worker-a", ttl=ttl)
        assert stale is not None
        clock.advance(ttl * 2)  # worker A is paused (GC, swap, a stopped VM) past its lease
        fresh = await lock.acquire("run:acme:run-1", "worker-b", ttl=ttl)
        assert fresh is not None
        assert fresh.token > stale.token
        await store.append([envelope("run-1", 2)], expected_version=1,
                           summary=summary("run-1", 2), fencing_token=fresh.token)
        # A wakes up, even re-reads the run (now at version 2), and tries to write.
        with pytest.raises(ConcurrencyConflictError):
            await store.append([envelope("run-1", 3)], expected_version=2,
                               summary=summary("run-1", 3), fencing_token=stale.token)
        with pytest.raises(LeaseLostError):
            await lock.extend(stale, ttl=ttl)
        assert await lock.release(stale) is False
        assert [e.version for e in await store.read("tenant-a", "run-1")] == [1, 2]
        assert await lock.release(fresh) is True  # B's lease was never touched by A


async def test_open_engine_on_postgres_redis_runs_a_workflow(
    postgres_dsn: str, redis_url: str
) -> None:
    url, drop = await fresh_postgres(postgres_dsn)
    prefix = f"wftest-{uuid.uuid4().hex[:12]}"
    settings = Settings.from_url(f"{url}?redis={redis_url}&redis_prefix={prefix}")
    actions = RecordingActions()
    try:
        async with open_runtime(settings, actions.registry) as rt:
            assert rt.settings.engine == "postgres+redis"
            await register(rt, THREE)
            run = await rt.start_run(TENANT, "three")
            finished = await rt.run_until_finished(TENANT, run.run_id, timeout_s=30)
            assert (finished.status, actions.count("double")) == ("completed", 3)
            assert await rt.ports.stream.pending_count(rt.settings.group) == 0
    finally:
        await drop()
        async with redis_connection(redis_url) as conn:
            stale = [k async for k in conn.client.scan_iter(match=f"{prefix}:*")]
            if stale:
                await conn.client.delete(*stale)
