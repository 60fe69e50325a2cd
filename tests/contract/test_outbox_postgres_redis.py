from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.contract.helpers import envelopes, message, summary
from tests.contract.outbox_contract import OutboxContract, OutboxHarness, delivered
from tests.contract.redis_fixtures import PostgresRedis, postgres_redis, redis_connection
from tests.contract.sql_fixtures import postgres_database
from wfadapters.memory import ManualClock
from wfapps.relay import OutboxRelay


@pytest.fixture
async def bundle(clock: ManualClock, postgres_dsn: str, redis_url: str
                 ) -> AsyncIterator[PostgresRedis]:
    async with postgres_database(postgres_dsn) as db, redis_connection(redis_url) as conn:
        yield postgres_redis(db, conn, clock)


@pytest.mark.postgres
@pytest.mark.redis
class TestPostgresRedisOutbox(OutboxContract):
    @pytest.fixture
    async def outbox(self, bundle: PostgresRedis) -> AsyncIterator[OutboxHarness]:
        async def relay() -> int:
            return (await bundle.relay.run_until_drained()).republished

        yield OutboxHarness(bundle.ports, relay)  # noqa: PT022

    # -- what only a relay does: re-drive what Redis never got, clear what it handled ------

    async def test_relay_publishes_what_the_fast_path_never_did(
        self, bundle: PostgresRedis, outbox: OutboxHarness
    ) -> None:
        # The SQL store alone: committed, then the process died before publishing.
        await bundle.store.append(envelopes("run-1", 1, 1), expected_version=0,
                                  summary=summary("run-1", 1), messages=[message(1)])
        assert await bundle.stream.consume("g", "c") == []
        assert await delivered(outbox) == [message(1)]

    async def test_relay_clears_handled_messages_only(
        self, bundle: PostgresRedis, outbox: OutboxHarness
    ) -> None:
        await bundle.ports.events.record_messages([message(1), message(2)])
        first, _ = await bundle.stream.consume("workers", "c")
        await bundle.stream.ack("workers", first.delivery_id)
        report = await bundle.relay.run_until_drained()
        assert (report.republished, report.cleared) == (0, 1)
        assert await bundle.outbox.count() == 1

    async def test_one_relay_sweeps_at_a_time(self, bundle: PostgresRedis) -> None:
        lock = bundle.ports.lock
        relay = OutboxRelay(bundle.outbox, bundle.stream, group="workers",
                            min_age=timedelta(0), lock=lock, owner="relay-b")
        await bundle.store.record_messages([message(1)])  # never published
        held = await lock.acquire("outbox-relay:workers", "relay-a", ttl=timedelta(seconds=30))
        assert held is not None
        assert await relay.sweep() is None  # relay-a holds the lease: b skips this round
        assert await bundle.stream.consume("g", "c") == []
        await lock.release(held)
        report = await relay.sweep()
        assert report is not None
        assert report.republished == 1
        assert [d.message for d in await bundle.stream.consume("g", "c")] == [message(1)]
