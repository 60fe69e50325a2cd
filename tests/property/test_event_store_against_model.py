"""The SQL event store against the in-memory model, by random operations.

One machine covers everything ``SqlEventStore`` implements: appends (with optimistic
concurrency, idempotent retries, fencing tokens and shape errors), reads, snapshots, the
run projection (``get_run``, ``list_runs``), the wait and human-task indexes, the action
ledger, the audit log and the definition store. Positions are the store's own, so they
are compared as "increasing in append order" rather than by value.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule

from tests.contract.helpers import T0, at
from tests.property.sides import POSTGRES_SETTINGS, SideBySide, run_machine
from wfadapters.memory import InMemoryEventStore
from wfadapters.sql.database import Database
from wfadapters.sql.event_store import SqlEventStore
from wfdomain.records import (
    ActionResult,
    AuditRecord,
    EventEnvelope,
    HumanTaskRecord,
    RunStatus,
    RunSummary,
    Snapshot,
    StoredDefinition,
    WaitRegistration,
)

TENANTS = st.sampled_from(["a", "a", "b"])
RUNS = st.sampled_from(["r1", "r2", "r3"])
STATUSES: list[RunStatus] = ["running", "waiting", "completed", "failed", "cancelled"]
WAITS = [WaitRegistration(event_name=n, correlation_key=k, step_key=s)
         for n, k, s in [("paid", "o-1", "w1"), ("paid", "o-2", "w1"), ("shipped", "o-1", "w2")]]
TASK_IDS = ("task-1", "task-2")


def task(tenant: str, run_id: str, task_id: str, assignee: str | None) -> HumanTaskRecord:
    return HumanTaskRecord(
        task_id=task_id, tenant=tenant, run_id=run_id, step_key=f"steps[{task_id[-1]}]",
        title="Approve", assignee=assignee, outcomes=("approve", "reject"),
        form_schema=None, deadline=None, created_at=at(int(task_id[-1])),
    )


def without_position(value: Any) -> Any:
    """Drop store-assigned positions (compared separately) from records and lists."""
    if isinstance(value, list):
        return [without_position(v) for v in value]
    if isinstance(value, EventEnvelope | AuditRecord):
        return replace(value, position=0)
    return value


class EventStoreMachine(SideBySide[SqlEventStore | InMemoryEventStore]):
    def __init__(self) -> None:
        super().__init__()
        # The last append each run accepted: retrying it must be a no-op on every side.
        self.last_batch: dict[tuple[str, str], tuple[list[EventEnvelope], int, RunSummary]] = {}
        self.results = 0

    def build(self, db: Database | None) -> SqlEventStore | InMemoryEventStore:
        return InMemoryEventStore() if db is None else SqlEventStore(db)

    def version(self, tenant: str, run_id: str) -> int:
        summary = self.run(self.sides[0].adapter.get_run(tenant, run_id))
        return 0 if summary is None else summary.version

    # -- appends --------------------------------------------------------------------------

    @rule(
        tenant=TENANTS, run_id=RUNS, n=st.sampled_from([1, 1, 2, 3, 0]),
        version_skew=st.sampled_from([0] * 8 + [-1, 1]),
        shape=st.sampled_from(["ok"] * 16 + ["gap", "other_run", "summary_version"]),
        variant=st.integers(0, 1), status=st.sampled_from(STATUSES),
        definition_id=st.sampled_from(["order", "refund"]), created_s=st.integers(0, 2),
        waits=st.lists(st.sampled_from(WAITS), max_size=2, unique=True),
        tasks=st.lists(st.tuples(st.sampled_from(TASK_IDS), st.sampled_from([None, "al"])),
                       max_size=2, unique_by=lambda t: t[0]),
        fencing=st.sampled_from([None, None, 1, 2, 3]),
    )
    def append(
        self, tenant: str, run_id: str, n: int, version_skew: int, shape: str, variant: int,
        status: RunStatus, definition_id: str, created_s: int, waits: list[WaitRegistration],
        tasks: list[tuple[str, str | None]], fencing: int | None,
    ) -> None:
        expected = max(0, self.version(tenant, run_id) + version_skew)
        events = [
            EventEnvelope(tenant=tenant, run_id=run_id, version=expected + i, type="StateSet",
                          at=at(expected + i), data={"key": f"steps[{expected + i}]", "values": {
                              "n": expected + i, "variant": variant}})
            for i in range(1, n + 1)
        ]
        if shape == "gap" and events:
            events[-1] = replace(events[-1], version=events[-1].version + 1)
        if shape == "other_run" and events:
            events[0] = replace(events[0], run_id="elsewhere")
        summary = RunSummary(
            tenant=tenant, run_id=run_id, definition_id=definition_id, definition_version=1,
            definition_hash="h", status=status, engine="test", queue="default",
            version=expected + n + (shape == "summary_version"),
            created_at=T0 + timedelta(seconds=created_s),
            last_progress_at=at(expected + n), waits=tuple(waits),
            human_tasks=tuple(task(tenant, run_id, t, who) for t, who in tasks),
        )
        outcome = self.compare(
            f"append({tenant}/{run_id}, {n} events after {expected}, {shape}, v{variant}, "
            f"{status}, waits={[w.correlation_key for w in waits]}, tasks={tasks}, "
            f"fencing={fencing})",
            lambda s, _: s.append(events, expected_version=expected, summary=summary,
                                  fencing_token=fencing),
        )
        if outcome[0] == "ok" and events:
            self.last_batch[(tenant, run_id)] = (events, expected, summary)

    @initialize(runs=st.lists(st.tuples(TENANTS, RUNS), min_size=1, max_size=3, unique=True))
    def start_some_runs(self, runs: list[tuple[str, str]]) -> None:
        for tenant, run_id in runs:
            self.grow(tenant, run_id, 2)

    @rule(tenant=TENANTS, run_id=RUNS, n=st.integers(1, 3))
    def grow(self, tenant: str, run_id: str, n: int) -> None:
        """A well-formed append at the current version (most appends in a real run)."""
        self.append(tenant, run_id, n, 0, "ok", 0, "running", "order", 0, [], [], None)

    @rule(data=st.data())
    def retry_an_accepted_append(self, data: st.DataObject) -> None:
        if not self.last_batch:
            return
        key = data.draw(st.sampled_from(sorted(self.last_batch)), label="run")
        events, expected, summary = self.last_batch[key]
        self.compare(f"retry append({key}, after {expected})",
                     lambda s, _: s.append(events, expected_version=expected, summary=summary))

    # -- reads ----------------------------------------------------------------------------

    @rule(tenant=TENANTS, run_id=RUNS, after=st.integers(0, 4),
          upto=st.sampled_from([None, 0, 2, 5]))
    def read(self, tenant: str, run_id: str, after: int, upto: int | None) -> None:
        outcome = self.compare(f"read({tenant}/{run_id}, after={after}, upto={upto})",
                               lambda s, _: s.read(tenant, run_id, after=after, upto=upto),
                               lambda v, _: without_position(v))
        del outcome

    @rule(tenant=TENANTS)
    def positions_increase_in_append_order(self, tenant: str) -> None:
        for side in self.sides:
            for run_id in ("r1", "r2", "r3"):
                events = self.run(side.adapter.read(tenant, run_id))
                positions = [e.position for e in events]
                assert positions == sorted(set(positions)), (side.name, positions)
                assert all(p > 0 for p in positions), (side.name, positions)

    @rule(tenant=TENANTS, run_id=RUNS)
    def get_run(self, tenant: str, run_id: str) -> None:
        self.compare(f"get_run({tenant}/{run_id})", lambda s, _: s.get_run(tenant, run_id))

    @rule(tenant=TENANTS,
          statuses=st.sampled_from([None, ["running"], ["completed", "failed"], []]),
          definition_id=st.sampled_from([None, "order"]),
          limit=st.sampled_from([1, 2, 100, 0]), offset=st.sampled_from([0, 0, 1, -1]))
    def list_runs(self, tenant: str, statuses: list[str] | None, definition_id: str | None,
                  limit: int, offset: int) -> None:
        self.compare(
            f"list_runs({tenant}, statuses={statuses}, definition={definition_id}, "
            f"limit={limit}, offset={offset})",
            lambda s, _: s.list_runs(tenant, statuses=statuses, definition_id=definition_id,
                                     limit=limit, offset=offset),
        )

    @rule(tenant=TENANTS, name=st.sampled_from(["paid", "shipped"]),
          key=st.sampled_from(["o-1", "o-2"]))
    def find_waits(self, tenant: str, name: str, key: str) -> None:
        self.compare(f"find_waits({tenant}, {name}, {key})",
                     lambda s, _: s.find_waits(tenant, name, key))

    @rule(tenant=TENANTS, assignee=st.sampled_from([None, "al", "bo"]),
          task_id=st.sampled_from(TASK_IDS))
    def human_tasks(self, tenant: str, assignee: str | None, task_id: str) -> None:
        self.compare(f"list_human_tasks({tenant}, assignee={assignee})",
                     lambda s, _: s.list_human_tasks(tenant, assignee=assignee))
        self.compare(f"get_human_task({tenant}, {task_id})",
                     lambda s, _: s.get_human_task(tenant, task_id))

    # -- snapshots ------------------------------------------------------------------------

    @rule(tenant=TENANTS, run_id=RUNS, skew=st.sampled_from([0, 0, -1, -2, 1]),
          variant=st.integers(0, 1))
    def save_snapshot(self, tenant: str, run_id: str, skew: int, variant: int) -> None:
        version = max(0, self.version(tenant, run_id) + skew)
        snapshot = Snapshot(tenant=tenant, run_id=run_id, version=version,
                            state={"version": version, "variant": variant, "nested": [1, {}]})
        self.compare(f"save_snapshot({tenant}/{run_id}@{version}, v{variant})",
                     lambda s, _: s.save_snapshot(snapshot))

    @rule(tenant=TENANTS, run_id=RUNS, at_or_before=st.sampled_from([None, 0, 1, 3, 5]))
    def load_snapshot(self, tenant: str, run_id: str, at_or_before: int | None) -> None:
        self.compare(f"load_snapshot({tenant}/{run_id}, at_or_before={at_or_before})",
                     lambda s, _: s.load_snapshot(tenant, run_id, at_or_before=at_or_before))

    @rule(tenant=TENANTS, run_id=RUNS, after=st.sampled_from([None, None, 0, 2]),
          upto=st.sampled_from([None, 1, 3, 5]))
    def load_run(self, tenant: str, run_id: str, after: int | None, upto: int | None) -> None:
        self.compare(f"load_run({tenant}/{run_id}, after={after}, upto={upto})",
                     lambda s, _: s.load_run(tenant, run_id, after=after, upto=upto))

    # -- action ledger, audit log, definitions --------------------------------------------

    @rule(key=st.sampled_from(["k/1", "k/2", "j/1"]), ok=st.booleans(),
          output=st.sampled_from([None, 1, "x", {"a": [1, 2]}]))
    def record_result(self, key: str, ok: bool, output: Any) -> None:
        result = ActionResult(result_key=key, idempotency_key=key.split("/")[0], ok=ok,
                              output=output if ok else None,
                              error=None if ok else {"code": "BOOM", "detail": output})
        self.compare(f"record_result({key}, ok={ok}, {output!r})",
                     lambda s, _: s.record_result(result))

    @rule(key=st.sampled_from(["k/1", "k/2", "j/1", "none"]))
    def get_result(self, key: str) -> None:
        self.compare(f"get_result({key})", lambda s, _: s.get_result(key))

    @rule(tenant=TENANTS, kind=st.sampled_from(["unmatched", "refused"]),
          run_id=st.sampled_from([None, "r1"]), n=st.integers(0, 2))
    def append_audit(self, tenant: str, kind: str, run_id: str | None, n: int) -> None:
        record = AuditRecord(tenant=tenant, kind=kind, at=at(n), run_id=run_id, data={"n": n})
        self.compare(f"append_audit({tenant}, {kind}, {run_id}, {n})",
                     lambda s, _: s.append_audit(record))

    @rule(tenant=TENANTS, kind=st.sampled_from([None, "unmatched"]),
          limit=st.sampled_from([1, 2, 100, 0]))
    def list_audit(self, tenant: str, kind: str | None, limit: int) -> None:
        self.compare(f"list_audit({tenant}, kind={kind}, limit={limit})",
                     lambda s, _: s.list_audit(tenant, kind=kind, limit=limit),
                     lambda v, _: without_position(v))

    @rule(tenant=TENANTS, definition_id=st.sampled_from(["order", "refund"]),
          version=st.integers(1, 2), content=st.integers(0, 1))
    def put_definition(self, tenant: str, definition_id: str, version: int, content: int) -> None:
        stored = StoredDefinition(
            tenant=tenant, definition_id=definition_id, version=version,
            content_hash=f"hash-{version}-{content}",
            document={"id": definition_id, "version": version, "steps": [], "c": content},
        )
        self.compare(f"put_definition({tenant}, {definition_id} v{version}, c{content})",
                     lambda s, _: s.put_definition(stored))

    @rule(tenant=TENANTS, definition_id=st.sampled_from(["order", "refund"]),
          version=st.sampled_from([None, 1, 2, 3]))
    def get_definition(self, tenant: str, definition_id: str, version: int | None) -> None:
        self.compare(f"get_definition({tenant}, {definition_id}, {version})",
                     lambda s, _: s.get_definition(tenant, definition_id, version))


def test_sqlite_event_store_agrees_with_the_model(tmp_path: Path) -> None:
    run_machine(EventStoreMachine, sqlite_dir=tmp_path)


@pytest.mark.postgres
def test_postgres_event_store_agrees_with_the_model(postgres_dsn: str) -> None:
    run_machine(EventStoreMachine, postgres_dsn=postgres_dsn, budget=POSTGRES_SETTINGS)
