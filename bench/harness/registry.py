"""Every workload of the harness, in the order a full run measures them.

A workload lives in a module that exposes ``WORKLOAD`` (see ``core.Workload``). Some wrap a
benchmark script that another part of the project owns (``bench/e2e.py``,
``bench/temporal.py``...). When that script does not exist yet, importing the wrapper fails
on exactly that module, and the workload is reported as "not available yet" instead of
failing the run. Modules are imported by name only for that reason.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from bench.harness.core import Workload


@dataclass(frozen=True, slots=True)
class Entry:
    """A workload's key, its module, and the optional scripts it builds on."""

    key: str
    title: str
    module: str
    needs: tuple[str, ...] = ()  # modules whose absence means "not available yet"
    temporal: bool = False  # needs the harness's Temporal dev server


ENTRIES: tuple[Entry, ...] = (
    Entry("replay", "Pure replay: 10,000 events", "bench.harness.workloads.replay"),
    Entry("storage", "Load cost against history length, with and without snapshots",
          "bench.harness.workloads.storage"),
    Entry("raw", "Raw backend limits", "bench.harness.workloads.raw"),
    Entry("e2e", "End-to-end runs in one process (memory, SQLite, Postgres) and DBOS",
          "bench.harness.workloads.e2e_local"),
    Entry("e2e-multi", "End-to-end runs, Postgres + Redis, 1/2/4 worker processes",
          "bench.harness.workloads.e2e_multi", needs=("bench.e2e",)),
    Entry("temporal-peer", "Direct temporalio on the same workloads",
          "bench.harness.workloads.temporal_peer", temporal=True),
    Entry("temporal", "Temporal engine against direct temporalio",
          "bench.harness.workloads.temporal", needs=("bench.temporal",), temporal=True),
    Entry("expressions", "Expressions", "bench.harness.workloads.expressions",
          needs=("bench.expressions",)),
    Entry("profile", "Profiles of the end-to-end path", "bench.harness.workloads.profile"),
)


class NotAvailable(Exception):
    """A workload's underlying script is not in the tree yet."""


def load(entry: Entry) -> Workload:
    """Import the workload; ``NotAvailable`` when a script it needs is missing."""
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as e:
        if e.name in entry.needs or e.name == entry.module:
            raise NotAvailable(f"{e.name} does not exist yet") from e
        raise
    workload: Workload = module.WORKLOAD
    return workload
