"""End-to-end runs in one process: the engine on memory, SQLite and Postgres, beside the
raw commit rate of the same database and DBOS Transact on the same database.

Per backend, each repetition runs, back to back: the raw commit series (``engine.begin()``
+ one INSERT through the engine's own ``Database``); the engine's one-action runs, its
ten-step runs and its one-action runs 10 at a time, first queued (``start_run`` and a
worker loop), then through ``execute_run`` (the durable function call); then DBOS's
one-action, ten-step and 10-thread series (in DBOS's own process). Ratios are taken per
repetition. The target compares ``execute_run`` with DBOS: both call the workflow and
carry it through in the caller.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from bench.harness import backends
from bench.harness.core import Context, Figure, Plot, Section, Target, percentile, ratios, timed
from bench.harness.peer_process import PeerProcess
from bench.harness.workloads import flows
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

from wfadapters.sql.database import Database
from wfdomain import Runtime

RAW = Table(
    "bench_raw_commit", MetaData(),
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("run_id", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(100), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
)
ROW = {"run_id": "raw", "type": "ActionCompleted", "at": 1_767_225_600_000_000,
       "data": json.dumps({"key": "steps[0]", "attempt": 1, "output": {"echo": "k" * 40},
                           "idempotency_key": "run-raw/steps[0]/1", "x": "y" * 120})}


class RawCommits:
    """``engine.begin()`` + one INSERT of a ~300 B row, through the engine's ``Database``."""

    def __init__(self, url: str) -> None:
        self.db = Database.open(url)
        self.version = 0

    async def prepare(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.run_sync(RAW.metadata.create_all)

    async def commit(self, count: int) -> None:
        engine, stmt = self.db.engine, RAW.insert()
        for _ in range(count):
            self.version += 1
            async with engine.begin() as conn:
                await conn.execute(stmt, {**ROW, "version": self.version})

    async def close(self) -> None:
        await self.db.dispose()


class Series:
    """Throughput per repetition and every latency, for one engine and one shape."""

    def __init__(self, group: str, name: str) -> None:
        self.group, self.name = group, name
        self.rates: list[float] = []
        self.latencies: list[float] = []

    def add(self, count: int, elapsed: float, latencies: list[float] | None = None) -> None:
        self.rates.append(count / elapsed)
        self.latencies.extend(latencies or [])

    def figures(self) -> list[Figure]:
        out = [Figure(self.group, f"{self.name}, runs/s", "runs/s", self.rates)]
        if self.latencies:
            ms = [x * 1e3 for x in self.latencies]
            out += [Figure(self.group, f"{self.name}, p50 latency", "ms",
                           [percentile(ms, 0.5)], 1, pooled=True),
                    Figure(self.group, f"{self.name}, p99 latency", "ms",
                           [percentile(ms, 0.99)], 1, pooled=True)]
        return out


class E2ELocal:
    key = "e2e"
    title = "End-to-end runs in one process (memory, SQLite, Postgres) and DBOS"

    def __init__(self, backends_: tuple[str, ...] = ("memory", "SQLite", "Postgres"),
                 *, with_peers: bool = True,
                 counts: tuple[int, int, int] | None = None) -> None:
        self.backends = backends_
        self.with_peers = with_peers
        self.counts = counts  # runs per repetition: one-action, ten-step, 10 in flight

    async def run(self, ctx: Context) -> Section:
        section = Section(self.key, self.title)
        for name in self.backends:
            await self._backend(ctx, section, name)
        section.notes.append(
            "Each series runs up to its count of runs or for its time budget per repetition "
            "(at least 3 runs), whichever comes first. Queued, sequential: one run in "
            "flight, timed from `start_run` until `run_until_idle` "
            "returns with the run completed (for the ten-step run this includes "
            "`submit_event` once its wait is open). Queued, 10 in flight: 10 runs started, "
            "then driven together. `execute_run`: the call returns with the run completed "
            "(the ten-step run returns at its wait; `submit_event` and `run_until_idle` "
            "finish it, inside the timing); 10 at once: 10 concurrent calls. Latency "
            "percentiles pool every run of every repetition. "
            "DBOS runs in its own process (one DBOS instance per process), its repetitions "
            "interleaved with the engine's; its sync API, `DBOS.recv`/`DBOS.send` for the "
            "event, notification polling at 10 ms.")
        return section

    async def _backend(self, ctx: Context, section: Section, name: str) -> None:
        # The in-memory engine is ~50x faster than a durable one: more runs for a stable time.
        scale = 5 if name == "memory" else 1
        n_one = scale * ctx.size(100, 10)
        n_ten = scale * ctx.size(20, 4)
        n_batch = scale * ctx.size(100, 10)
        n_raw = ctx.size(500, 50)
        # A series stops after its count or its time budget (at least 3 runs), so a slow
        # backend or a loaded machine bounds the wall time instead of stretching it.
        budget = ctx.size(3, 1)
        if self.counts is not None:
            n_one, n_ten, n_batch = self.counts
        one = Series(name, "engine, one action, sequential")
        ten = Series(name, "engine, ten steps, sequential")
        batch = Series(name, "engine, one action, 10 in flight")
        x_one = Series(name, "engine execute_run, one action, sequential")
        x_ten = Series(name, "engine execute_run, ten steps, sequential")
        x_batch = Series(name, "engine execute_run, one action, 10 at once")
        raw_rates: list[float] = []
        peer_series = [Series(name, "DBOS, one action, sequential"),
                       Series(name, "DBOS, ten steps, sequential"),
                       Series(name, "DBOS, one action, 10 threads")]
        ctx.progress(f"e2e {name}: preparing")
        async with contextlib.AsyncExitStack() as stack:
            url = await stack.enter_async_context(backends.backend_url(name, ctx.tmp, ctx.pg_url))
            runtime = await stack.enter_async_context(backends.engine(url, flows.actions))
            await flows.register(runtime)
            raw = RawCommits(url) if name != "memory" else None
            peer, peer_url = (await stack.enter_async_context(_peer(ctx, name))
                              if self.with_peers else (None, None))
            try:
                if raw is not None:
                    await raw.prepare()
                    await raw.commit(max(10, n_raw // 10))
                commits = await _commits_per_run(runtime)
                if peer is not None:
                    await peer.call("one", 10)
                    await peer.call("ten", 3)
                    counted, _ = await peer.call("commits", 1)
                    commits["dbos one"], commits["dbos ten"] = (int(c) for c in counted)
                if name == "Postgres":
                    await _steady_state(ctx, runtime, url, peer, peer_url)
                for rep in range(ctx.reps):
                    if raw is not None:
                        raw_rates.append(n_raw / await timed(lambda: raw.commit(n_raw)))
                    await _sequential(runtime, one, n_one, flows.one_run, f"o{rep}", budget)
                    await _sequential(runtime, ten, n_ten, flows.ten_run, f"t{rep}", budget)
                    await _batches(batch, n_batch, budget,
                                   lambda keys: flows.one_batch(runtime, keys), f"b{rep}")
                    await _sequential(runtime, x_one, n_one, flows.one_exec, f"xo{rep}", budget)
                    await _sequential(runtime, x_ten, n_ten, flows.ten_exec, f"xt{rep}", budget)
                    await _batches(x_batch, n_batch, budget,
                                   lambda keys: flows.one_exec_batch(runtime, keys), f"xb{rep}")
                    if peer is not None:
                        for series, op, n in zip(peer_series, ("one", "ten", "one_threads"),
                                                 (n_one, n_ten, n_batch), strict=True):
                            lat, elapsed = await peer.call(op, n, budget_s=budget)
                            series.add(len(lat), elapsed, lat if op != "one_threads" else None)
                    ctx.progress(
                        f"e2e {name} rep {rep + 1}/{ctx.reps}: one {one.rates[-1]:,.0f}/s, "
                        f"ten {ten.rates[-1]:,.0f}/s, 10 in flight {batch.rates[-1]:,.0f}/s; "
                        f"execute_run one {x_one.rates[-1]:,.0f}/s, "
                        f"ten {x_ten.rates[-1]:,.0f}/s, x10 {x_batch.rates[-1]:,.0f}/s"
                        + (f", raw {raw_rates[-1]:,.0f} commits/s" if raw_rates else "")
                        + (f", DBOS one {peer_series[0].rates[-1]:,.0f}/s" if peer else ""))
            finally:
                if raw is not None:
                    await raw.close()
        self._report(section, name, (one, ten, batch), (x_one, x_ten, x_batch), raw_rates,
                     commits, peer_series if peer is not None else [])

    def _report(self, section: Section, name: str, queued: tuple[Series, Series, Series],
                executed: tuple[Series, Series, Series], raw_rates: list[float],
                commits: dict[str, int], peers: list[Series]) -> None:
        figures = [f for series in queued for f in series.figures()]
        x_figures = [f for series in executed for f in series.figures()]
        section.figures += figures + x_figures
        plot_bars: list[tuple[str, Figure]] = [
            ("queued one", figures[0]), ("queued ten", figures[3]),
            ("queued one x10", figures[6]), ("execute_run one", x_figures[0]),
            ("execute_run ten", x_figures[3]), ("execute_run one x10", x_figures[6])]
        if raw_rates:
            raw = Figure(name, "raw commit (engine.begin + 1 INSERT)", "commits/s", raw_rates)
            per_run = commits["one"]
            ceiling = Figure(name, f"raw commits/s / {per_run} commits per one-action run",
                             "runs/s", [r / per_run for r in raw_rates])
            section.figures += [raw, ceiling]
            section.figures.append(ratios(
                figures[0], ceiling, group=name,
                name="engine one-action runs/s / (raw commits/s / commits per run)"))
            section.figures.append(ratios(
                x_figures[0], Figure(name, f"raw commits/s / {commits['x one']}", "runs/s",
                                     [r / commits["x one"] for r in raw_rates]),
                group=name,
                name="execute_run one-action runs/s / (raw commits/s / commits per run)"))
            dbos = (f" DBOS commits {commits['dbos one']} and {commits['dbos ten']}."
                    if "dbos one" in commits else "")
            section.notes.append(
                f"{name}: queued, a one-action run commits {commits['one']} write "
                f"transactions and a ten-step run {commits['ten']}; through `execute_run`, "
                f"{commits['x one']} and {commits['x ten']} (counted around one run: "
                f"SQLAlchemy's `commit` events and the appends past it; read-only "
                f"transactions not counted).{dbos}")
        if peers:
            peer_figs = [f for s in peers for f in s.figures()]
            section.figures += peer_figs
            section.figures += [
                ratios(figures[0], peer_figs[0], group=name,
                       name="queued engine / DBOS, one action, sequential"),
                ratios(figures[3], peer_figs[3], group=name,
                       name="queued engine / DBOS, ten steps, sequential"),
                ratios(figures[6], peer_figs[6], group=name,
                       name="queued engine 10 in flight / DBOS 10 threads, one action")]
            vs = ratios(x_figures[0], peer_figs[0], group=name,
                        name="execute_run / DBOS, one action, sequential")
            vs_ten = ratios(x_figures[3], peer_figs[3], group=name,
                            name="execute_run / DBOS, ten steps, sequential")
            vs_batch = ratios(x_figures[6], peer_figs[6], group=name,
                              name="execute_run 10 at once / DBOS 10 threads, one action")
            section.figures += [vs, vs_ten, vs_batch]
            # DBOS's figure is a call of its workflow function, carried through in the
            # caller: execute_run is the engine's same call.
            section.targets.append(Target(
                f"{name}: one-action runs/s >= 3x DBOS on the same backend (execute_run)",
                vs, ">=", 3.0))
            plot_bars += [("DBOS one", peer_figs[0]), ("DBOS ten", peer_figs[3]),
                          ("DBOS one x10 thr", peer_figs[6])]
        section.plots.append(Plot(f"e2e-{name.lower()}", f"End-to-end runs/s on {name}",
                                  "runs/s", plot_bars))


async def _steady_state(ctx: Context, runtime: Runtime, url: str,
                        peer: PeerProcess | None, peer_url: str | None) -> None:
    """Bring both Postgres databases to a steady state: some runs, then statistics.

    A database created for this run starts without planner statistics, and Postgres
    then plans the statements it prepares as if every table were empty: it updated a run
    by scanning the tenant's index, or the whole table once analyzed while nearly empty,
    so appends slowed down as the tables grew (measured: 710 -> 450 runs/s over 1,500
    runs). A database in service has its statistics from autovacuum. Both engines get
    the same treatment: ``WARM_RUNS`` one-action runs each, then ``ANALYZE``.
    """
    n = ctx.size(WARM_RUNS, 50)
    ctx.progress(f"e2e Postgres: {n} runs per engine, then ANALYZE (steady state)")
    for i in range(n):
        await flows.one_exec(runtime, f"warm-steady-{i}")
    await backends.analyze(url)
    if peer is not None and peer_url is not None:
        await peer.call("one", n, budget_s=60)
        await backends.analyze(peer_url)


WARM_RUNS = 1000


@contextlib.asynccontextmanager
async def _peer(ctx: Context, name: str
                ) -> AsyncIterator[tuple[PeerProcess | None, str | None]]:
    """DBOS on the same backend (a SQLite file, or a Postgres database of its own) and
    its database's URL."""
    if name == "memory":
        yield None, None
        return
    async with contextlib.AsyncExitStack() as stack:
        if name == "SQLite":
            url = f"sqlite:///{ctx.tmp / f'dbos-{uuid.uuid4().hex[:8]}.sqlite'}"
        else:
            pg = await stack.enter_async_context(
                backends.postgres_database(ctx.pg_url, "wfbench_dbos"))
            url = pg.replace("postgres://", "postgresql://", 1)
        peer = PeerProcess("bench.peers.dbos_peer", url, python=ctx.peer_python,
                           log=ctx.tmp / f"dbos-{name}.log", cwd=Path.cwd())
        try:
            await peer.start()
        except (RuntimeError, TimeoutError, OSError) as e:
            ctx.progress(f"e2e {name}: DBOS peer not available: {str(e).splitlines()[0]}")
            await peer.close()
            yield None, None
            return
        try:
            yield peer, url
        finally:
            await peer.close()


async def _batches(series: Series, n: int, budget_s: float,
                   batch: Callable[[list[str]], Awaitable[None]], prefix: str) -> None:
    """Batches of 10 runs until ``n`` or the budget (at least one batch)."""
    start = time.perf_counter()
    done = 0
    while done < n and (done == 0 or time.perf_counter() - start < budget_s):
        await batch([f"{prefix}-{done}-{i}" for i in range(10)])
        done += 10
    series.add(done, time.perf_counter() - start)


async def _sequential(runtime: Runtime, series: Series, n: int, fn: flows.RunFn,
                      prefix: str, budget_s: float) -> None:
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(n):
        latencies.append(await fn(runtime, f"{prefix}-{i}"))
        if i >= 2 and time.perf_counter() - start > budget_s:
            break
    series.add(len(latencies), time.perf_counter() - start, latencies)


async def _commits_per_run(runtime: Runtime) -> dict[str, int]:
    """Warm up both shapes and count the commits each needs."""
    out: dict[str, int] = {}
    for shape, fn in (("one", flows.one_run), ("ten", flows.ten_run),
                      ("x one", flows.one_exec), ("x ten", flows.ten_exec)):
        await fn(runtime, f"warm-{shape.replace(' ', '-')}")
        with backends.CommitCounter() as counter:
            await fn(runtime, f"count-{shape.replace(' ', '-')}", check=False)
        out[shape] = counter.commits
    return out


WORKLOAD = E2ELocal()
