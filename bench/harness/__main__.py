"""Run every workload once and write docs/benchmarks.md with its plots.

    python -m bench.harness                 # full run (about 15-20 minutes here)
    python -m bench.harness --quick         # smoke run: fewer repetitions, smaller sizes
    python -m bench.harness --only e2e,raw  # some workloads (the page then holds only them)

Use ``bash scripts/bench.sh`` instead: it prepares ``.venv-bench`` with the peers first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import registry
from bench.harness.core import Context, Section
from bench.harness.report import Meta, markdown, write_plots
from bench.harness.servers import temporal_binary, temporal_dev_server

READING = Path(__file__).with_name("reading.md")  # the hand-written reading of the results
PACKAGES = ("dbos", "eventsourcing", "temporalio", "SQLAlchemy", "asyncpg", "aiosqlite",
            "redis", "orjson", "pydantic", "pyinstrument", "matplotlib")


def run_workload(entry: registry.Entry, ctx: Context) -> Section:
    """One workload, never raising: a missing script or a failure becomes its status."""
    started = time.perf_counter()
    ctx.progress(f"== {entry.key}: {entry.title}")
    try:
        workload = registry.load(entry)
        if entry.temporal and ctx.temporal_address is None:
            section = Section(entry.key, entry.title, "skipped",
                              notes=["No Temporal dev server (no `temporal` binary found)."])
        else:
            section = asyncio.run(workload.run(ctx))
    except registry.NotAvailable as e:
        section = Section(entry.key, entry.title, "not available yet", notes=[f"{e}."])
    except Exception as e:
        traceback.print_exc()
        section = Section(entry.key, entry.title, "failed",
                          notes=[f"`{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}`"
                                 " (traceback on the harness's stderr)."])
    section.seconds = time.perf_counter() - started
    ctx.progress(f"== {entry.key}: {section.status} in {section.seconds:.0f} s")
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 repetitions, small")
    parser.add_argument("--reps", type=int, help="repetitions (default 5, quick 2)")
    parser.add_argument("--only", help="comma-separated workload keys: "
                        + ", ".join(e.key for e in registry.ENTRIES))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--img", type=Path, default=Path("docs/img"))
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    entries = list(registry.ENTRIES)
    if args.only:
        keys = set(args.only.split(","))
        unknown = keys - {e.key for e in entries}
        if unknown:
            parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
        entries = [e for e in entries if e.key in keys]
    reps = args.reps or (2 if args.quick else 5)
    began = time.perf_counter()
    load_before = os.getloadavg()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as tmp, contextlib.ExitStack() as stack:
        ctx = Context(quick=args.quick, reps=reps, tmp=Path(tmp), pg_url=args.pg_url,
                      redis_url=args.redis_url, started=began)
        binary = temporal_binary()
        if binary is not None and any(e.temporal for e in entries):
            ctx.temporal_bin = binary
            ctx.progress(f"starting the Temporal dev server ({binary})")
            ctx.temporal_address = stack.enter_context(
                temporal_dev_server(binary, Path(tmp) / "temporal.log"))
            ctx.progress(f"Temporal dev server on {ctx.temporal_address}")
        sections = [run_workload(entry, ctx) for entry in entries]
    meta = Meta(
        date=date, mode="quick" if args.quick else "full", reps=reps,
        wall_s=time.perf_counter() - began, load_before=load_before,
        load_after=os.getloadavg(), cpus=os.cpu_count() or 0,
        python=platform.python_version(), commit=_commit(), versions=_versions())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plots = write_plots(sections, args.img)
    rel = os.path.relpath(args.img, args.out.parent)
    reading = READING.read_text() if READING.exists() else None
    args.out.write_text(markdown(sections, meta, plot_dir=rel, reading=reading))
    ctx.progress(f"wrote {args.out} and {len(plots)} plots in {args.img} "
                 f"(wall {meta.wall_s:.0f} s)")
    for s in sections:
        for t in s.targets:
            median, spread = t.figure.cells()
            print(f"{'PASS  ' if t.passed else 'MISSED'} {t.name}: {median} ({spread})")
    return 1 if any(s.status == "failed" for s in sections) else 0


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{out}{' + uncommitted changes' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    return out


if __name__ == "__main__":
    sys.exit(main())
