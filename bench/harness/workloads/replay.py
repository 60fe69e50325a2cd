"""Pure replay of a 10,000-event history: the engine beside plain Python and eventsourcing.

The history is ``bench/replay.py``'s (a ``for_each`` over order lines, produced by
``decide``), stored as JSON envelope rows. Per repetition, back to back:

* baseline: ``orjson.loads`` of every row + a dict-dispatch fold into a plain dict;
* engine: ``orjson.loads`` or ``json.loads`` of every row, straight to its event
  (``decode_event``; consecutive rows of one decision share one parsed time) and
  ``replay``, streamed row by row as the baseline is: what ``EventStore.load_run`` does
  when the runtime loads a run (``bench.replay.rows_load``);
* engine via envelopes (information): the ``EventEnvelope`` a store's ``read`` builds
  per row (``new_envelope``), then ``decode_envelope`` (``bench.replay.engine_load``), and
  store-shaped, all envelopes built before the fold;
* eventsourcing: ``repository.get`` of one aggregate of 10,000 events, stored in memory
  (POPO: the pure-replay comparison) and in a SQLite file (information).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from bench import replay as base
from bench.harness.core import Context, Figure, Plot, Section, Target, ratios
from bench.peers.eventsourcing_peer import Aggregated

from wfdomain.state import RunState, replay


def baseline(rows: list[bytes]) -> dict[str, Any]:
    return base.baseline_load(rows, orjson.loads)


def engine_orjson(rows: list[bytes]) -> RunState:
    return base.engine_load(rows, orjson.loads)


def engine_store_shaped(rows: list[bytes]) -> RunState:
    return base.store_shaped_load(rows, orjson.loads)


def engine_from_rows(rows: list[bytes]) -> RunState:
    return base.rows_load(rows, orjson.loads)


def _label(name: str) -> str:
    """A plot label: the figure's subject, then its decoder or store."""
    kind = ("orjson" if "orjson" in name else "json" if "json" in name
            else "SQLite" if "SQLite" in name else "memory")
    return name.split(":")[0].replace(", ", "\n") + f"\n({kind})"


class Replay:
    key = "replay"
    title = "Pure replay: 10,000 events"

    async def run(self, ctx: Context) -> Section:
        section = Section(self.key, self.title)
        ctx.progress("replay: building the 10,000-event history with decide (~3 s)")
        history = base.make_history()
        rows = base.store(history)
        full = replay(history)
        if (base.engine_load(rows) != full or engine_orjson(rows) != full
                or engine_store_shaped(rows) != full or engine_from_rows(rows) != full):
            raise AssertionError("the engine's replay differs from the folded history")
        if baseline(rows)["version"] != base.EVENTS:
            raise AssertionError("the baseline did not fold every row")
        ctx.progress("replay: storing the eventsourcing aggregates")
        popo = Aggregated(base.EVENTS)
        sqlite = Aggregated(base.EVENTS, ctx.tmp / "eventsourcing.sqlite")
        # The engine's figure is what loading a run does (EventStore.load_run): each row
        # straight to its event. The envelope paths are what read + decode_envelope give.
        cases: list[tuple[str, Callable[[], object]]] = [
            ("baseline: orjson decode + dict fold", lambda: baseline(rows)),
            ("engine: orjson decode + decode_event + replay (load_run)",
             lambda: engine_from_rows(rows)),
            ("engine: json decode + decode_event + replay (load_run)",
             lambda: base.rows_load(rows)),
            ("engine, via envelopes: orjson decode + decode_envelope + replay (read)",
             lambda: engine_orjson(rows)),
            ("eventsourcing: repository.get, in memory (POPO)", popo.replay),
            ("eventsourcing: repository.get, SQLite file", sqlite.replay),
            ("engine, store-shaped: orjson, every envelope first (read)",
             lambda: engine_store_shaped(rows)),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _ in cases}
        for _, fn in cases:
            fn()  # warm-up
        for rep in range(max(ctx.reps, 3)):
            for name, fn in cases:
                start = time.perf_counter()
                fn()
                samples[name].append(base.EVENTS / (time.perf_counter() - start))
            ctx.progress(f"replay rep {rep + 1}: " + ", ".join(
                f"{n.split(':')[0]} {v[-1]:,.0f}/s" for n, v in list(samples.items())[:4]))
        popo.close()
        sqlite.close()
        figs = {name: Figure("10,000 events", name, "events/s", values)
                for name, values in samples.items()}
        section.figures += figs.values()
        names = list(figs)
        vs_base = ratios(figs[names[1]], figs[names[0]], group="ratio",
                         name="engine (orjson) / baseline")
        vs_base_json = ratios(figs[names[2]], figs[names[0]], group="ratio",
                              name="engine (json) / baseline")
        vs_es = ratios(figs[names[1]], figs[names[4]], group="ratio",
                       name="engine (orjson) / eventsourcing (POPO)")
        envelopes_vs_base = ratios(
            figs[names[3]], figs[names[0]], group="ratio",
            name="engine via envelopes (orjson) / baseline (information)")
        section.figures += [vs_base, vs_base_json, vs_es, envelopes_vs_base]
        section.targets += [
            Target("pure replay >= 0.5x the plain-Python baseline", vs_base, ">=", 0.5),
            Target("pure replay >= 10x eventsourcing's aggregate replay", vs_es, ">=", 10.0),
        ]
        section.plots.append(Plot("replay", "Replay of 10,000 events", "events/s",
                                  [(_label(n), f) for n, f in figs.items()], log=True))
        section.notes.append(
            f"The history: {base.EVENTS:,} events of `bench/replay.py` (a `for_each` over order "
            f"lines; rows average {sum(map(len, rows)) / len(rows):.0f} B as JSON envelopes). "
            "The eventsourcing aggregate has the same number of events of about the same size "
            "(an order line shipped: line, SKU, tracking number, a 150 B note). The engine's "
            "rows become events straight from their fields (`decode_event`, the rows of one "
            "decision sharing one parsed time), folded as they are decoded, as the baseline "
            "folds them: what `EventStore.load_run` does when the runtime loads a run. The "
            "envelope figures are the path through `read` (an `EventEnvelope` per row, then "
            "`decode_envelope`), which the runtime loaded with before; the store-shaped one "
            "builds all 10,000 envelopes first: holding them all costs fresh memory and "
            "garbage-collector passes.")
        return section


WORKLOAD = Replay()
