"""Storage cost of the SQL event store beside its raw driver, on SQLite and Postgres.

Run from the repository root (Postgres on 127.0.0.1:5432, trust auth, database ``test``):

    .venv/bin/python bench/storage.py             # 5 repetitions, runs of 100/10k/100k
    .venv/bin/python bench/storage.py --quick     # 3 repetitions, runs of 100/10k
    .venv/bin/python bench/storage.py --profile append   # cProfile one timed part instead

Each backend is measured in one run: SQLite is a file in a temporary directory opened
through ``Database.open`` (the engine's pragmas: WAL, ``synchronous=FULL``, ``BEGIN
IMMEDIATE``); Postgres is a fresh schema, dropped afterwards. Both get the schema by
``migrate.upgrade``.

Figures (median of the repetitions, min-max; one untimed warm-up before each series):

* ``raw commit``: ``engine.begin()`` + one Core INSERT of a ~300 B row into a plain table
  (no index but its key), through the same engine: commits/s.
* ``append 1``: ``SqlEventStore.append`` of one event per call on one run, with the
  ``RunSummary`` the runtime would pass (``projection.summarize``, computed beforehand):
  appends/s. ``append 10``: ten events per call, events/s.
* ``append 1 / raw``: per repetition, the two series run back to back (interleaved), so
  the ratio is free of the machine's drift. Target: >= 0.6.
* ``load N``: what ``Runtime._load`` does on a run of N events stored with a snapshot at
  every multiple of 100 (as ``Runtime._append`` saves them): ``load_run`` (the newest
  snapshot and the decoded tail, in one read) + ``replay``, in ms. ``load(max) /
  load(100)`` is taken per repetition. Target: <= 2x.
* ``load 10k, no snapshot``: the same run of 10,000 read whole and folded (information).

The histories are the ``bench/replay.py`` pattern (order lines: an ``action`` per line,
one line in five fails once and is retried after a durable timer) as a definition of many
successive ``for_each`` steps of ``LINES`` lines each. ``decide`` drives the first two
steps; the first step's events are the template, renumbered (``steps[k]``) and shifted in
time for every later step; the decided second step must equal the renumbered template.
A run therefore has bounded state (one live ``for_each``), as a long-lived run in steady
state would. Histories are appended in batches of 500 events, with the summary and the
snapshots folded incrementally.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, text

from wfadapters.sql.database import Database
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.migrate import upgrade
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.codec import (
    decode_envelope,
    decode_event,
    decode_state,
    encode_event,
    encode_state,
    to_envelope,
)
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import parse_definition
from wfdomain.projection import summarize
from wfdomain.records import EventEnvelope, RunSummary, Snapshot
from wfdomain.state import RunState, replay

PG_URL = "postgres://postgres@127.0.0.1:5432/test"
TENANT = "acme"
LINES = 100  # order lines per for_each step
REPEATS = 200  # for_each steps in the definition (enough for 100k events)
SNAPSHOT_EVERY = 100
BATCH = 500
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TEMPLATE_RUN = "run-template"

STEP = {
    "type": "for_each", "items": "input.items", "max_concurrency": 10,
    "do": [{"type": "action", "action": "ship",
            "input": "{'sku': item.sku, 'qty': item.qty, 'line': index}",
            "retry": {"max_attempts": 3, "initial_interval_s": 5},
            "save_as": "last_shipment"}],
}
DEFINITION = {
    "id": "bulk_fulfilment_batches", "version": 1,
    "steps": [*([STEP] * REPEATS), {"type": "return", "output": "'done'"}],
}


# ------------------------------------------------------------------------------ history


def decided_history(run_id: str, steps: int) -> list[ev.WorkflowEvent]:
    """Drive ``decide`` (as ``bench/replay.py`` does) until ``steps[<steps>]`` starts."""
    definition = parse_definition(DEFINITION)
    items = [{"sku": f"SKU-{i:05d}", "qty": 1 + i % 4} for i in range(LINES)]
    now = T0
    history: list[ev.WorkflowEvent] = [ev.RunStarted(
        at=now, run_id=run_id, tenant=TENANT, definition_id=definition.id,
        definition_version=definition.version, definition_hash=definition.content_hash,
        input={"items": items}, engine="sqlite", queue="default",
    )]
    state = replay(history)
    pending: list[cmd.Input] = [cmd.Advance()]
    stop = f"steps[{steps}]"
    while pending:
        inp = pending.pop(0)
        now += timedelta(milliseconds=250)
        decision = decide(definition, state, inp, DecisionContext(now=now))
        state = replay(decision.events, state)
        history.extend(decision.events)
        if any(isinstance(e, ev.StepStarted) and e.key == stop for e in decision.events):
            return history
        for command in decision.commands:
            if isinstance(command, cmd.ExecuteAction):
                line = command.input["line"]
                if command.attempt == 1 and line % 5 == 4:
                    pending.append(cmd.ReportOutcome(
                        key=command.key, attempt=1, ok=False,
                        error={"code": "CARRIER_BUSY", "message": "try later",
                               "retryable": True}))
                else:
                    pending.append(cmd.ReportOutcome(
                        key=command.key, attempt=command.attempt, ok=True,
                        output={"tracking": f"TRK-{line:05d}-{command.attempt}"}))
            elif isinstance(command, cmd.StartTimer):
                pending.append(cmd.FireTimer(timer_id=command.timer_id))
    raise SystemExit(f"the run never started {stop}")


def _start_index(history: Sequence[ev.WorkflowEvent], key: str) -> int:
    return next(i for i, e in enumerate(history)
                if isinstance(e, ev.StepStarted) and e.key == key)


@dataclass(frozen=True, slots=True)
class Pattern:
    """One ``for_each`` step's events, stored as (type, time offset, data JSON)."""

    started: ev.RunStarted
    rows: list[tuple[str, timedelta, str]]
    span: timedelta

    def history(self, run_id: str, size: int) -> list[ev.WorkflowEvent]:
        """Return the first ``size`` events of a run ``run_id`` (template renumbered)."""
        events: list[ev.WorkflowEvent] = [replace(self.started, run_id=run_id)]
        k = 0
        while len(events) < size:
            if k >= REPEATS:
                raise SystemExit(f"{size} events need more than REPEATS={REPEATS} steps")
            shift = self.span * k
            base = self.started.at + shift
            for name, offset, raw in self.rows:
                data = json.loads(raw.replace(TEMPLATE_RUN, run_id)
                                  .replace("steps[0]", f"steps[{k}]"))
                if name == "TimerStarted":
                    fire_at = datetime.fromisoformat(data["fire_at"]) + shift
                    data["fire_at"] = fire_at.isoformat()
                events.append(decode_event(name, base + offset, data))
                if len(events) == size:
                    break
            k += 1
        return events


def make_pattern() -> Pattern:
    """Decide two steps; return the first as a template, checked against the second."""
    decided = decided_history(TEMPLATE_RUN, 2)
    first, second, end = (_start_index(decided, f"steps[{k}]") for k in range(3))
    assert first == 1, "the template must start right after RunStarted"
    started = decided[0]
    assert isinstance(started, ev.RunStarted)
    span = decided[second].at - decided[first].at
    rows = []
    for event in decided[first:second]:
        name, at, data = encode_event(event)
        rows.append((name, at - started.at, json.dumps(data)))
    pattern = Pattern(started, rows, span)
    assert pattern.history(TEMPLATE_RUN, end) == decided[:end], "template is not periodic"
    return pattern


def envelopes(events: Sequence[ev.WorkflowEvent], first_version: int = 1) -> list[EventEnvelope]:
    """Wrap events for storage; the run id comes from the history's RunStarted."""
    started = events[0]
    assert isinstance(started, ev.RunStarted)
    return [to_envelope(TENANT, started.run_id, first_version + i, e)
            for i, e in enumerate(events)]


# -------------------------------------------------------------------------------- store


async def store_run(
    store: SqlEventStore, events: Sequence[ev.WorkflowEvent], label: str
) -> RunState:
    """Append ``events`` in batches of ``BATCH``, snapshot at each multiple of 100."""
    state = RunState()
    rows = envelopes(events)
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        stop = min(start + BATCH, len(events))
        snapshots: list[Snapshot] = []
        cut = start
        while cut < stop:
            upto = min(stop, (cut // SNAPSHOT_EVERY + 1) * SNAPSHOT_EVERY)
            state = replay(events[cut:upto], state)
            if upto % SNAPSHOT_EVERY == 0:
                snapshots.append(Snapshot(tenant=TENANT, run_id=state.run_id, version=upto,
                                          state=encode_state(state)))
            cut = upto
        await store.append(rows[start:stop], expected_version=start, summary=summarize(state))
        for snapshot in snapshots:
            await store.save_snapshot(snapshot)
        if stop % 10_000 == 0 or stop == len(events):
            print(f"  {label}: stored {stop:,}/{len(events):,} events "
                  f"({time.perf_counter() - started:.1f} s)", file=sys.stderr, flush=True)
    return state


async def load(
    store: SqlEventStore, run_id: str, *, snapshots: bool = True
) -> RunState:
    """Load a run as ``Runtime._load`` does: snapshot + tail in one read, decoded, fold."""
    if not snapshots:
        return replay(decode_envelope(e) for e in await store.read(TENANT, run_id))
    snapshot, tail = await store.load_run(TENANT, run_id)
    return replay(tail, decode_state(snapshot.state) if snapshot else RunState())


# ---------------------------------------------------------------------------- backends


@asynccontextmanager
async def sqlite_database() -> AsyncIterator[Database]:
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as tmp:
        db = Database.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            await upgrade(db)
            yield db
        finally:
            await db.dispose()


@asynccontextmanager
async def postgres_database(url: str) -> AsyncIterator[Database]:
    schema = f"bench_storage_{uuid.uuid4().hex[:10]}"
    admin = Database.open(url, pool_size=1)
    async with admin.transaction() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database.open(url, schema=schema)
    try:
        await upgrade(db)
        yield db
    finally:
        await db.dispose()
        async with admin.transaction() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


RAW = Table(
    "bench_raw", MetaData(),
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("tenant", String(200), nullable=False),
    Column("run_id", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(100), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
)


# ------------------------------------------------------------------------------ measure


@dataclass(frozen=True, slots=True)
class Figure:
    """One table row: per-repetition samples and how to show them."""

    name: str
    unit: str
    samples: list[float]
    digits: int = 0

    def cells(self) -> tuple[str, str]:
        fmt = f"{{:,.{self.digits}f}}"
        low, high = min(self.samples), max(self.samples)
        return (fmt.format(statistics.median(self.samples)),
                f"{fmt.format(low)}-{fmt.format(high)}")


@dataclass(slots=True)
class Sizes:
    """Counts per repetition and the run lengths to load."""

    repeat: int
    raw: int
    append1: int
    append10: int
    loads: tuple[int, ...]


class Bench:
    """The measurements on one database."""

    def __init__(self, db: Database, pattern: Pattern, sizes: Sizes, label: str) -> None:
        self.db = db
        self.store = SqlEventStore(db)
        self.pattern = pattern
        self.sizes = sizes
        self.label = label

    async def prepare(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.run_sync(RAW.metadata.create_all)
        s = self.sizes
        # One history per append series, long enough for the warm-up and every repetition.
        self.one = self._series("append-1", 1 + (s.repeat + 1) * s.append1, 1)
        self.ten = self._series("append-10", 1 + (s.repeat + 1) * s.append10 * 10, 10)
        for run in (self.one, self.ten):
            first, summary = run.batches[0]
            await self.store.append(first, expected_version=0, summary=summary)
            run.next = 1
        # The raw rows are the append-1 series' events (same sizes), as plain JSON text.
        self.raw_rows = [
            {"tenant": TENANT, "run_id": "raw", "version": 0, "type": e.type,
             "at": int(e.at.timestamp() * 1e6), "data": json.dumps(e.data)}
            for batch, _ in self.one.batches[1:] for e in batch]
        self.raw_version = 0
        self.row_bytes = statistics.mean(
            len(json.dumps({"tenant": e.tenant, "run_id": e.run_id, "version": e.version,
                            "type": e.type, "at": e.at.isoformat(), "data": e.data}))
            for batch, _ in self.one.batches[1:] for e in batch)
        self.expected: dict[int, RunState] = {}
        for size in self.sizes.loads:
            events = self.pattern.history(f"load-{size}", size)
            self.expected[size] = await store_run(self.store, events,
                                                  f"{self.label} load-{size}")
            assert await load(self.store, f"load-{size}") == self.expected[size]
        biggest = max(self.sizes.loads)
        snap = await self.store.load_snapshot(TENANT, f"load-{biggest}")
        assert snap is not None
        self.snapshot_bytes = len(json.dumps(snap.state))
        if 10_000 in self.expected:
            assert await load(self.store, "load-10000", snapshots=False) == self.expected[10_000]

    def _series(self, run_id: str, size: int, per_call: int) -> _Series:
        events = self.pattern.history(run_id, size)
        rows = envelopes(events)
        state = replay(events[:1])
        batches = [(rows[:1], summarize(state))]
        for start in range(1, size, per_call):
            state = replay(events[start:start + per_call], state)
            batches.append((rows[start:start + per_call], summarize(state)))
        return _Series(batches)

    async def raw(self, count: int) -> None:
        engine, stmt, rows = self.db.engine, RAW.insert(), self.raw_rows
        for _ in range(count):
            self.raw_version += 1
            row = rows[self.raw_version % len(rows)]
            async with engine.begin() as conn:
                await conn.execute(stmt, {**row, "version": self.raw_version})

    async def append(self, run: _Series, calls: int) -> None:
        store = self.store
        for _ in range(calls):
            rows, summary = run.batches[run.next]
            await store.append(rows, expected_version=rows[0].version - 1, summary=summary)
            run.next += 1

    async def append1(self) -> None:
        await self.append(self.one, self.sizes.append1)

    async def append10(self) -> None:
        await self.append(self.ten, self.sizes.append10)

    async def run(self) -> list[Figure]:
        s = self.sizes
        raw: list[float] = []
        one: list[float] = []
        ten: list[float] = []
        ratio: list[float] = []
        await self.raw(s.raw)  # warm-up
        await self.append1()
        await self.append10()
        for rep in range(s.repeat):
            r = s.raw / await _timed(lambda: self.raw(s.raw))
            a = s.append1 / await _timed(self.append1)
            t = s.append10 * 10 / await _timed(self.append10)
            raw.append(r)
            one.append(a)
            ten.append(t)
            ratio.append(a / r)
            print(f"  {self.label} rep {rep + 1}: raw {r:,.0f}/s, append 1 {a:,.0f}/s, "
                  f"append 10 {t:,.0f} ev/s", file=sys.stderr, flush=True)
        loads: dict[int, list[float]] = {n: [] for n in s.loads}
        cold: list[float] = []
        with_cold = 10_000 in s.loads
        for size in s.loads:  # warm-up
            await load(self.store, f"load-{size}")
        if with_cold:
            await load(self.store, "load-10000", snapshots=False)
        for rep in range(s.repeat):
            for size in s.loads:
                loads[size].append(await _timed(partial(load, self.store, f"load-{size}")))
            if with_cold:
                cold.append(await _timed(
                    lambda: load(self.store, "load-10000", snapshots=False)))
            print(f"  {self.label} rep {rep + 1}: loads "
                  + ", ".join(f"{n:,} {v[-1] * 1e3:.1f} ms" for n, v in loads.items()),
                  file=sys.stderr, flush=True)
        small, big = min(s.loads), max(s.loads)
        figures = [
            Figure("raw commit (engine.begin + 1 INSERT)", "commits/s", raw),
            Figure("append 1 event per call", "appends/s", one),
            Figure("append 10 events per call", "events/s", ten),
            Figure("append 1 / raw commit", "ratio", ratio, 2),
        ]
        figures += [Figure(f"load {n:,} events (snapshots)", "ms", [t * 1e3 for t in v], 1)
                    for n, v in loads.items()]
        figures.append(Figure(f"load {big:,} / load {small:,}", "ratio",
                              [b / a for a, b in zip(loads[small], loads[big], strict=True)],
                              2))
        if with_cold:
            figures.append(Figure("load 10,000 events, no snapshot (info)", "ms",
                                  [t * 1e3 for t in cold], 1))
        return figures


@dataclass(slots=True)
class _Series:
    batches: list[tuple[list[EventEnvelope], RunSummary]]
    next: int = 0


async def _timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


# --------------------------------------------------------------------------------- main


async def measure(
    backend: str, db_factory: Callable[[], Any], pattern: Pattern, sizes: Sizes,
    profile: str | None,
) -> tuple[list[Figure], Bench]:
    async with db_factory() as db:
        bench = Bench(db, pattern, sizes, backend)
        await bench.prepare()
        if profile is None:
            return await bench.run(), bench
        biggest = max(sizes.loads)
        part: Callable[[], Awaitable[object]] = {
            "append": bench.append1,
            "append10": bench.append10,
            "raw": lambda: bench.raw(sizes.raw),
            "load": lambda: load(bench.store, f"load-{biggest}"),
            "load-nosnap": lambda: load(bench.store, "load-10000", snapshots=False),
        }[profile]
        await part()  # warm-up
        profiler = cProfile.Profile()
        profiler.enable()
        await part()
        profiler.disable()
        print(f"\n## cProfile of '{profile}' on {backend} (main thread only)\n")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(15)
        stats.sort_stats("cumulative").print_stats(25)
        return [], bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 repetitions, runs of 100 and 10k (about a minute)")
    parser.add_argument("--pg-url", default=PG_URL, help=f"Postgres URL (default {PG_URL})")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--profile", choices=["append", "append10", "raw", "load",
                                              "load-nosnap"],
                        help="cProfile one part (after one warm-up) instead of the table")
    args = parser.parse_args()
    sizes = (Sizes(3, 150, 100, 30, (100, 10_000)) if args.quick
             else Sizes(5, 300, 200, 50, (100, 10_000, 100_000)))

    began = time.perf_counter()
    pattern = make_pattern()
    print(f"pattern: {len(pattern.rows)} events per for_each step of {LINES} lines "
          f"(decided in {time.perf_counter() - began:.1f} s)", file=sys.stderr, flush=True)
    backends: list[tuple[str, Callable[[], Any]]] = []
    if args.backend in ("sqlite", "both"):
        backends.append(("SQLite", sqlite_database))
    if args.backend in ("postgres", "both"):
        backends.append(("Postgres", lambda: postgres_database(args.pg_url)))

    results: list[tuple[str, list[Figure], Bench]] = []
    for name, factory in backends:
        print(f"{name}: building histories", file=sys.stderr, flush=True)
        figures, bench = asyncio.run(measure(name, factory, pattern, sizes, args.profile))
        results.append((name, figures, bench))
    if args.profile is not None:
        return

    bench0 = results[0][2]
    print(f"\nevents ~{bench0.row_bytes:.0f} B as JSON envelopes; snapshot of the "
          f"{max(sizes.loads):,}-event run {bench0.snapshot_bytes / 1024:.0f} KiB; "
          f"median of {sizes.repeat} (min-max); total {time.perf_counter() - began:.0f} s\n")
    print("| backend | figure | median | min-max | unit |")
    print("|---|---|---:|---:|---|")
    for name, figures, _ in results:
        for f in figures:
            median, spread = f.cells()
            print(f"| {name} | {f.name} | {median} | {spread} | {f.unit} |")
    print()
    for name, figures, _ in results:
        by_name = {f.name: f for f in figures}
        append_ratio = by_name["append 1 / raw commit"]
        load_ratio = next(f for f in figures if f.name.startswith("load ") and
                          f.unit == "ratio")
        for label, figure, ok in (
            ("append/raw >= 0.6", append_ratio,
             statistics.median(append_ratio.samples) >= 0.6),
            (f"{load_ratio.name} <= 2x", load_ratio,
             statistics.median(load_ratio.samples) <= 2.0),
        ):
            median, spread = figure.cells()
            print(f"{name}: {label}: {'PASS' if ok else 'FAIL'} "
                  f"(median {median}, min-max {spread})")


if __name__ == "__main__":
    main()
