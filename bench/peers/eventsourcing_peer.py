"""The ``eventsourcing`` library's aggregate replay, for the replay workload.

One aggregate gets ``n`` events of about the engine's row size (a shipped order line with a
tracking number and a ~150 B note), saved in batches of 500. ``replay()`` is
``Application.repository.get(id)``: read the stored events, decode them (its JSON
transcoder) and mutate the aggregate; no snapshots. ``POPO`` keeps the stored events in
memory (the pure-replay comparison); ``SQLite`` reads them from a file.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Order(Aggregate):
    @event("Created")
    def __init__(self) -> None:
        self.lines: dict[int, str] = {}

    @event("LineShipped")
    def ship(self, line: int, sku: str, tracking: str, note: str) -> None:
        self.lines[line] = tracking


class Orders(Application[UUID]):
    pass


class Aggregated:
    """One stored aggregate of ``n`` events, replayed on demand."""

    def __init__(self, n: int, sqlite_path: Path | None = None) -> None:
        env = ({"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(sqlite_path)}
               if sqlite_path is not None else {})
        self.app = Orders(env=env)
        order = Order()
        for i in range(1, n):
            order.ship(i, f"SKU-{i:05d}", f"TRK-{i:05d}-1", "n" * 150)
            if i % 500 == 0:
                self.app.save(order)
        self.app.save(order)
        self.id = order.id
        self.n = n

    def replay(self) -> int:
        order = self.app.repository.get(self.id)
        assert len(order.lines) == self.n - 1
        return int(order.version)

    def close(self) -> None:
        self.app.close()
