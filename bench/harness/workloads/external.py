"""Bring a benchmark script owned elsewhere in the project under the harness.

A script joins the harness fully by exposing ``WORKLOAD`` (``core.Workload``): its figures
then become rows of the page, its targets are checked, its plots drawn. Until it does, the
harness runs it as a script in the same run, with the Temporal dev server's address in
``WF_BENCH_TEMPORAL_ADDRESS``, and ``--quick`` in quick mode or ``--repeat 3`` in a full
run (each only if the script defines it). It shows the script's progress and puts the
markdown tables the script prints into the page as they are.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from types import ModuleType

from bench.harness.core import Context, Figure, Section


class External:
    """The workload of one script: ``bench/<name>.py``."""

    def __init__(self, key: str, title: str, module: ModuleType) -> None:
        self.key, self.title, self.module = key, title, module

    async def run(self, ctx: Context) -> Section:
        workload = getattr(self.module, "WORKLOAD", None)
        if workload is not None:
            section: Section = await workload.run(ctx)
            section.key, section.title = self.key, self.title
            return section
        return await script_section(self.key, self.title, self.module, ctx)


async def script_section(key: str, title: str, module: ModuleType, ctx: Context) -> Section:
    """Run the module's file as a script; its markdown tables become the section's body."""
    output, code = await run_script(module, ctx)
    section = Section(key, title, "ok" if code == 0 else "failed")
    tables: list[str] = []  # the table lines, one blank line between separate tables
    for line in output.splitlines():
        if line.lstrip().startswith("|"):
            tables.append(line)
        elif tables and tables[-1]:
            tables.append("")
    path = Path(module.__file__ or "?").relative_to(Path.cwd())
    flags = "".join(f" {f}" for f in script_flags(module, ctx))
    section.notes.append(f"Measured by `{path}{flags}` in this run (exit {code}); its "
                         "tables as it printed them:")
    section.notes.append("\n".join(tables).strip() if tables
                         else "```\n" + output[-3000:] + "\n```")
    return section


# Repetitions asked of a script in a full run: enough for a median with a range, few
# enough to keep the whole run near 15 minutes (the slowest scripts take ~1 min each).
SCRIPT_REPEAT = 3


def script_flags(module: ModuleType, ctx: Context) -> list[str]:
    """``--quick`` in quick mode, else ``--repeat 3``: each only if the script defines it."""
    source = Path(str(module.__file__)).read_text()
    if ctx.quick:
        return ["--quick"] if '"--quick"' in source else []
    return ["--repeat", str(SCRIPT_REPEAT)] if '"--repeat"' in source else []


async def run_script(module: ModuleType, ctx: Context) -> tuple[str, int]:
    """Run ``python <module file> [flags]``; stream its stderr as progress."""
    path = Path(str(module.__file__))
    args = [sys.executable, str(path), *script_flags(module, ctx)]
    env = dict(os.environ)
    if ctx.temporal_address:
        env["WF_BENCH_TEMPORAL_ADDRESS"] = ctx.temporal_address
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        limit=16 * 1024 * 1024)
    assert proc.stdout is not None

    async def relay() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            ctx.progress(f"  {Path(str(module.__file__)).name}: "
                         f"{line.decode(errors='replace').rstrip()}")

    relaying = asyncio.create_task(relay())
    out = await proc.stdout.read()
    code = await proc.wait()
    await relaying
    return out.decode(errors="replace"), code


async def figures_of(module: ModuleType, ctx: Context, name: str) -> list[Figure]:
    """Figures of a script that exposes ``WORKLOAD``; otherwise none."""
    workload = getattr(module, "WORKLOAD", None)
    if workload is None:
        return []
    section: Section = await workload.run(ctx)
    return section.figures
