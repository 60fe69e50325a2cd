"""What every workload shares: figures, sections, the run context and the interface.

A workload is a module that exposes ``WORKLOAD``: an object with a ``key``, a ``title`` and
``async run(ctx) -> Section``. It measures in repetitions and reports every figure as its
per-repetition samples, so the report can show median, min and max; every comparison is a
ratio taken per repetition of the same run.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Status = Literal["ok", "not available yet", "failed", "skipped"]


@dataclass(slots=True)
class Figure:
    """One measured quantity: its samples (one per repetition, or pooled latencies)."""

    group: str
    name: str
    unit: str
    samples: list[float]
    digits: int = 0
    note: str = ""
    pooled: bool = False  # a percentile over pooled samples: a single value, no range

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def low(self) -> float:
        return min(self.samples) if self.samples else math.nan

    @property
    def high(self) -> float:
        return max(self.samples) if self.samples else math.nan

    def fmt(self, value: float) -> str:
        if math.isnan(value):
            return "-"
        digits = self.digits
        if digits == 0 and abs(value) < 10:
            digits = 2 if abs(value) < 1 else 1
        return f"{value:,.{digits}f}"

    def cells(self) -> tuple[str, str]:
        """Median and ``min-max`` as table cells (a pooled value has no range)."""
        if self.pooled or len(self.samples) < 2:
            return self.fmt(self.median), "-"
        return self.fmt(self.median), f"{self.fmt(self.low)}-{self.fmt(self.high)}"


@dataclass(slots=True)
class Target:
    """A goal from the issue, checked on a same-run ratio (median of the repetitions)."""

    name: str
    figure: Figure
    op: Literal[">=", "<="]
    bound: float
    why: str = ""

    @property
    def passed(self) -> bool:
        value = self.figure.median
        return value >= self.bound if self.op == ">=" else value <= self.bound


@dataclass(slots=True)
class Plot:
    """A bar chart of some figures' medians with min-max whiskers."""

    stem: str  # written as docs/img/bench-<stem>.png
    title: str
    ylabel: str
    bars: list[tuple[str, Figure]]
    log: bool = False


@dataclass(slots=True)
class Section:
    """What one workload reports."""

    key: str
    title: str
    status: Status = "ok"
    figures: list[Figure] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def figure(self, group: str, name: str) -> Figure:
        for f in self.figures:
            if f.group == group and f.name == name:
                return f
        raise KeyError(f"{self.key}: no figure {group!r} / {name!r}")


@dataclass(slots=True)
class Context:
    """Where the servers are and how big a run is."""

    quick: bool
    reps: int
    tmp: Path
    pg_url: str = "postgres://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    temporal_address: str | None = None
    temporal_bin: Path | None = None
    peer_python: str = sys.executable
    started: float = field(default_factory=time.perf_counter)
    quiet: bool = False

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def progress(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.started
            print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


class Workload(Protocol):
    """The interface of a workload module's ``WORKLOAD``."""

    key: str
    title: str

    async def run(self, ctx: Context) -> Section: ...


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    """Seconds one awaited call takes."""
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def ratios(top: Figure, bottom: Figure, *, group: str, name: str, digits: int = 2,
           note: str = "") -> Figure:
    """Per-repetition ``top / bottom``: both series must come from the same repetitions."""
    pairs = zip(top.samples, bottom.samples, strict=True)
    return Figure(group, name, "ratio", [a / b if b else math.nan for a, b in pairs],
                  digits=digits, note=note)
