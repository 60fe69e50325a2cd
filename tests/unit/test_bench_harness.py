"""The benchmark harness cannot rot: one tiny workload end to end, and the page writer.

Runs the end-to-end workload on the in-memory engine with tiny sizes (no peers, no
servers), then checks the markdown the harness writes from it. Timing is never asserted:
only that the figures exist, are positive, and land in the page's table.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench.harness import registry
from bench.harness.__main__ import run_workload
from bench.harness.core import Context, Figure, Section, Target, percentile, ratios
from bench.harness.report import Meta, markdown, write_plots
from bench.harness.workloads.e2e_local import E2ELocal

ROWS = (
    "engine, one action, sequential, runs/s",
    "engine, ten steps, sequential, runs/s",
    "engine, one action, 10 in flight, runs/s",
    "engine, one action, sequential, p50 latency",
    "engine, ten steps, sequential, p99 latency",
)


def tiny(tmp_path: Path) -> Context:
    return Context(quick=True, reps=2, tmp=tmp_path, quiet=True)


def meta() -> Meta:
    return Meta(date="2026-11-22 06:00", mode="quick", reps=2, wall_s=1.0,
                load_before=(1.0, 2.0, 3.0), load_after=(1.5, 2.0, 3.0), cpus=2,
                python="3.11.7", commit="abc1234")


async def test_memory_e2e_workload_fills_the_page(tmp_path: Path) -> None:
    section = await E2ELocal(("memory",), with_peers=False, counts=(4, 2, 10)).run(
        tiny(tmp_path))

    assert section.status == "ok"
    by_name = {f.name: f for f in section.figures}
    for name in ROWS:
        figure = by_name[name]
        assert figure.group == "memory"
        assert all(v > 0 and math.isfinite(v) for v in figure.samples), figure
    assert len(by_name[ROWS[0]].samples) == 2  # one sample per repetition
    page = markdown([section], meta())
    for name in ROWS:
        assert any(line.startswith(f"| memory | {name} | ") for line in page.splitlines()), name
    assert "| load average before / after (1, 5, 15 min) | 1.00, 2.00, 3.00 / " in page
    assert "![End-to-end runs/s on memory](img/bench-e2e-memory.png)" in page


def test_missing_script_is_reported_not_available(tmp_path: Path) -> None:
    entry = registry.Entry("later", "Written later", "bench.harness.workloads.later_xyz",
                           needs=("bench.later_xyz",))

    section = run_workload(entry, tiny(tmp_path))

    assert section.status == "not available yet"
    page = markdown([section], meta())
    assert "| [Written later](#later) | not available yet |" in page
    assert "**not available yet.**" in page


def test_targets_and_ratios_are_per_repetition() -> None:
    engine = Figure("g", "engine", "runs/s", [30.0, 10.0, 20.0])
    peer = Figure("g", "peer", "runs/s", [10.0, 10.0, 10.0])
    ratio = ratios(engine, peer, group="g", name="engine / peer")
    section = Section("s", "S", figures=[ratio],
                      targets=[Target("engine >= 3x peer", ratio, ">=", 3.0)])

    assert ratio.samples == [3.0, 1.0, 2.0]
    assert ratio.cells() == ("2.00", "1.00-3.00")
    page = markdown([section], meta())
    assert "| engine >= 3x peer | 2.00 | 1.00-3.00 | **MISSED** |" in page
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile(list(map(float, range(1, 101))), 0.99) == 99.0


def test_plots_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is in .venv-bench only")
    section = Section("s", "S")
    figure = Figure("g", "engine", "runs/s", [3.0, 1.0, 2.0])
    from bench.harness.core import Plot

    section.plots.append(Plot("smoke", "Smoke", "runs/s", [("engine", figure)]))
    written = write_plots([section], tmp_path)

    assert written == [tmp_path / "bench-smoke.png"]
    assert written[0].read_bytes().startswith(b"\x89PNG")
