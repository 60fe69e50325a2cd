"""Contract of the transactional outbox: messages are recorded with the write that causes them.

Each backend yields an ``OutboxHarness``: its ports (the event store records messages, the
stream delivers them) and ``relay``, which moves recorded messages to the stream where the
backend needs a relay (Postgres + Redis) and does nothing where the stream is the outbox.
The suite checks the store-level rule (a message is delivered if and only if its write
committed) and the engine-level one (a crash right after an append loses no message).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from tests.contract.engine_helpers import (
    CHILD_ECHO,
    T0,
    RecordingActions,
    action,
    child_parent,
    doc,
    register,
    ret,
)
from tests.contract.engine_helpers import TENANT as ENGINE_TENANT
from tests.contract.helpers import TENANT, audit, envelope, envelopes, message, summary
from wfadapters.memory import ManualClock
from wfdomain import keys
from wfdomain.errors import ConcurrencyConflictError, StorageUnavailableError
from wfdomain.ports import EventStore
from wfdomain.records import EventEnvelope, HeldMessage, Message, ScheduledMessage
from wfdomain.runtime import Ports, Runtime, RuntimeSettings


@dataclass(frozen=True, slots=True)
class OutboxHarness:
    """A backend's ports plus the relay step it needs (a no-op without a relay)."""

    ports: Ports
    relay: Callable[[], Awaitable[int]]


async def delivered(h: OutboxHarness, group: str = "g") -> list[Message]:
    """Relay, then consume everything the group has not seen yet."""
    await h.relay()
    out: list[Message] = []
    while batch := await h.ports.stream.consume(group, "c", count=100):
        out.extend(d.message for d in batch)
    return out


class _CrashAfterAppend:
    """An event store whose first append commits and then 'crashes' the caller."""

    def __init__(self, inner: EventStore) -> None:
        self._inner = inner
        self.crashed = False

    async def append(self, events: Sequence[EventEnvelope], **kw: Any) -> int:
        version = await self._inner.append(events, **kw)
        if not self.crashed:
            self.crashed = True
            raise SystemExit("the process died right after the append committed")
        return version

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _RecordingFails:
    """An event store that cannot record messages (its database is down)."""

    def __init__(self, inner: EventStore) -> None:
        self._inner = inner

    async def record_messages(self, messages: Sequence[Message], **kw: Any) -> None:
        raise StorageUnavailableError("the database is down")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _hold(events: EventStore, *held: Message, until: datetime,
                messages: Sequence[Message] = ()) -> None:
    """Start run-1 with ``held`` held until ``until`` (and ``messages`` recorded)."""
    await events.append(envelopes("run-1", 1, 1), expected_version=0,
                        summary=summary("run-1", 1), messages=messages,
                        held=[HeldMessage(message=m, until=until) for m in held])


class OutboxContract:
    """Behaviour every backend's outbox must show. Subclasses override ``outbox``."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(T0)

    @pytest.fixture
    async def outbox(self, clock: ManualClock) -> AsyncIterator[OutboxHarness]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    # -- the store-level rule ------------------------------------------------------------

    async def test_append_delivers_its_messages(self, outbox: OutboxHarness) -> None:
        events = outbox.ports.events
        await events.append(envelopes("run-1", 1, 1), expected_version=0,
                            summary=summary("run-1", 1), messages=[message(1), message(2)])
        assert await delivered(outbox) == [message(1), message(2)]

    async def test_conflicting_append_delivers_nothing(self, outbox: OutboxHarness) -> None:
        events = outbox.ports.events
        await events.append(envelopes("run-1", 1, 1), expected_version=0,
                            summary=summary("run-1", 1))
        with pytest.raises(ConcurrencyConflictError):
            await events.append([envelope("run-1", 1, data={"other": True})],
                                expected_version=0, summary=summary("run-1", 1),
                                messages=[message(1)])
        assert await delivered(outbox) == []

    async def test_fenced_out_append_delivers_nothing(self, outbox: OutboxHarness) -> None:
        events = outbox.ports.events
        await events.append(envelopes("run-1", 1, 1), expected_version=0,
                            summary=summary("run-1", 1), fencing_token=5)
        with pytest.raises(ConcurrencyConflictError):
            await events.append(envelopes("run-1", 2, 2), expected_version=1,
                                summary=summary("run-1", 2), fencing_token=4,
                                messages=[message(1)])
        assert await delivered(outbox) == []

    async def test_retried_append_records_its_messages_once(self, outbox: OutboxHarness) -> None:
        events = outbox.ports.events
        for _ in range(2):
            await events.append(envelopes("run-1", 1, 1), expected_version=0,
                                summary=summary("run-1", 1), messages=[message(1)])
        assert await delivered(outbox) == [message(1)]

    async def test_recorded_messages_are_delivered_with_their_audit(
        self, outbox: OutboxHarness
    ) -> None:
        record = audit("event.submitted", n=1)
        await outbox.ports.events.record_messages([message(1, run_id=None)], audit=record)
        assert await delivered(outbox) == [message(1, run_id=None)]
        listed = await outbox.ports.audit.list_audit(TENANT)
        assert [(r.kind, r.data) for r in listed] == [("event.submitted", {"n": 1})]

    async def test_every_group_gets_recorded_messages(self, outbox: OutboxHarness) -> None:
        await outbox.ports.events.record_messages([message(1)])
        assert await delivered(outbox, "g1") == await delivered(outbox, "g2") == [message(1)]

    async def test_relay_does_not_deliver_twice(self, outbox: OutboxHarness) -> None:
        await outbox.ports.events.record_messages([message(1), message(2)])
        first = await delivered(outbox)
        assert await delivered(outbox) == []
        assert first == [message(1), message(2)]

    # -- held messages: recorded with the append, delivered only if never released ------

    async def test_held_message_is_delivered_only_once_its_hold_runs_out(
        self, outbox: OutboxHarness, clock: ManualClock
    ) -> None:
        events, until = outbox.ports.events, clock.now() + timedelta(seconds=30)
        await _hold(events, message(2), until=until, messages=[message(1)])
        assert await delivered(outbox) == [message(1)]
        assert await events.release_overdue(until - timedelta(microseconds=1)) == []
        assert await delivered(outbox) == []
        assert await events.release_overdue(until) == [message(2)]
        assert await delivered(outbox) == [message(2)]
        assert await events.release_overdue(until + timedelta(days=1)) == []

    async def test_released_held_message_is_never_delivered(
        self, outbox: OutboxHarness, clock: ManualClock
    ) -> None:
        events, until = outbox.ports.events, clock.now() + timedelta(seconds=30)
        await _hold(events, message(1), until=until)
        await events.append(envelopes("run-1", 2, 2), expected_version=1,
                            summary=summary("run-1", 2), release=[message(1).id, "not-held"])
        assert await events.release_overdue(until + timedelta(days=1)) == []
        assert await delivered(outbox) == []

    async def test_conflicting_append_holds_and_releases_nothing(
        self, outbox: OutboxHarness, clock: ManualClock
    ) -> None:
        events, until = outbox.ports.events, clock.now() + timedelta(seconds=30)
        await _hold(events, message(1), until=until)
        with pytest.raises(ConcurrencyConflictError):
            await events.append([envelope("run-1", 1, data={"other": True})],
                                expected_version=0, summary=summary("run-1", 1),
                                held=[HeldMessage(message=message(2), until=until)],
                                release=[message(1).id])
        assert await events.release_overdue(until) == [message(1)]

    async def test_retried_append_holds_its_messages_once(
        self, outbox: OutboxHarness, clock: ManualClock
    ) -> None:
        events, until = outbox.ports.events, clock.now() + timedelta(seconds=30)
        for _ in range(2):
            await _hold(events, message(1), until=until)
        assert await events.release_overdue(until) == [message(1)]
        assert await events.release_overdue(until) == []

    async def test_overdue_held_messages_are_released_earliest_first_in_batches(
        self, outbox: OutboxHarness, clock: ManualClock
    ) -> None:
        events, t = outbox.ports.events, clock.now()
        await events.append(envelopes("run-1", 1, 1), expected_version=0,
                            summary=summary("run-1", 1),
                            held=[HeldMessage(message=message(n), until=t + timedelta(seconds=s))
                                  for n, s in ((1, 3), (2, 1), (3, 2))])
        later = t + timedelta(seconds=10)
        assert await events.release_overdue(later, limit=2) == [message(2), message(3)]
        assert await events.release_overdue(later, limit=2) == [message(1)]
        assert await delivered(outbox) == [message(2), message(3), message(1)]
        with pytest.raises(ValueError, match="limit"):
            await events.release_overdue(later, limit=0)

    async def test_concurrent_releases_publish_each_held_message_once(
        self, outbox: OutboxHarness, clock: ManualClock
    ) -> None:
        events, until = outbox.ports.events, clock.now() + timedelta(seconds=30)
        held = [message(n) for n in range(1, 21)]
        await _hold(events, *held, until=until)
        gate = asyncio.Event()

        async def releaser() -> list[Message]:
            await gate.wait()
            return await events.release_overdue(until, limit=7)

        tasks = [asyncio.create_task(releaser()) for _ in range(4)]
        gate.set()
        released = [m for batch in await asyncio.gather(*tasks) for m in batch]
        released += await events.release_overdue(until)
        assert sorted(m.id for m in released) == sorted(m.id for m in held)
        assert sorted(m.id for m in await delivered(outbox)) == sorted(m.id for m in held)

    # -- the engine-level rule -----------------------------------------------------------

    async def test_crash_right_after_an_append_loses_no_message(
        self, outbox: OutboxHarness
    ) -> None:
        actions = RecordingActions()
        crashing = _CrashAfterAppend(outbox.ports.events)
        doomed = Runtime(replace(outbox.ports, events=cast(EventStore, crashing)),
                         actions.registry)
        survivor = Runtime(outbox.ports, actions.registry)
        await register(survivor, doc("one", [action("double", {"n": 2}, id="a"),
                                             ret("steps.a.n")]))
        with pytest.raises(SystemExit):
            await doomed.start_run(ENGINE_TENANT, "one", run_id="run-1")
        await _drive(outbox, survivor)
        run = await survivor.get_run(ENGINE_TENANT, "run-1")
        assert (run.status, actions.count("double")) == ("completed", 1)

    @pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "as-message"])
    async def test_crash_after_a_step_append_loses_no_action(
        self, outbox: OutboxHarness, clock: ManualClock, in_place: bool
    ) -> None:
        actions = RecordingActions()
        settings = RuntimeSettings(run_actions_in_place=in_place)
        runtime = Runtime(outbox.ports, actions.registry, settings)
        await register(runtime, doc("one", [action("double", {"n": 2}, id="a"),
                                            ret("steps.a.n")]))
        await runtime.start_run(ENGINE_TENANT, "one", run_id="run-1")
        await outbox.relay()
        crashing = _CrashAfterAppend(outbox.ports.events)
        doomed = Runtime(replace(outbox.ports, events=cast(EventStore, crashing)),
                         actions.registry, settings)
        # The first message (advance) makes the run schedule the action; the append that
        # records it commits and the worker dies before acking or doing anything else.
        with pytest.raises(SystemExit):
            await doomed.work_once()
        assert actions.count() == 0
        await _drive(outbox, runtime)
        if in_place:
            # The action's message was held for the doomed worker: nobody sees it until
            # the hold runs out (claim_idle), as with a dead consumer's pending message.
            run = await runtime.get_run(ENGINE_TENANT, "run-1")
            assert (run.status, actions.count()) == ("running", 0)
            clock.advance(settings.claim_idle)
            await _drive(outbox, runtime)
        run = await runtime.get_run(ENGINE_TENANT, "run-1")
        assert (run.status, actions.count("double")) == ("completed", 1)

    async def test_crash_right_after_execute_run_records_the_run_loses_nothing(
        self, outbox: OutboxHarness, clock: ManualClock
    ) -> None:
        actions = RecordingActions()
        runtime = Runtime(outbox.ports, actions.registry)
        await register(runtime, doc("one", [action("double", {"n": 2}, id="a"),
                                            ret("steps.a.n")]))
        crashing = _CrashAfterAppend(outbox.ports.events)
        doomed = Runtime(replace(outbox.ports, events=cast(EventStore, crashing)),
                         actions.registry)
        # The run is recorded with its first message held for the caller, which dies.
        with pytest.raises(SystemExit):
            await doomed.execute_run(ENGINE_TENANT, "one", run_id="run-1")
        await _drive(outbox, runtime)
        run = await runtime.get_run(ENGINE_TENANT, "run-1")
        assert (run.status, actions.count()) == ("running", 0)
        clock.advance(runtime.settings.claim_idle)
        await _drive(outbox, runtime)
        run = await runtime.get_run(ENGINE_TENANT, "run-1")
        assert (run.status, actions.count("double")) == ("completed", 1)

    async def test_crash_after_the_append_that_starts_a_child_loses_no_child(
        self, outbox: OutboxHarness
    ) -> None:
        actions = RecordingActions()
        runtime = Runtime(outbox.ports, actions.registry)
        await register(runtime, CHILD_ECHO, child_parent("child_echo"))
        await runtime.start_run(ENGINE_TENANT, "parent", {"x": 7}, run_id="run-1")
        await outbox.relay()
        crashing = _CrashAfterAppend(outbox.ports.events)
        doomed = Runtime(replace(outbox.ports, events=cast(EventStore, crashing)),
                         actions.registry)
        # The parent's append that starts its child step commits; the worker dies before
        # doing anything else. The child's start went into the outbox with that append.
        with pytest.raises(SystemExit):
            await doomed.work_once()
        await _drive(outbox, runtime)
        parent = await runtime.get_run(ENGINE_TENANT, "run-1")
        children = [r for r in await runtime.list_runs(ENGINE_TENANT)
                    if r.parent_run_id == "run-1"]
        assert (parent.status, [c.status for c in children]) == ("completed", ["completed"])
        assert (await runtime.get_state(ENGINE_TENANT, "run-1")).output == {"child_got": 7}

    async def test_a_timer_the_scheduler_lost_fires_after_reschedule_timers(
        self, outbox: OutboxHarness, clock: ManualClock
    ) -> None:
        actions = RecordingActions()
        runtime = Runtime(outbox.ports, actions.registry)
        await register(runtime, doc("napper", [{"type": "sleep", "id": "nap", "seconds": 60},
                                               action("double", {"n": 1}, id="a"),
                                               ret("steps.a.n")]))
        await runtime.start_run(ENGINE_TENANT, "napper", run_id="run-1")
        await _drive(outbox, runtime)
        [timer_id] = (await runtime.get_state(ENGINE_TENANT, "run-1")).timers
        # The scheduler loses the timer (a Redis restarted without persistence, say).
        assert await outbox.ports.scheduler.cancel(
            keys.timer_schedule_key(ENGINE_TENANT, "run-1", timer_id))
        clock.advance(timedelta(seconds=61))
        assert await runtime.tick() == 0
        assert await runtime.reschedule_timers(ENGINE_TENANT, "run-1") == 1
        assert await runtime.reschedule_timers(ENGINE_TENANT, "run-1") == 1  # repeatable
        await _drive(outbox, runtime)
        run = await runtime.get_run(ENGINE_TENANT, "run-1")
        assert (run.status, actions.count("double")) == ("completed", 1)
        assert await runtime.reschedule_timers(ENGINE_TENANT, "run-1") == 0

    async def test_due_timer_that_cannot_be_recorded_fires_later(
        self, outbox: OutboxHarness
    ) -> None:
        now = outbox.ports.clock.now()
        await outbox.ports.scheduler.schedule(ScheduledMessage(key="t1", due_at=now,
                                                               message=message(1)))
        broken = replace(outbox.ports, events=cast(EventStore, _RecordingFails(
            outbox.ports.events)))
        with pytest.raises(StorageUnavailableError):
            await Runtime(broken, RecordingActions().registry).tick()
        assert await Runtime(outbox.ports, RecordingActions().registry).tick() == 1
        assert await delivered(outbox) == [message(1)]


async def _drive(outbox: OutboxHarness, runtime: Runtime) -> None:
    """Relay and work until nothing is left to do now."""
    for _ in range(20):
        await outbox.relay()
        if not await runtime.run_until_idle():
            return
