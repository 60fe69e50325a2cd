"""Where an end-to-end run spends its time: pyinstrument over the engine on memory, SQLite,
Postgres (and Postgres + Redis once that backend opens).

The profiled work is the end-to-end workload's: one-action and ten-step runs, driven by
``run_until_idle``. pyinstrument samples wall-clock time in async mode, so time spent
awaiting (the aiosqlite thread, the database) is charged to the awaiting code. Each leaf
sample is charged to a cost centre by the module that holds it; the three largest are
named in the page, with the ten costliest functions by own time.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from bench.harness import backends
from bench.harness.core import Context, Figure, Section
from bench.harness.workloads import flows
from pyinstrument import Profiler
from pyinstrument.frame import AWAIT_FRAME_IDENTIFIER, Frame

from wfdomain.errors import WorkflowEngineError

CENTRES: tuple[tuple[str, str], ...] = (
    ("aiosqlite", "aiosqlite (hand-off to its thread)"),
    ("sqlalchemy", "SQLAlchemy (statement building, compile cache, result rows)"),
    ("asyncpg", "asyncpg"),
    ("redis", "redis-py"),
    ("jsonata", "JSONata evaluation"),
    ("wfdomain/expressions", "expression contract (wfdomain.expressions)"),
    ("wfdomain/decide", "interpreter (wfdomain.decide)"),
    ("wfdomain/state", "fold (wfdomain.state)"),
    ("wfdomain/codec", "event codec (wfdomain.codec)"),
    ("wfdomain/runtime", "runtime (wfdomain.runtime)"),
    ("wfadapters/sql", "SQL adapters (wfadapters.sql)"),
    ("wfadapters/memory", "in-memory adapters (wfadapters.memory: copies of records)"),
    ("wfadapters/redis", "Redis adapters (wfadapters.redis)"),
    ("wfdomain", "other domain code (wfdomain)"),
    ("pydantic", "pydantic"),
    ("json", "JSON encode/decode"),
    ("asyncio", "asyncio event loop"),
    ("greenlet", "greenlet (SQLAlchemy's async bridge)"),
)


@dataclass(slots=True)
class Leaf:
    function: str
    where: str
    seconds: float
    awaiting: bool = False


def _is_library(path: str) -> bool:
    """Code worth charging: not the stdlib, not a builtin (which say nothing alone)."""
    return "/" in path and ("site-packages" in path or "/src/" in path
                            or "/lib/python" not in path)


def leaves(frame: Frame, where: str = "", caller: str = "") -> list[Leaf]:
    """Every sample's time, charged to the nearest project or library frame above it.

    A builtin or stdlib leaf (``socket.send``, ``SimpleQueue.put_nowait``, contextlib's
    ``__aexit__``) is charged to the library that called it; ``[await]`` time is charged
    as awaiting in the nearest such caller.
    """
    path = frame.file_path or ""
    if not frame.is_synthetic and _is_library(path):
        where, caller = path, frame.function
    if frame.identifier == AWAIT_FRAME_IDENTIFIER:
        return [Leaf(f"[await] in {caller}", where, frame.time, awaiting=True)]
    if not frame.children:
        name = caller if frame.is_synthetic else frame.function
        return [Leaf(name, where, frame.time)]
    out: list[Leaf] = []
    for child in frame.children:
        out += leaves(child, where, caller)
    rest = frame.time - sum(child.time for child in frame.children)
    if rest > 1e-9:
        out.append(Leaf(caller if frame.is_synthetic else frame.function, where, rest))
    return out


def centre(where: str) -> str:
    path = where.replace("\\", "/")
    for needle, name in CENTRES:
        if needle in path:
            return name
    return "other"


def profile_section(section: Section, label: str, profiler: Profiler) -> None:
    session = profiler.last_session
    root = session.root_frame() if session else None
    if root is None:
        section.notes.append(f"{label}: the profile is empty.")
        return
    found = leaves(root)
    total = sum(leaf.seconds for leaf in found) or 1.0
    centres: Counter[str] = Counter()
    functions: Counter[tuple[str, str]] = Counter()
    for leaf in found:
        name = centre(leaf.where)
        centres[f"{name}: awaiting" if leaf.awaiting else name] += leaf.seconds
        short = leaf.where.split("site-packages/")[-1].split("/src/")[-1]
        functions[(leaf.function, short)] += leaf.seconds
    top3 = centres.most_common(3)
    section.notes.append(
        f"**{label}: the three largest costs** (share of {total:.1f} s sampled): "
        + "; ".join(f"{i}. {name}, {secs / total:.0%}"
                    for i, (name, secs) in enumerate(top3, 1)) + ".")
    rows = ["| cost centre | share |", "|---|---:|"]
    rows += [f"| {name} | {secs / total:.1%} |" for name, secs in centres.most_common(8)]
    section.notes.append("\n".join(rows))
    rows = ["| function (own time) | where | share |", "|---|---|---:|"]
    rows += [f"| `{fn}` | {where} | {secs / total:.1%} |"
             for (fn, where), secs in functions.most_common(10)]
    section.notes.append("\n".join(rows))
    for name, secs in top3:
        section.figures.append(Figure(label, f"share: {name}", "%", [100 * secs / total], 1,
                                      pooled=True))


class Profile:
    key = "profile"
    title = "Profiles of the end-to-end path"

    async def run(self, ctx: Context) -> Section:
        section = Section(self.key, self.title)
        n_one, n_ten = ctx.size(60, 6), ctx.size(15, 2)
        budget = ctx.size(20, 4)  # seconds per backend, at most
        # memory first: the engine's own CPU cost, with no I/O to wait on.
        targets = [("memory", None), ("SQLite", None), ("Postgres", None),
                   ("Postgres + Redis", ctx.redis_url)]
        for label, redis_url in targets:
            async with backends.backend_url(label.split(" ")[0], ctx.tmp, ctx.pg_url) as url:
                if redis_url is not None:
                    url = f"{url}?redis={redis_url}"
                try:
                    async with backends.engine(url, flows.actions) as runtime:
                        if redis_url is not None and "redis" not in type(
                                runtime.ports.stream).__module__:
                            section.notes.append(
                                f"{label}: not available yet (`?redis=` does not give a Redis "
                                f"stream in this tree: {type(runtime.ports.stream).__name__}).")
                            continue
                        await flows.register(runtime)
                        await flows.one_run(runtime, "warm-one")
                        await flows.ten_run(runtime, "warm-ten")
                        ctx.progress(f"profile {label}: up to {n_one} one-action + {n_ten} "
                                     f"ten-step runs (or {budget} s) under pyinstrument")
                        profiler = Profiler(interval=0.001, async_mode="enabled")
                        profiler.start()
                        # Each shape stops after its count or half the budget (>= 2 runs).
                        for fn, n, tag in ((flows.one_run, n_one, "p1"),
                                           (flows.ten_run, n_ten, "p10")):
                            start = time.perf_counter()
                            for i in range(n):
                                await fn(runtime, f"{tag}-{i}", check=False)
                                if i >= 1 and time.perf_counter() - start > budget / 2:
                                    break
                        profiler.stop()
                except WorkflowEngineError as e:
                    section.notes.append(f"{label}: not available yet ({e.code}: {e.message}).")
                    continue
            profile_section(section, label, profiler)
        return section


WORKLOAD = Profile()
