"""Contracts of the storage ports: EventStore, DefinitionStore, ActionLedger and AuditLog.

One base class per port. A backend subclasses each base it implements in
``test_event_store_<backend>.py`` and overrides only that base's adapter fixture.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import cast

import pytest

from tests.contract.helpers import (
    OTHER_TENANT,
    TENANT,
    action_result,
    at,
    audit,
    definition,
    envelope,
    envelopes,
    human_task,
    summary,
    wait,
)
from wfdomain.codec import decode_envelope, to_envelope
from wfdomain.errors import (
    ConcurrencyConflictError,
    DefinitionError,
    DefinitionSupersededError,
    ErrorCode,
    NondeterminismError,
)
from wfdomain.events import StateSet
from wfdomain.ports import ActionLedger, AuditLog, DefinitionStore, EventStore
from wfdomain.records import EventEnvelope, JSONValue, RunSummary, Snapshot


async def create(store: EventStore, run: RunSummary) -> None:
    """Create ``run`` with events 1..``run.version`` in one append."""
    events = envelopes(run.run_id, 1, run.version, tenant=run.tenant)
    await store.append(events, expected_version=0, summary=run)


def _definitions(store: EventStore) -> DefinitionStore:
    """The store's own definitions: every backend's event store object holds them too."""
    return cast(DefinitionStore, store)


def _ledger(store: EventStore) -> ActionLedger:
    """The store's own ledger: every backend's event store object is also its ledger."""
    return cast(ActionLedger, store)


def snapshot(run_id: str, version: int, *, tenant: str = TENANT) -> Snapshot:
    return Snapshot(tenant=tenant, run_id=run_id, version=version, state={"v": version})


class EventStoreContract:
    """Behaviour every EventStore adapter must show. Subclasses override ``store``."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    # -- append and read ---------------------------------------------------------------

    async def test_unknown_run_reads_empty(self, store: EventStore) -> None:
        assert await store.read(TENANT, "run-unknown") == []

    async def test_append_returns_new_version(self, store: EventStore) -> None:
        version = await store.append(
            envelopes("run-1", 1, 3), expected_version=0, summary=summary("run-1", 3)
        )
        assert version == 3

    async def test_read_returns_events_in_version_order(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        await store.append(
            envelopes("run-1", 3, 4), expected_version=2, summary=summary("run-1", 4)
        )
        events = await store.read(TENANT, "run-1")
        assert [(e.version, e.data) for e in events] == [(v, {"n": v}) for v in (1, 2, 3, 4)]

    async def test_read_after_skips_earlier_versions(self, store: EventStore) -> None:
        await create(store, summary("run-1", 4))
        assert [e.version for e in await store.read(TENANT, "run-1", after=2)] == [3, 4]

    async def test_read_upto_stops_at_version(self, store: EventStore) -> None:
        await create(store, summary("run-1", 4))
        events = await store.read(TENANT, "run-1", after=1, upto=3)
        assert [e.version for e in events] == [2, 3]

    async def test_append_assigns_increasing_global_positions(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        await create(store, summary("run-2", 1))
        await store.append([envelope("run-1", 3)], expected_version=2, summary=summary("run-1", 3))
        first = [e.position for e in await store.read(TENANT, "run-1")]
        second = [e.position for e in await store.read(TENANT, "run-2")]
        in_append_order = [first[0], first[1], second[0], first[2]]
        assert in_append_order == sorted(set(in_append_order))
        assert in_append_order[0] > 0

    async def test_read_returns_copies(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        (event,) = await store.read(TENANT, "run-1")
        event.data["n"] = "changed"
        assert (await store.read(TENANT, "run-1"))[0].data == {"n": 1}

    async def test_append_copies_its_input(self, store: EventStore) -> None:
        event = envelope("run-1", 1, data={"items": [1]})
        await store.append([event], expected_version=0, summary=summary("run-1", 1))
        event.data["items"].append(2)
        assert (await store.read(TENANT, "run-1"))[0].data == {"items": [1]}

    async def test_documents_read_back_with_their_keys_in_the_order_written(
        self, store: EventStore
    ) -> None:
        # Key order is visible to expressions ($keys, $string), so a store that re-orders
        # object keys (Postgres JSONB does) would make a loaded run decide differently.
        data: dict[str, JSONValue] = {"zeta": 1, "b": {"y": 1, "aa": 2}, "a": [{"z": 0, "c": 1}]}
        await store.append([envelope("run-1", 1, data=data)], expected_version=0,
                           summary=summary("run-1", 1))
        await store.save_snapshot(Snapshot(tenant=TENANT, run_id="run-1", version=1, state=data))
        (event,) = await store.read(TENANT, "run-1")
        stored = await store.load_snapshot(TENANT, "run-1")
        assert stored is not None
        assert json.dumps(event.data) == json.dumps(data)
        assert json.dumps(stored.state) == json.dumps(data)

    # -- optimistic concurrency --------------------------------------------------------

    async def test_append_rejects_stale_expected_version(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        with pytest.raises(ConcurrencyConflictError) as raised:
            await store.append(
                [envelope("run-1", 2, data={"other": True})],
                expected_version=1,
                summary=summary("run-1", 2),
            )
        assert (raised.value.expected_version, raised.value.actual_version) == (1, 2)

    async def test_append_to_existing_run_as_new_conflicts(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        with pytest.raises(ConcurrencyConflictError):
            await store.append(
                [envelope("run-1", 1, data={"other": True})],
                expected_version=0,
                summary=summary("run-1", 1),
            )

    async def test_append_to_unknown_run_after_version_conflicts(self, store: EventStore) -> None:
        with pytest.raises(ConcurrencyConflictError) as raised:
            await store.append(
                [envelope("run-1", 3)], expected_version=2, summary=summary("run-1", 3)
            )
        assert raised.value.actual_version == 0

    async def test_conflicting_append_stores_no_events(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        with pytest.raises(ConcurrencyConflictError):
            await store.append(
                envelopes("run-1", 2, 3), expected_version=1, summary=summary("run-1", 3)
            )
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1, 2]

    async def test_conflicting_append_keeps_projection(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2, waits=[wait("paid", "o-1")]))
        with pytest.raises(ConcurrencyConflictError):
            await store.append(
                envelopes("run-1", 2, 3),
                expected_version=1,
                summary=summary("run-1", 3, status="completed"),
            )
        assert await store.get_run(TENANT, "run-1") == summary(
            "run-1", 2, waits=[wait("paid", "o-1")]
        )
        assert await store.find_waits(TENANT, "paid", "o-1") == [("run-1", "wait-1")]

    async def test_concurrent_appends_exactly_one_wins(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        gate = asyncio.Event()

        async def writer(n: int) -> bool:
            await gate.wait()
            try:
                await store.append(
                    [envelope("run-1", 2, data={"writer": n})],
                    expected_version=1,
                    summary=summary("run-1", 2),
                )
            except ConcurrencyConflictError:
                return False
            return True

        tasks = [asyncio.create_task(writer(n)) for n in (1, 2)]
        gate.set()
        assert sorted(await asyncio.gather(*tasks)) == [False, True]
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1, 2]

    async def test_concurrent_starts_of_one_run_exactly_one_wins(
        self, store: EventStore
    ) -> None:
        gate = asyncio.Event()

        async def starter(n: int) -> bool:
            await gate.wait()
            try:
                await store.append([envelope("run-1", 1, data={"starter": n})],
                                   expected_version=0, summary=summary("run-1", 1))
            except ConcurrencyConflictError:
                return False
            return True

        tasks = [asyncio.create_task(starter(n)) for n in (1, 2, 3)]
        gate.set()
        won = await asyncio.gather(*tasks)
        assert sorted(won) == [False, False, True]
        [stored] = await store.read(TENANT, "run-1")
        assert stored.data == {"starter": won.index(True) + 1}

    async def test_twenty_concurrent_appends_exactly_one_wins(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        gate = asyncio.Event()

        async def writer(n: int) -> bool:
            await gate.wait()
            try:
                await store.append(
                    [envelope("run-1", 2, data={"writer": n})],
                    expected_version=1,
                    summary=summary("run-1", 2),
                )
            except ConcurrencyConflictError:
                return False
            return True

        tasks = [asyncio.create_task(writer(n)) for n in range(20)]
        gate.set()
        assert sorted(await asyncio.gather(*tasks)) == [False] * 19 + [True]
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1, 2]

    # -- idempotent retry of the same batch -------------------------------------------

    async def test_retried_batch_returns_same_version(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        await store.append(
            envelopes("run-1", 2, 3), expected_version=1, summary=summary("run-1", 3)
        )
        version = await store.append(
            envelopes("run-1", 2, 3), expected_version=1, summary=summary("run-1", 3)
        )
        assert version == 3

    async def test_retried_batch_stores_nothing_twice(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        await store.append(
            envelopes("run-1", 2, 3), expected_version=1, summary=summary("run-1", 3)
        )
        before = await store.read(TENANT, "run-1")
        await store.append(
            envelopes("run-1", 2, 3), expected_version=1, summary=summary("run-1", 3)
        )
        assert await store.read(TENANT, "run-1") == before

    async def test_retried_batch_leaves_projection(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2, waits=[wait("paid", "o-1")]))
        await store.append(
            [envelope("run-1", 2)],
            expected_version=1,
            summary=summary("run-1", 2, status="completed"),
        )
        assert await store.get_run(TENANT, "run-1") == summary(
            "run-1", 2, waits=[wait("paid", "o-1")]
        )
        assert await store.find_waits(TENANT, "paid", "o-1") == [("run-1", "wait-1")]

    async def test_retried_batch_succeeds_after_run_moved_on(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        await store.append(
            [envelope("run-1", 3)], expected_version=2, summary=summary("run-1", 3)
        )
        version = await store.append(
            [envelope("run-1", 2)], expected_version=1, summary=summary("run-1", 2)
        )
        assert version == 2
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1, 2, 3]

    async def test_retried_first_batch_of_run_returns_version(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        version = await store.append(
            envelopes("run-1", 1, 2), expected_version=0, summary=summary("run-1", 2)
        )
        assert version == 2

    async def test_batch_with_other_data_at_taken_version_conflicts(
        self, store: EventStore
    ) -> None:
        await create(store, summary("run-1", 2))
        with pytest.raises(ConcurrencyConflictError):
            await store.append(
                [envelope("run-1", 2, data={"n": "other"})],
                expected_version=1,
                summary=summary("run-1", 2),
            )

    async def test_batch_with_other_type_at_taken_version_conflicts(
        self, store: EventStore
    ) -> None:
        await create(store, summary("run-1", 2))
        event = replace(envelope("run-1", 2), type="RunCompleted")
        with pytest.raises(ConcurrencyConflictError):
            await store.append([event], expected_version=1, summary=summary("run-1", 2))

    async def test_batch_with_other_time_at_taken_version_conflicts(
        self, store: EventStore
    ) -> None:
        await create(store, summary("run-1", 2))
        event = replace(envelope("run-1", 2), at=at(99))
        with pytest.raises(ConcurrencyConflictError):
            await store.append([event], expected_version=1, summary=summary("run-1", 2))

    async def test_batch_partly_stored_conflicts(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        with pytest.raises(ConcurrencyConflictError):
            await store.append(
                envelopes("run-1", 2, 3), expected_version=1, summary=summary("run-1", 3)
            )
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1, 2]

    async def test_fenced_out_retry_conflicts(self, store: EventStore) -> None:
        await store.append(
            [envelope("run-1", 1)], expected_version=0, summary=summary("run-1", 1),
            fencing_token=5,
        )
        with pytest.raises(ConcurrencyConflictError):
            await store.append(
                [envelope("run-1", 1)], expected_version=0, summary=summary("run-1", 1),
                fencing_token=4,
            )

    # -- an action's outcome recorded with its report ----------------------------------

    async def test_append_records_the_result_with_the_events(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        await store.append(envelopes("run-1", 2, 3), expected_version=1,
                           summary=summary("run-1", 3), result=action_result(output="r"))
        assert await _ledger(store).get_result("run-1/charge/1") == action_result(output="r")
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1, 2, 3]

    async def test_append_with_another_stored_outcome_writes_nothing(
        self, store: EventStore
    ) -> None:
        await create(store, summary("run-1", 1))
        await _ledger(store).record_result(action_result(output="first"))
        with pytest.raises(NondeterminismError):
            await store.append(envelopes("run-1", 2, 3), expected_version=1,
                               summary=summary("run-1", 3),
                               result=action_result(output="second"))
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1]
        run = await store.get_run(TENANT, "run-1")
        assert run is not None
        assert run.version == 1
        assert await _ledger(store).get_result("run-1/charge/1") == action_result(
            output="first")

    async def test_append_with_the_equal_stored_outcome_appends(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        await _ledger(store).record_result(action_result())
        version = await store.append(envelopes("run-1", 2, 2), expected_version=1,
                                     summary=summary("run-1", 2), result=action_result())
        assert version == 2

    async def test_conflicting_append_records_no_result(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        with pytest.raises(ConcurrencyConflictError):
            await store.append(envelopes("run-1", 2, 3), expected_version=1,
                               summary=summary("run-1", 3), result=action_result())
        assert await _ledger(store).get_result("run-1/charge/1") is None

    async def test_retried_append_with_result_is_idempotent(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        for _ in range(2):
            version = await store.append(envelopes("run-1", 2, 3), expected_version=1,
                                         summary=summary("run-1", 3),
                                         result=action_result())
            assert version == 3
        assert await _ledger(store).get_result("run-1/charge/1") == action_result()

    # -- shape validation --------------------------------------------------------------

    async def test_append_rejects_gap_in_versions(self, store: EventStore) -> None:
        events = [envelope("run-1", 1), envelope("run-1", 3)]
        with pytest.raises(ValueError, match="consecutive"):
            await store.append(events, expected_version=0, summary=summary("run-1", 2))

    async def test_append_rejects_versions_not_after_expected(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="consecutive"):
            await store.append(
                [envelope("run-1", 2)], expected_version=0, summary=summary("run-1", 1)
            )

    async def test_append_rejects_event_of_another_run(self, store: EventStore) -> None:
        events = [envelope("run-1", 1), envelope("run-2", 2)]
        with pytest.raises(ValueError, match="belongs to"):
            await store.append(events, expected_version=0, summary=summary("run-1", 2))

    async def test_append_rejects_event_of_another_tenant(self, store: EventStore) -> None:
        events = [envelope("run-1", 1, tenant=OTHER_TENANT)]
        with pytest.raises(ValueError, match="belongs to"):
            await store.append(events, expected_version=0, summary=summary("run-1", 1))

    async def test_append_rejects_summary_at_other_version(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="summary"):
            await store.append(
                envelopes("run-1", 1, 2), expected_version=0, summary=summary("run-1", 1)
            )

    async def test_rejected_append_stores_nothing(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        with pytest.raises(ValueError, match="consecutive"):
            await store.append(
                [envelope("run-1", 2), envelope("run-1", 4)],
                expected_version=1,
                summary=summary("run-1", 3),
            )
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1]

    async def test_new_run_needs_events(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="at least one event"):
            await store.append([], expected_version=0, summary=summary("run-1", 0))

    async def test_empty_append_updates_projection(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        version = await store.append(
            [], expected_version=2, summary=summary("run-1", 2, status="waiting")
        )
        run = await store.get_run(TENANT, "run-1")
        assert (version, run is not None and run.status) == (2, "waiting")

    async def test_empty_append_checks_version(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        with pytest.raises(ConcurrencyConflictError):
            await store.append([], expected_version=1, summary=summary("run-1", 1))

    # -- fencing -----------------------------------------------------------------------

    async def test_append_with_older_fencing_token_conflicts(self, store: EventStore) -> None:
        await store.append(
            [envelope("run-1", 1)],
            expected_version=0,
            summary=summary("run-1", 1),
            fencing_token=5,
        )
        with pytest.raises(ConcurrencyConflictError):
            await store.append(
                [envelope("run-1", 2)],
                expected_version=1,
                summary=summary("run-1", 2),
                fencing_token=4,
            )

    async def test_append_with_same_fencing_token_succeeds(self, store: EventStore) -> None:
        await store.append(
            [envelope("run-1", 1)],
            expected_version=0,
            summary=summary("run-1", 1),
            fencing_token=5,
        )
        version = await store.append(
            [envelope("run-1", 2)],
            expected_version=1,
            summary=summary("run-1", 2),
            fencing_token=5,
        )
        assert version == 2

    async def test_newer_fencing_token_fences_out_older(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        for version, token in ((2, 3), (3, 7)):
            await store.append(
                [envelope("run-1", version)],
                expected_version=version - 1,
                summary=summary("run-1", version),
                fencing_token=token,
            )
        with pytest.raises(ConcurrencyConflictError):
            await store.append(
                [envelope("run-1", 4)],
                expected_version=3,
                summary=summary("run-1", 4),
                fencing_token=6,
            )

    async def test_unfenced_append_is_not_checked(self, store: EventStore) -> None:
        await store.append(
            [envelope("run-1", 1)],
            expected_version=0,
            summary=summary("run-1", 1),
            fencing_token=5,
        )
        version = await store.append(
            [envelope("run-1", 2)], expected_version=1, summary=summary("run-1", 2)
        )
        assert version == 2

    # -- tenants -----------------------------------------------------------------------

    async def test_other_tenant_reads_no_events(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        assert await store.read(OTHER_TENANT, "run-1") == []

    async def test_other_tenant_gets_no_run(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        assert await store.get_run(OTHER_TENANT, "run-1") is None

    async def test_tenants_have_separate_run_ids(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        await create(store, summary("run-1", 1, tenant=OTHER_TENANT))
        assert len(await store.read(TENANT, "run-1")) == 2
        assert len(await store.read(OTHER_TENANT, "run-1")) == 1

    # -- projection --------------------------------------------------------------------

    async def test_get_run_returns_latest_summary(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        await store.append(
            [envelope("run-1", 2)],
            expected_version=1,
            summary=summary("run-1", 2, status="completed"),
        )
        assert await store.get_run(TENANT, "run-1") == summary("run-1", 2, status="completed")

    async def test_unknown_run_has_no_summary(self, store: EventStore) -> None:
        assert await store.get_run(TENANT, "run-unknown") is None

    async def test_list_runs_newest_first(self, store: EventStore) -> None:
        for n, run_id in enumerate(["run-b", "run-c", "run-a"]):
            await create(store, summary(run_id, 1, created_at=at(n)))
        assert [s.run_id for s in await store.list_runs(TENANT)] == ["run-a", "run-c", "run-b"]

    async def test_list_runs_breaks_ties_by_run_id_desc(self, store: EventStore) -> None:
        for run_id in ["run-b", "run-c", "run-a"]:
            await create(store, summary(run_id, 1))
        assert [s.run_id for s in await store.list_runs(TENANT)] == ["run-c", "run-b", "run-a"]

    async def test_list_runs_filters_by_status(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1, status="running"))
        await create(store, summary("run-2", 1, status="failed"))
        await create(store, summary("run-3", 1, status="completed"))
        runs = await store.list_runs(TENANT, statuses=["failed", "completed"])
        assert sorted(s.run_id for s in runs) == ["run-2", "run-3"]

    # -- a start from the latest definition version --------------------------------------

    async def test_a_start_from_the_latest_version_is_stored(self, store: EventStore) -> None:
        await _definitions(store).put_definition(definition(1))
        # Versions of another definition id and of another tenant do not count.
        await _definitions(store).put_definition(definition(2, definition_id="other"))
        await _definitions(store).put_definition(definition(2, tenant=OTHER_TENANT))
        await store.append(envelopes("run-1", 1, 2), expected_version=0,
                           summary=summary("run-1", 2), latest_definition=True)
        assert await store.get_run(TENANT, "run-1") == summary("run-1", 2)

    async def test_a_start_from_a_superseded_version_stores_nothing(
        self, store: EventStore
    ) -> None:
        for version in (1, 2):
            await _definitions(store).put_definition(definition(version))
        # summary() names version 1 of "order"; version 2 is registered.
        with pytest.raises(DefinitionSupersededError) as raised:
            await store.append(envelopes("run-1", 1, 2), expected_version=0,
                               summary=summary("run-1", 2), latest_definition=True)
        assert raised.value.details == {"latest": 2}
        assert raised.value.retryable
        assert await store.get_run(TENANT, "run-1") is None
        assert await store.read(TENANT, "run-1") == []
        # Without the check (a start naming version 1) it is stored.
        await store.append(envelopes("run-1", 1, 2), expected_version=0,
                           summary=summary("run-1", 2))
        assert await store.get_run(TENANT, "run-1") == summary("run-1", 2)

    async def test_an_append_checking_the_latest_version_of_a_started_run(
        self, store: EventStore
    ) -> None:
        await _definitions(store).put_definition(definition(1))
        await create(store, summary("run-1", 1))
        await store.append(envelopes("run-1", 2, 2), expected_version=1,
                           summary=summary("run-1", 2), latest_definition=True)
        await _definitions(store).put_definition(definition(2))
        with pytest.raises(DefinitionSupersededError):
            await store.append(envelopes("run-1", 3, 3), expected_version=2,
                               summary=summary("run-1", 3), latest_definition=True)
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1, 2]
        assert await store.get_run(TENANT, "run-1") == summary("run-1", 2)

    async def test_list_runs_filters_by_definition(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1, definition_id="order"))
        await create(store, summary("run-2", 1, definition_id="refund"))
        runs = await store.list_runs(TENANT, definition_id="refund")
        assert [s.run_id for s in runs] == ["run-2"]

    async def test_list_runs_pages_with_limit_and_offset(self, store: EventStore) -> None:
        for n in range(5):
            await create(store, summary(f"run-{n}", 1, created_at=at(n)))
        page = await store.list_runs(TENANT, limit=2, offset=1)
        assert [s.run_id for s in page] == ["run-3", "run-2"]

    async def test_list_runs_excludes_other_tenants(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1))
        await create(store, summary("run-2", 1, tenant=OTHER_TENANT))
        assert [s.run_id for s in await store.list_runs(TENANT)] == ["run-1"]

    async def test_list_runs_rejects_nonpositive_limit(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="limit"):
            await store.list_runs(TENANT, limit=0)

    # -- waits and human tasks ---------------------------------------------------------

    async def test_find_waits_matches_name_and_key_exactly(self, store: EventStore) -> None:
        waits = [wait("paid", "o-1", "w1"), wait("paid", "o-2", "w2"), wait("sent", "o-1", "w3")]
        await create(store, summary("run-1", 1, waits=waits))
        assert await store.find_waits(TENANT, "paid", "o-1") == [("run-1", "w1")]

    async def test_find_waits_orders_by_run_id(self, store: EventStore) -> None:
        for run_id in ["run-c", "run-a", "run-b"]:
            await create(store, summary(run_id, 1, waits=[wait("paid", "o-1")]))
        found = await store.find_waits(TENANT, "paid", "o-1")
        assert [run_id for run_id, _ in found] == ["run-a", "run-b", "run-c"]

    async def test_waits_are_replaced_by_next_append(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1, waits=[wait("paid", "o-1")]))
        await store.append(
            [envelope("run-1", 2)],
            expected_version=1,
            summary=summary("run-1", 2, waits=[wait("sent", "o-1")]),
        )
        assert await store.find_waits(TENANT, "paid", "o-1") == []
        assert await store.find_waits(TENANT, "sent", "o-1") == [("run-1", "wait-1")]

    async def test_find_waits_excludes_other_tenants(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1, waits=[wait("paid", "o-1")]))
        assert await store.find_waits(OTHER_TENANT, "paid", "o-1") == []

    async def test_human_tasks_listed_oldest_first(self, store: EventStore) -> None:
        tasks = [human_task("t-new", "run-1", created_at=at(5)), human_task("t-old", "run-1")]
        await create(store, summary("run-1", 1, human_tasks=tasks))
        assert [t.task_id for t in await store.list_human_tasks(TENANT)] == ["t-old", "t-new"]

    async def test_human_tasks_filter_by_assignee(self, store: EventStore) -> None:
        tasks = [human_task("t-1", "run-1", assignee="ann"), human_task("t-2", "run-1")]
        await create(store, summary("run-1", 1, human_tasks=tasks))
        found = await store.list_human_tasks(TENANT, assignee="ann")
        assert [t.task_id for t in found] == ["t-1"]

    async def test_get_human_task_returns_open_task(self, store: EventStore) -> None:
        task = human_task("t-1", "run-1")
        await create(store, summary("run-1", 1, human_tasks=[task]))
        assert await store.get_human_task(TENANT, "t-1") == task

    async def test_human_task_closes_with_next_append(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1, human_tasks=[human_task("t-1", "run-1")]))
        await store.append([envelope("run-1", 2)], expected_version=1, summary=summary("run-1", 2))
        assert await store.get_human_task(TENANT, "t-1") is None
        assert await store.list_human_tasks(TENANT) == []

    async def test_human_tasks_invisible_to_other_tenant(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1, human_tasks=[human_task("t-1", "run-1")]))
        assert await store.get_human_task(OTHER_TENANT, "t-1") is None
        assert await store.list_human_tasks(OTHER_TENANT) == []

    async def test_human_task_id_is_unique_per_tenant(self, store: EventStore) -> None:
        await create(store, summary("run-1", 1, human_tasks=[human_task("t-1", "run-1")]))
        with pytest.raises(ValueError, match="t-1"):
            await create(store, summary("run-2", 1, human_tasks=[human_task("t-1", "run-2")]))

    # -- load_run: a snapshot and the events after it, decoded --------------------------

    async def _decodable_run(self, store: EventStore, last: int) -> list[EventEnvelope]:
        """A run of ``last`` decodable events; two of them share their time, as the
        events of one decision do."""
        events = [StateSet(at=at(min(v, 3)), key=f"steps[{v}]", values={"v": v, "n": [v]})
                  for v in range(1, last + 1)]
        stored = [to_envelope(TENANT, "run-1", v, e) for v, e in enumerate(events, start=1)]
        await store.append(stored, expected_version=0, summary=summary("run-1", last))
        return stored

    async def test_load_run_decodes_what_read_returns(self, store: EventStore) -> None:
        stored = await self._decodable_run(store, 5)
        snapshot, events = await store.load_run(TENANT, "run-1")
        assert snapshot is None
        assert events == [decode_envelope(e) for e in await store.read(TENANT, "run-1")]
        assert [e.values["v"] for e in events] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
        assert len(stored) == 5

    async def test_load_run_starts_after_the_newest_snapshot(self, store: EventStore) -> None:
        stored = await self._decodable_run(store, 6)
        for version in (2, 4):
            await store.save_snapshot(snapshot("run-1", version))
        loaded, events = await store.load_run(TENANT, "run-1")
        assert loaded == snapshot("run-1", 4)
        assert events == [decode_envelope(e) for e in stored[4:]]

    async def test_load_run_upto_a_version_takes_the_snapshot_before_it(
        self, store: EventStore
    ) -> None:
        stored = await self._decodable_run(store, 6)
        for version in (2, 4):
            await store.save_snapshot(snapshot("run-1", version))
        loaded, events = await store.load_run(TENANT, "run-1", upto=3)
        assert loaded == snapshot("run-1", 2)
        assert events == [decode_envelope(stored[2])]
        assert await store.load_run(TENANT, "run-1", upto=4) == (snapshot("run-1", 4), [])

    async def test_load_run_after_a_version_reads_no_snapshot(self, store: EventStore) -> None:
        stored = await self._decodable_run(store, 5)
        await store.save_snapshot(snapshot("run-1", 4))
        assert await store.load_run(TENANT, "run-1", after=2) == (
            None, [decode_envelope(e) for e in stored[2:]])
        assert await store.load_run(TENANT, "run-1", after=2, upto=3) == (
            None, [decode_envelope(stored[2])])
        assert await store.load_run(TENANT, "run-1", after=5) == (None, [])

    async def test_load_run_of_an_unknown_or_foreign_run_is_empty(
        self, store: EventStore
    ) -> None:
        await self._decodable_run(store, 2)
        assert await store.load_run(TENANT, "nope") == (None, [])
        assert await store.load_run(OTHER_TENANT, "run-1") == (None, [])
        assert await store.load_run(OTHER_TENANT, "run-1", after=0) == (None, [])

    # -- snapshots ---------------------------------------------------------------------

    async def test_load_snapshot_returns_newest(self, store: EventStore) -> None:
        await create(store, summary("run-1", 5))
        for version in (2, 4, 3):
            await store.save_snapshot(snapshot("run-1", version))
        assert await store.load_snapshot(TENANT, "run-1") == snapshot("run-1", 4)

    async def test_load_snapshot_at_or_before_version(self, store: EventStore) -> None:
        await create(store, summary("run-1", 5))
        for version in (2, 4):
            await store.save_snapshot(snapshot("run-1", version))
        assert await store.load_snapshot(TENANT, "run-1", at_or_before=3) == snapshot("run-1", 2)

    async def test_load_snapshot_before_any_is_none(self, store: EventStore) -> None:
        await create(store, summary("run-1", 5))
        await store.save_snapshot(snapshot("run-1", 4))
        assert await store.load_snapshot(TENANT, "run-1", at_or_before=3) is None

    async def test_save_snapshot_replaces_same_version(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        await store.save_snapshot(snapshot("run-1", 2))
        replacement = Snapshot(tenant=TENANT, run_id="run-1", version=2, state={"v": "new"})
        await store.save_snapshot(replacement)
        assert await store.load_snapshot(TENANT, "run-1") == replacement

    async def test_snapshot_invisible_to_other_tenant(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        await store.save_snapshot(snapshot("run-1", 2))
        assert await store.load_snapshot(OTHER_TENANT, "run-1") is None

    async def test_snapshot_beyond_history_is_rejected(self, store: EventStore) -> None:
        await create(store, summary("run-1", 2))
        with pytest.raises(ValueError, match="version 3"):
            await store.save_snapshot(snapshot("run-1", 3))


class DefinitionStoreContract:
    """Behaviour every DefinitionStore adapter must show. Subclasses override ``definitions``."""

    @pytest.fixture
    async def definitions(self) -> AsyncIterator[DefinitionStore]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    async def test_unknown_definition_is_none(self, definitions: DefinitionStore) -> None:
        assert await definitions.get_definition(TENANT, "order") is None

    async def test_get_definition_by_version(self, definitions: DefinitionStore) -> None:
        for version in (1, 2):
            await definitions.put_definition(definition(version))
        assert await definitions.get_definition(TENANT, "order", 1) == definition(1)

    async def test_get_definition_defaults_to_highest(self, definitions: DefinitionStore) -> None:
        for version in (2, 10, 3):
            await definitions.put_definition(definition(version))
        assert await definitions.get_definition(TENANT, "order") == definition(10)

    async def test_unknown_version_is_none(self, definitions: DefinitionStore) -> None:
        await definitions.put_definition(definition(1))
        assert await definitions.get_definition(TENANT, "order", 2) is None

    async def test_put_identical_definition_is_noop(self, definitions: DefinitionStore) -> None:
        await definitions.put_definition(definition(1))
        await definitions.put_definition(definition(1))
        assert await definitions.get_definition(TENANT, "order", 1) == definition(1)

    async def test_put_changed_definition_conflicts(self, definitions: DefinitionStore) -> None:
        await definitions.put_definition(definition(1))
        with pytest.raises(DefinitionError) as raised:
            await definitions.put_definition(definition(1, content_hash="other"))
        assert raised.value.code == ErrorCode.DEFINITION_CONFLICT

    async def test_conflicting_put_keeps_first(self, definitions: DefinitionStore) -> None:
        await definitions.put_definition(definition(1))
        with pytest.raises(DefinitionError):
            await definitions.put_definition(definition(1, content_hash="other"))
        assert await definitions.get_definition(TENANT, "order", 1) == definition(1)

    async def test_definitions_are_per_tenant(self, definitions: DefinitionStore) -> None:
        await definitions.put_definition(definition(1))
        await definitions.put_definition(definition(1, tenant=OTHER_TENANT, content_hash="b"))
        found = await definitions.get_definition(OTHER_TENANT, "order")
        assert found is not None
        assert found.content_hash == "b"
        assert await definitions.get_definition(TENANT, "order") == definition(1)


class ActionLedgerContract:
    """Behaviour every ActionLedger adapter must show. Subclasses override ``ledger``."""

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[ActionLedger]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    async def test_unknown_key_has_no_result(self, ledger: ActionLedger) -> None:
        assert await ledger.get_result("run-1/charge/1") is None

    async def test_record_returns_stored_result(self, ledger: ActionLedger) -> None:
        assert await ledger.record_result(action_result()) == action_result()

    async def test_recorded_result_can_be_read(self, ledger: ActionLedger) -> None:
        await ledger.record_result(action_result(output={"receipt": "r-1"}))
        assert await ledger.get_result("run-1/charge/1") == action_result(output={"receipt": "r-1"})

    async def test_recording_equal_result_is_noop(self, ledger: ActionLedger) -> None:
        await ledger.record_result(action_result())
        assert await ledger.record_result(action_result()) == action_result()

    async def test_recording_other_outcome_is_nondeterminism(self, ledger: ActionLedger) -> None:
        await ledger.record_result(action_result(ok=True))
        with pytest.raises(NondeterminismError):
            await ledger.record_result(action_result(ok=False))

    async def test_recording_other_output_is_nondeterminism(self, ledger: ActionLedger) -> None:
        await ledger.record_result(action_result(output="a"))
        with pytest.raises(NondeterminismError):
            await ledger.record_result(action_result(output="b"))

    async def test_nondeterministic_record_keeps_first(self, ledger: ActionLedger) -> None:
        await ledger.record_result(action_result(output="a"))
        with pytest.raises(NondeterminismError):
            await ledger.record_result(action_result(output="b"))
        assert await ledger.get_result("run-1/charge/1") == action_result(output="a")

    async def test_results_are_keyed_independently(self, ledger: ActionLedger) -> None:
        await ledger.record_result(action_result("run-1/charge/1", output="a"))
        await ledger.record_result(action_result("run-1/charge/2", output="b"))
        assert await ledger.get_result("run-1/charge/1") == action_result(
            "run-1/charge/1", output="a"
        )

    async def test_concurrent_records_store_exactly_one(self, ledger: ActionLedger) -> None:
        gate = asyncio.Event()

        async def recorder(output: str) -> bool:
            await gate.wait()
            try:
                await ledger.record_result(action_result(output=output))
            except NondeterminismError:
                return False
            return True

        tasks = [asyncio.create_task(recorder(output)) for output in ("a", "b")]
        gate.set()
        assert sorted(await asyncio.gather(*tasks)) == [False, True]


class AuditLogContract:
    """Behaviour every AuditLog adapter must show. Subclasses override ``audit_log``."""

    @pytest.fixture
    async def audit_log(self) -> AsyncIterator[AuditLog]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    async def test_empty_log_lists_nothing(self, audit_log: AuditLog) -> None:
        assert await audit_log.list_audit(TENANT) == []

    async def test_records_listed_oldest_first(self, audit_log: AuditLog) -> None:
        for n in range(3):
            await audit_log.append_audit(audit(n=n))
        assert [r.data["n"] for r in await audit_log.list_audit(TENANT)] == [0, 1, 2]

    async def test_positions_are_assigned_increasing(self, audit_log: AuditLog) -> None:
        for n in range(3):
            await audit_log.append_audit(audit(n=n))
        positions = [r.position for r in await audit_log.list_audit(TENANT)]
        assert positions == sorted(set(positions))
        assert positions[0] > 0

    async def test_list_filters_by_kind(self, audit_log: AuditLog) -> None:
        await audit_log.append_audit(audit("unmatched_event", n=0))
        await audit_log.append_audit(audit("refused_work", n=1))
        found = await audit_log.list_audit(TENANT, kind="refused_work")
        assert [(r.kind, r.data["n"]) for r in found] == [("refused_work", 1)]

    async def test_limit_returns_oldest(self, audit_log: AuditLog) -> None:
        for n in range(4):
            await audit_log.append_audit(audit(n=n))
        found = await audit_log.list_audit(TENANT, limit=2)
        assert [r.data["n"] for r in found] == [0, 1]

    async def test_records_are_per_tenant(self, audit_log: AuditLog) -> None:
        await audit_log.append_audit(audit(n=0))
        await audit_log.append_audit(audit(tenant=OTHER_TENANT, n=1))
        assert [r.data["n"] for r in await audit_log.list_audit(OTHER_TENANT)] == [1]
