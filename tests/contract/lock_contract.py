"""Contract of the Lock port: leases, expiry by the clock, fencing tokens.

Expiry is driven by the ``clock`` fixture: the adapter under test must read time from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.contract.helpers import T0
from wfadapters.memory import ManualClock
from wfdomain.errors import LeaseLostError
from wfdomain.ports import Lock
from wfdomain.records import Lease

TTL = timedelta(seconds=30)


async def grant(lock: Lock, key: str = "run-1", owner: str = "w1") -> Lease:
    lease = await lock.acquire(key, owner, ttl=TTL)
    assert lease is not None, f"{key} was not free"
    return lease


class LockContract:
    """Behaviour every Lock adapter must show. Subclasses override ``lock``."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(T0)

    @pytest.fixture
    async def lock(self, clock: ManualClock) -> AsyncIterator[Lock]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    # -- acquire -----------------------------------------------------------------------

    async def test_free_key_is_granted(self, lock: Lock) -> None:
        lease = await lock.acquire("run-1", "w1", ttl=TTL)
        assert lease is not None
        assert (lease.key, lease.owner) == ("run-1", "w1")

    async def test_lease_expires_after_ttl(self, lock: Lock, clock: ManualClock) -> None:
        lease = await grant(lock)
        assert lease.expires_at == clock.now() + TTL

    async def test_held_key_is_refused(self, lock: Lock) -> None:
        await grant(lock, owner="w1")
        assert await lock.acquire("run-1", "w2", ttl=TTL) is None

    async def test_held_key_is_refused_to_its_holder(self, lock: Lock) -> None:
        await grant(lock, owner="w1")
        assert await lock.acquire("run-1", "w1", ttl=TTL) is None

    async def test_key_is_held_until_just_before_expiry(
        self, lock: Lock, clock: ManualClock
    ) -> None:
        await grant(lock, owner="w1")
        clock.advance(TTL - timedelta(milliseconds=1))
        assert await lock.acquire("run-1", "w2", ttl=TTL) is None

    async def test_expired_lease_can_be_taken(self, lock: Lock, clock: ManualClock) -> None:
        await grant(lock, owner="w1")
        clock.advance(TTL)
        lease = await lock.acquire("run-1", "w2", ttl=TTL)
        assert lease is not None
        assert lease.owner == "w2"

    async def test_keys_are_independent(self, lock: Lock) -> None:
        await grant(lock, "run-1")
        assert await lock.acquire("run-2", "w2", ttl=TTL) is not None

    async def test_acquire_rejects_nonpositive_ttl(self, lock: Lock) -> None:
        with pytest.raises(ValueError, match="ttl"):
            await lock.acquire("run-1", "w1", ttl=timedelta(0))

    async def test_concurrent_acquires_exactly_one_wins(self, lock: Lock) -> None:
        gate = asyncio.Event()

        async def acquirer(owner: str) -> bool:
            await gate.wait()
            return await lock.acquire("run-1", owner, ttl=TTL) is not None

        tasks = [asyncio.create_task(acquirer(owner)) for owner in ("w1", "w2")]
        gate.set()
        assert sorted(await asyncio.gather(*tasks)) == [False, True]

    # -- fencing tokens ----------------------------------------------------------------

    async def test_tokens_increase_across_expiry(self, lock: Lock, clock: ManualClock) -> None:
        first = await grant(lock, owner="w1")
        clock.advance(TTL)
        second = await grant(lock, owner="w2")
        assert second.token > first.token

    async def test_tokens_increase_after_release(self, lock: Lock) -> None:
        first = await grant(lock)
        await lock.release(first)
        second = await grant(lock)
        assert second.token > first.token

    async def test_tokens_keep_increasing(self, lock: Lock) -> None:
        tokens = []
        for _ in range(4):
            lease = await grant(lock)
            tokens.append(lease.token)
            await lock.release(lease)
        assert tokens == sorted(set(tokens))

    # -- release -----------------------------------------------------------------------

    async def test_release_frees_key(self, lock: Lock) -> None:
        await lock.release(await grant(lock, owner="w1"))
        assert await lock.acquire("run-1", "w2", ttl=TTL) is not None

    async def test_release_of_held_lease_returns_true(self, lock: Lock) -> None:
        assert await lock.release(await grant(lock)) is True

    async def test_second_release_returns_false(self, lock: Lock) -> None:
        lease = await grant(lock)
        await lock.release(lease)
        assert await lock.release(lease) is False

    async def test_release_of_expired_lease_returns_false(
        self, lock: Lock, clock: ManualClock
    ) -> None:
        lease = await grant(lock)
        clock.advance(TTL)
        assert await lock.release(lease) is False

    async def test_stale_release_keeps_new_holder(self, lock: Lock, clock: ManualClock) -> None:
        stale = await grant(lock, owner="w1")
        clock.advance(TTL)
        await grant(lock, owner="w2")
        assert await lock.release(stale) is False
        assert await lock.acquire("run-1", "w3", ttl=TTL) is None

    # -- extend ------------------------------------------------------------------------

    async def test_extend_moves_expiry(self, lock: Lock, clock: ManualClock) -> None:
        lease = await grant(lock)
        clock.advance(TTL / 2)
        extended = await lock.extend(lease, ttl=TTL)
        assert extended.expires_at == clock.now() + TTL

    async def test_extend_keeps_token_and_owner(self, lock: Lock) -> None:
        lease = await grant(lock)
        extended = await lock.extend(lease, ttl=TTL)
        assert (extended.key, extended.owner, extended.token) == (
            lease.key,
            lease.owner,
            lease.token,
        )

    async def test_extended_lease_outlives_first_expiry(
        self, lock: Lock, clock: ManualClock
    ) -> None:
        lease = await grant(lock, owner="w1")
        clock.advance(TTL / 2)
        await lock.extend(lease, ttl=TTL)
        clock.advance(TTL / 2)
        assert await lock.acquire("run-1", "w2", ttl=TTL) is None

    async def test_extended_lease_can_be_released(self, lock: Lock) -> None:
        extended = await lock.extend(await grant(lock), ttl=TTL)
        assert await lock.release(extended) is True

    async def test_extend_after_takeover_raises(self, lock: Lock, clock: ManualClock) -> None:
        stale = await grant(lock, owner="w1")
        clock.advance(TTL)
        await grant(lock, owner="w2")
        with pytest.raises(LeaseLostError):
            await lock.extend(stale, ttl=TTL)

    async def test_stale_extend_keeps_new_holder(self, lock: Lock, clock: ManualClock) -> None:
        stale = await grant(lock, owner="w1")
        clock.advance(TTL)
        await grant(lock, owner="w2")
        with pytest.raises(LeaseLostError):
            await lock.extend(stale, ttl=TTL * 10)
        clock.advance(TTL)
        assert await lock.acquire("run-1", "w3", ttl=TTL) is not None

    async def test_extend_after_release_raises(self, lock: Lock) -> None:
        lease = await grant(lock)
        await lock.release(lease)
        with pytest.raises(LeaseLostError):
            await lock.extend(lease, ttl=TTL)

    async def test_extend_after_expiry_raises(self, lock: Lock, clock: ManualClock) -> None:
        lease = await grant(lock)
        clock.advance(TTL)
        with pytest.raises(LeaseLostError):
            await lock.extend(lease, ttl=TTL)

    # -- holder ------------------------------------------------------------------------

    async def test_holder_of_never_granted_key_is_none(self, lock: Lock) -> None:
        assert await lock.holder("run-1") is None

    async def test_holder_is_the_granted_lease(self, lock: Lock) -> None:
        lease = await grant(lock, owner="w1")
        assert await lock.holder("run-1") == lease

    async def test_holder_shows_extended_expiry(self, lock: Lock, clock: ManualClock) -> None:
        lease = await grant(lock)
        clock.advance(TTL / 2)
        extended = await lock.extend(lease, ttl=TTL)
        assert await lock.holder("run-1") == extended

    async def test_holder_after_release_is_none(self, lock: Lock) -> None:
        await lock.release(await grant(lock))
        assert await lock.holder("run-1") is None

    async def test_holder_keeps_expired_lease_until_taken(
        self, lock: Lock, clock: ManualClock
    ) -> None:
        lease = await grant(lock, owner="w1")
        clock.advance(TTL * 3)
        expired = await lock.holder("run-1")
        assert expired == lease
        assert expired is not None
        assert expired.expires_at <= clock.now()

    async def test_holder_after_takeover_is_new_holder(
        self, lock: Lock, clock: ManualClock
    ) -> None:
        await grant(lock, owner="w1")
        clock.advance(TTL)
        taken = await grant(lock, owner="w2")
        assert await lock.holder("run-1") == taken

    async def test_holder_changes_nothing(self, lock: Lock, clock: ManualClock) -> None:
        lease = await grant(lock, owner="w1")
        await lock.holder("run-1")
        assert await lock.acquire("run-1", "w2", ttl=TTL) is None
        clock.advance(TTL)
        await lock.holder("run-1")
        assert await lock.acquire("run-1", "w2", ttl=TTL) is not None
        assert await lock.release(lease) is False

    async def test_holder_reads_only_its_key(self, lock: Lock) -> None:
        await grant(lock, "run-1")
        assert await lock.holder("run-2") is None
