"""Load cost against history length, with and without snapshots, per durable backend.

Runs ``bench/storage.py``'s measurement (its ``Bench``) on SQLite and on a fresh Postgres
schema: the raw commit and append series, then loads of runs of 100 / 10,000 / 100,000
events (quick: 100 / 10,000) with snapshots every 100 events, and 10,000 without.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from bench import storage as base
from bench.harness.core import Context, Figure, Plot, Section, Target

from wfadapters.sql.database import Database


class Storage:
    key = "storage"
    title = "Load cost against history length, with and without snapshots"

    async def run(self, ctx: Context) -> Section:
        section = Section(self.key, self.title)
        sizes = (base.Sizes(ctx.reps, 150, 100, 30, (100, 10_000)) if ctx.quick
                 else base.Sizes(ctx.reps, 300, 200, 50, (100, 10_000, 100_000)))
        ctx.progress("storage: deciding the history pattern")
        pattern = base.make_pattern()
        factories: list[tuple[str, Callable[[], AbstractAsyncContextManager[Database]]]] = [
            ("SQLite", base.sqlite_database),
            ("Postgres", lambda: base.postgres_database(ctx.pg_url)),
        ]
        for name, factory in factories:
            ctx.progress(f"storage {name}: storing histories of {sizes.loads} events")
            async with factory() as db:
                bench = base.Bench(db, pattern, sizes, name)
                await bench.prepare()
                figures = await bench.run()
            converted = [Figure(name, f.name, f.unit, f.samples, f.digits) for f in figures]
            section.figures += converted
            by_name = {f.name: f for f in converted}
            ratio = next(f for f in converted if f.unit == "ratio" and f.name.startswith("load"))
            section.targets.append(Target(
                f"{name}: {ratio.name} (snapshots) <= 2x", ratio, "<=", 2.0))
            loads = [(f.name.replace(" events (snapshots)", "").replace("load ", ""), f)
                     for f in converted if f.name.endswith("(snapshots)")]
            cold = by_name.get("load 10,000 events, no snapshot (info)")
            bars = loads + ([("10,000 no snapshot", cold)] if cold else [])
            section.plots.append(Plot(f"load-{name.lower()}",
                                      f"Loading a run on {name} (snapshot every 100)",
                                      "ms", bars, log=True))
        section.notes.append(
            "Load = what `Runtime._load` does: `load_run` (the newest snapshot and the "
            "decoded tail, in one read), `replay`. At these exact lengths the tail is empty. "
            "`bench/README.md` (storage) describes the histories and the append series.")
        return section


WORKLOAD = Storage()
