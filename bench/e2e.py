"""End-to-end throughput and latency of `wf worker` processes, beside the raw commit rate.

Run from the repository root (Postgres on 127.0.0.1:5432 with trust auth and a database
``test``; Redis on 127.0.0.1:6379 for ``postgres+redis``):

    .venv/bin/python bench/e2e.py                      # 3 repetitions, 1/2/4 workers
    .venv/bin/python bench/e2e.py --quick              # 3 repetitions, a smaller load
    .venv/bin/python bench/e2e.py --engines postgres --workers 2 --runs 100

One configuration = an engine (``postgres``; ``postgres+redis``) and a number of worker
processes (``wf worker``, ``WF_WORKER_CONCURRENCY=4``, ``WF_WORKER_BATCH=4``). Each
repetition gets a fresh Postgres database (and Redis key prefix), starts the workers and
waits until each has logged ``worker.started``, then times: the producer starts ``--runs``
runs of a workflow of ``--steps`` no-op actions (one message per action, plus one to start
each run) and waits until every run completed. Right before it, in the same repetition,
the raw Postgres single-row commit rate is measured through the same driver
(``transport_raw.postgres_commit_rate``: SQLAlchemy async + asyncpg, ``engine.begin()`` +
one INSERT), so the ratio is free of the machine's drift.

Figures (median of the repetitions, min-max):

* ``steps/s``: the units of work the workers carried out per second of the timed window:
  messages handled (each one taken from the stream, decided, its events appended, its
  follow-ups enqueued, acked) plus actions run in place (each one run, its outcome
  appended with what it decides). A run is 1 + ``--steps`` of them either way, which is
  what ``msg/s`` counted before actions ran in place (``RuntimeSettings.
  run_actions_in_place``). Read from the workers' JSON logs (``message.processed`` and
  ``action.executed`` with ``in_place``).
* ``msg/s``: the messages alone (now mostly one per run).
* ``events/s``: events appended (the runs' versions summed) per second.
* ``p50``/``p99``: per run, from ``start_run`` to its completion (the run projection's
  ``created_at`` and ``last_progress_at``), in ms.
* ``steps/s / raw commit``: per repetition. Target with 2 workers: >= 0.5 (issue #5:
  each step needs at least one commit).
* ``runs/s``: runs completed per second of the timed window.
* ``transactions/run``: transactions committed in the repetition's database (reads
  included; the producer's completion polls excluded), from ``pg_stat_database``.
* ``commits/run``: write transactions per run: the cluster's xid counter moved by the
  window, divided by the runs (only a writing transaction takes an xid; anything else
  writing on the same server at the time adds to it).
* ``runs/s / (raw / commits)``: issue #9's form of the target (>= 0.5 with 2 workers): the
  runs per second against what the raw commit rate allows for that many commits per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from storage import PG_URL, RAW, postgres_database
from transport_raw import REDIS_URL, postgres_commit_rate

from wfadapters.redis import RedisConnection
from wfadapters.sql.database import Database
from wfadapters.sql.migrate import upgrade
from wfapps.bootstrap import open_runtime
from wfapps.loading import load_package
from wfapps.settings import Settings
from wfapps.tracing import SendTime

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
WF = Path(sys.executable).parent / "wf"
TENANT = "default"

ACTIONS = '''
from pydantic import BaseModel
from wfdomain import ActionContext, ActionRegistry

actions = ActionRegistry()


class N(BaseModel):
    n: int


@actions.action()
async def noop(inp: N, ctx: ActionContext) -> N:
    return inp
'''


def _definition(steps: int) -> str:
    lines = ["id: bench", "version: 1", "steps:"]
    lines += [f"  - {{id: s{i}, type: action, action: noop, input: {{n: '{i}'}}}}"
              for i in range(1, steps + 1)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed repetition."""

    steps_per_s: float
    messages_per_s: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    raw_commit_per_s: float
    runs_per_s: float
    commits_per_run: float
    transactions_per_run: float

    @property
    def commit_ratio(self) -> float:
        """Runs per second over raw commits per second divided by the commits one run needs."""
        return self.runs_per_s / (self.raw_commit_per_s / self.commits_per_run)

    @property
    def ratio(self) -> float:
        """Steps per second over raw commits per second."""
        return self.steps_per_s / self.raw_commit_per_s


@asynccontextmanager
async def fresh_engine(engine: str) -> AsyncIterator[str]:
    """A new database with the schema (and a fresh Redis prefix); dropped afterwards."""
    name = f"wfbench_e2e_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    db = Database.open(url)
    await upgrade(db)
    await db.dispose()
    conn = None
    try:
        if engine == "postgres+redis":
            conn = RedisConnection.open(REDIS_URL, prefix=f"wfbench-{uuid.uuid4().hex[:10]}")
            yield f"{url}?redis={REDIS_URL}&redis_prefix={conn.prefix}"
        else:
            yield url
    finally:
        if conn is not None:
            keys = [k async for k in conn.client.scan_iter(match=f"{conn.prefix}:*")]
            if keys:
                await conn.client.delete(*keys)
            await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass(frozen=True, slots=True)
class Counts:
    """Transactions so far: committed in one database, and xids of the whole cluster."""

    transactions: int
    xids: int


async def _counts(name: str) -> Counts:
    """Committed transactions of database ``name`` (reads too) and the next xid.

    Only a transaction that writes takes an xid, so the xid delta counts the commits that
    flush the WAL; it is cluster-wide (anything else writing at the time adds to it).
    Backends flush their statistics when they go idle or exit: poll until reads agree.
    """
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        last = -1
        deadline = time.monotonic() + 5
        while True:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            value = int(await conn.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", name))
            if value == last or time.monotonic() > deadline:
                break
            last = value
            await asyncio.sleep(0.5)
        xid = int(await conn.fetchval(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"))
        return Counts(value, xid)
    finally:
        await conn.close()


def _started(log: Path) -> bool:
    return log.exists() and '"msg":"worker.started"' in log.read_text(errors="replace")


def _handled(logs: list[Path]) -> tuple[int, int]:
    """Messages handled and actions run in place, from the workers' JSON logs."""
    messages = in_place = 0
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if '"msg":"message.processed"' in line:
                messages += 1
            elif '"msg":"action.executed"' in line and json.loads(line).get("in_place"):
                in_place += 1
    return messages, in_place


async def one_repetition(engine: str, workers: int, runs: int, steps: int, folder: Path,
                         raw_db: Database, commits: int) -> Sample:
    """Measure the raw commit rate, then one timed end-to-end load."""
    raw = await postgres_commit_rate(raw_db, commits)
    package = load_package(folder)
    async with fresh_engine(engine) as url:
        logs = [folder / f"worker-{uuid.uuid4().hex[:6]}.log" for _ in range(workers)]
        env = {**os.environ, "WF_ENGINE_URL": url, "WF_WORKER_CONCURRENCY": "4",
               "WF_WORKER_BATCH": "4", "WF_WORKER_POLL_INTERVAL_S": "0.01"}
        files = [log.open("wb") for log in logs]
        procs = [subprocess.Popen([str(WF), "worker", str(folder)], env=env, stdout=f,  # noqa: ASYNC220 - started once, before timing
                                  stderr=subprocess.STDOUT) for f in files]
        try:
            deadline = time.monotonic() + 120
            while not all(_started(log) for log in logs):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"workers did not start: see {logs}")
                await asyncio.sleep(0.05)
            async with open_runtime(Settings.from_url(url), package.actions,
                                   telemetry=SendTime()) as runtime:
                await runtime.register_definition(TENANT, package.main)
                before = await _counts(_database_name(url))
                polls = 1  # each list_runs below is one read transaction, not the run's
                start = time.perf_counter()
                for _ in range(runs):
                    await runtime.start_run(TENANT, "bench", {})
                while await runtime.list_runs(TENANT, statuses=["running", "waiting"], limit=1):
                    polls += 1
                    if any(p.poll() is not None for p in procs):
                        raise RuntimeError(f"a worker died: see {logs}")
                    await asyncio.sleep(0.01)
                elapsed = time.perf_counter() - start
                done = await runtime.list_runs(TENANT, statuses=["completed"], limit=runs + 1)
            if len(done) != runs:
                raise RuntimeError(f"{len(done)} of {runs} runs completed")
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=120)
            for f in files:
                f.close()
        # The producer's start_run transactions count (they are the run's); its polls
        # for the end do not. Worker start-up and shutdown fall outside the window.
        after = await _counts(_database_name(url))
        transactions_per_run = (after.transactions - before.transactions - polls) / runs
        commits_per_run = (after.xids - before.xids) / runs
        messages, in_place = _handled(logs)
        for log in logs:
            log.unlink()
    latencies = [1000 * (r.last_progress_at - r.created_at).total_seconds() for r in done]
    quantiles = statistics.quantiles(latencies, n=100)
    return Sample(steps_per_s=(messages + in_place) / elapsed,
                  messages_per_s=messages / elapsed,
                  events_per_s=sum(r.version for r in done) / elapsed,
                  p50_ms=quantiles[49], p99_ms=quantiles[98], raw_commit_per_s=raw,
                  runs_per_s=runs / elapsed, commits_per_run=commits_per_run,
                  transactions_per_run=transactions_per_run)


def _database_name(url: str) -> str:
    return url.split("?", 1)[0].rsplit("/", 1)[1]


def _figure(values: list[float], digits: int = 0) -> str:
    fmt = f"{{:,.{digits}f}}"
    return (f"{fmt.format(statistics.median(values))} | "
            f"{fmt.format(min(values))}-{fmt.format(max(values))}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller load")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="postgres,postgres+redis")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    runs = args.runs or (20 if args.quick else 60)
    commits = 200 if args.quick else 500
    print(f"e2e: {runs} runs x {args.steps} no-op actions per repetition, "
          f"{args.repeat} repetitions; workers: 4 consumers, batch 4")
    print("| engine | workers | steps/s | min-max | msg/s | min-max | events/s | min-max "
          "| run p50 ms | min-max | run p99 ms | min-max | raw commit/s | min-max "
          "| steps/s / raw | min-max | runs/s | min-max | transactions/run | min-max "
          "| commits/run | min-max | runs/s / (raw / commits) | min-max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bench"
        folder.mkdir()
        (folder / "definition.yaml").write_text(_definition(args.steps))
        (folder / "actions.py").write_text(ACTIONS)
        async with postgres_database(PG_URL) as raw_db:
            async with raw_db.engine.begin() as conn:
                await conn.run_sync(RAW.metadata.create_all)
            await postgres_commit_rate(raw_db, 50)  # warm-up
            for engine in args.engines.split(","):
                for workers in (int(w) for w in args.workers.split(",")):
                    samples = [await one_repetition(engine, workers, runs, args.steps,
                                                    folder, raw_db, commits)
                               for _ in range(args.repeat)]
                    print(f"| {engine} | {workers} "
                          f"| {_figure([s.steps_per_s for s in samples])} "
                          f"| {_figure([s.messages_per_s for s in samples])} "
                          f"| {_figure([s.events_per_s for s in samples])} "
                          f"| {_figure([s.p50_ms for s in samples], 1)} "
                          f"| {_figure([s.p99_ms for s in samples], 1)} "
                          f"| {_figure([s.raw_commit_per_s for s in samples])} "
                          f"| {_figure([s.ratio for s in samples], 2)} "
                          f"| {_figure([s.runs_per_s for s in samples], 1)} "
                          f"| {_figure([s.transactions_per_run for s in samples], 1)} "
                          f"| {_figure([s.commits_per_run for s in samples], 1)} "
                          f"| {_figure([s.commit_ratio for s in samples], 2)} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
