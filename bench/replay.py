"""Replay cost of the pure domain on a 10,000-event history, beside a plain-Python baseline.

Run from the repository root:

    .venv/bin/python bench/replay.py            # 7 repetitions, gc on
    .venv/bin/python bench/replay.py --repeat 15 --no-gc

The history is real: a ``for_each`` over 1,500 order lines, each line an ``action`` (one
line in five fails once and is retried after a durable timer), produced by driving
``decide`` and folding its decisions; the first 10,000 events are kept, as a store would
hold them for a long run still in flight. Each event is stored as one JSON document (an
envelope: tenant, run_id, version, type, at, data) encoded to bytes, like a database row.

Figures (each the median of ``--repeat`` timed repetitions after one warm-up; the cases
take turns within each repetition, so a burst of load on the machine hits them alike):

* ``baseline``: ``json.loads`` of every row and a dict-dispatch fold into a plain dict.
* ``engine decode+fold``: ``json.loads`` of every row, the ``EventEnvelope`` a store builds
  from it (``new_envelope``), ``decode_envelope``, and ``replay`` over them, streamed row
  by row as the baseline is: what loading a run without a snapshot costs.
* ``engine, store-shaped``: the same, but every envelope is built first and then folded,
  as the runtime does with a store's ``read`` (a list): holding 10,000 decoded rows at
  once costs fresh memory (page faults on this VM) that streaming does not.
* ``engine decode``: ``json.loads`` + ``new_envelope`` + ``decode_envelope`` into a list.
* ``engine fold``: ``replay`` of already decoded events.
* ``snapshot load``: ``json.loads`` + ``decode_state`` of a snapshot at version 9,900, then
  decode + fold of the 100-event tail; events/s is 10,000 divided by that time (the rate
  at which the same state is reached).
* With orjson installed (the benchmark environment of ``scripts/bench.sh`` has it), the
  baseline and the engine again with ``orjson.loads``: the pair the issue's target is set
  on (engine >= 0.5x baseline); and ``engine, from rows``: rows straight to events with
  ``decode_event``, without the envelope, as a store's read for loading could build them
  (no store does yet).

``x baseline`` is the baseline's time over the figure's (higher is faster), against the
baseline with the same JSON decoder.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.codec import (
    decode_envelope,
    decode_event,
    decode_state,
    encode_event,
    encode_state,
)
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import parse_definition
from wfdomain.records import new_envelope
from wfdomain.state import RunState, replay

Loads = Callable[[bytes], Any]

orjson_loads: Loads | None
try:  # optional: the benchmark environment has it; imported by name, as it has no stubs here
    orjson_loads = importlib.import_module("orjson").loads
except ImportError:  # pragma: no cover - depends on the environment
    orjson_loads = None

EVENTS = 10_000
ITEMS = 1_500
TAIL = 100
T0 = datetime(2026, 1, 1, tzinfo=UTC)

DEFINITION = {
    "id": "bulk_fulfilment", "version": 1,
    "steps": [
        {"type": "assign", "id": "init", "values": {"lines": "$count(input.items)"}},
        {"type": "for_each", "id": "lines", "items": "input.items", "max_concurrency": 10,
         "do": [{"type": "action", "id": "ship", "action": "ship",
                 "input": "{'sku': item.sku, 'qty': item.qty, 'line': index}",
                 "retry": {"max_attempts": 3, "initial_interval_s": 5},
                 "save_as": "last_shipment"}]},
        {"type": "return", "output": "{'shipped': $count(steps.lines)}"},
    ],
}


# ------------------------------------------------------------------------------ history


def make_history() -> list[ev.WorkflowEvent]:
    """Drive ``decide`` over the definition; return the first ``EVENTS`` events."""
    definition = parse_definition(DEFINITION)
    items = [{"sku": f"SKU-{i:05d}", "qty": 1 + i % 4} for i in range(ITEMS)]
    now = T0
    started = ev.RunStarted(
        at=now, run_id="run-bench", tenant="acme", definition_id=definition.id,
        definition_version=definition.version, definition_hash=definition.content_hash,
        input={"items": items}, engine="local", queue="default",
    )
    history: list[ev.WorkflowEvent] = [started]
    state = replay(history)
    pending: list[cmd.Input] = [cmd.Advance()]
    while pending and len(history) < EVENTS:
        inp = pending.pop(0)
        now += timedelta(milliseconds=250)
        decision = decide(definition, state, inp, DecisionContext(now=now))
        state = replay(decision.events, state)
        history.extend(decision.events)
        for command in decision.commands:
            if isinstance(command, cmd.ExecuteAction):
                line = command.input["line"]
                if command.attempt == 1 and line % 5 == 4:
                    pending.append(cmd.ReportOutcome(
                        key=command.key, attempt=1, ok=False,
                        error={"code": "CARRIER_BUSY", "message": "try later",
                               "retryable": True}))
                else:
                    pending.append(cmd.ReportOutcome(
                        key=command.key, attempt=command.attempt, ok=True,
                        output={"tracking": f"TRK-{line:05d}-{command.attempt}"}))
            elif isinstance(command, cmd.StartTimer):
                pending.append(cmd.FireTimer(timer_id=command.timer_id))
    if len(history) < EVENTS:
        raise SystemExit(f"the run ended after {len(history)} events; raise ITEMS")
    return history[:EVENTS]


def store(history: list[ev.WorkflowEvent]) -> list[bytes]:
    """Encode every event as a JSON envelope row."""
    rows = []
    for version, event in enumerate(history, start=1):
        name, at, data = encode_event(event)
        rows.append(json.dumps({"tenant": "acme", "run_id": "run-bench", "version": version,
                                "type": name, "at": at.isoformat(), "data": data}).encode())
    return rows


# ------------------------------------------------------------------------------- engine


def decode_rows(rows: list[bytes], loads: Loads = json.loads) -> list[ev.WorkflowEvent]:
    parse = datetime.fromisoformat
    return [
        decode_envelope(new_envelope(
            tenant=row["tenant"], run_id=row["run_id"], version=row["version"],
            type=row["type"], at=parse(row["at"]), data=row["data"]))
        for row in map(loads, rows)
    ]


def engine_load(
    rows: list[bytes], loads: Loads = json.loads, initial: RunState | None = None
) -> RunState:
    """Rows to state, one row at a time (the baseline's shape)."""
    parse = datetime.fromisoformat
    return replay(
        (decode_envelope(new_envelope(
            tenant=row["tenant"], run_id=row["run_id"], version=row["version"],
            type=row["type"], at=parse(row["at"]), data=row["data"]))
         for row in map(loads, rows)),
        initial,
    )


def store_shaped_load(rows: list[bytes], loads: Loads = json.loads) -> RunState:
    """Rows to envelopes (as a store's ``read`` returns them), then decode + fold."""
    parse = datetime.fromisoformat
    envelopes = [
        new_envelope(tenant=row["tenant"], run_id=row["run_id"], version=row["version"],
                     type=row["type"], at=parse(row["at"]), data=row["data"])
        for row in map(loads, rows)
    ]
    return replay(decode_envelope(e) for e in envelopes)


def rows_load(rows: list[bytes], loads: Loads = json.loads) -> RunState:
    """Rows straight to events with ``decode_event``, no envelope, one row at a time.

    What ``EventStore.load_run`` does when the runtime loads a run (``wfadapters.sql.
    _load.decode_rows``): no envelope, and the rows of one decision, which share their
    time, share one parsed ``at``.
    """
    parse = datetime.fromisoformat

    def events() -> Iterator[ev.WorkflowEvent]:
        last, at = None, None
        for row in map(loads, rows):
            if row["at"] != last:
                last, at = row["at"], parse(row["at"])
            assert at is not None
            yield decode_event(row["type"], at, row["data"])

    return replay(events())


def snapshot_load(snapshot: bytes, tail: list[bytes]) -> RunState:
    return engine_load(tail, initial=decode_state(json.loads(snapshot)))


# ----------------------------------------------------------------------------- baseline


def _step_started(s: dict[str, Any], d: dict[str, Any]) -> None:
    s["steps"][d["key"]] = {"type": d["step_type"], "id": d["step_id"]}


def _step_completed(s: dict[str, Any], d: dict[str, Any]) -> None:
    s["steps"].pop(d["key"], None)
    s["outputs"][d["key"]] = d["output"]


def _block_completed(s: dict[str, Any], d: dict[str, Any]) -> None:
    s["blocks"][d["block"]] = d["output"]


def _state_set(s: dict[str, Any], d: dict[str, Any]) -> None:
    s["vars"].update(d["values"])


def _action_scheduled(s: dict[str, Any], d: dict[str, Any]) -> None:
    s["actions"][d["key"]] = (d["attempt"], d["idempotency_key"], d["input"])


def _action_finished(s: dict[str, Any], d: dict[str, Any]) -> None:
    s["actions"].pop(d["key"], None)


def _timer_started(s: dict[str, Any], d: dict[str, Any]) -> None:
    s["timers"][d["timer_id"]] = (d["key"], d["fire_at"], d["purpose"])


def _timer_fired(s: dict[str, Any], d: dict[str, Any]) -> None:
    s["timers"].pop(d["timer_id"], None)


def _run_started(s: dict[str, Any], d: dict[str, Any]) -> None:
    s.update(status="running", run_id=d["run_id"], input=d["input"])


def _for_each_started(s: dict[str, Any], d: dict[str, Any]) -> None:
    s["loops"][d["key"]] = d["items"]


def _run_completed(s: dict[str, Any], d: dict[str, Any]) -> None:
    s.update(status="completed", output=d["output"])


def _ignore(s: dict[str, Any], d: dict[str, Any]) -> None:
    return None


HANDLERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
    "RunStarted": _run_started, "StepStarted": _step_started,
    "StepCompleted": _step_completed, "BlockCompleted": _block_completed,
    "StateSet": _state_set, "ForEachStarted": _for_each_started,
    "ActionScheduled": _action_scheduled, "ActionCompleted": _action_finished,
    "ActionFailed": _action_finished, "TimerStarted": _timer_started,
    "TimerFired": _timer_fired, "RunCompleted": _run_completed,
}


def baseline_load(rows: list[bytes], loads: Loads = json.loads) -> dict[str, Any]:
    state: dict[str, Any] = {"steps": {}, "outputs": {}, "blocks": {}, "vars": {},
                             "actions": {}, "timers": {}, "loops": {}, "version": 0}
    handlers, ignore = HANDLERS, _ignore
    for raw in rows:
        row = loads(raw)
        handlers.get(row["type"], ignore)(state, row["data"])
        state["version"] = row["version"]
    return state


# -------------------------------------------------------------------------------- timing


def measure(
    cases: list[tuple[str, str, Callable[[], object]]], repeat: int
) -> dict[str, list[float]]:
    """Seconds of each case per repetition, after one warm-up; the cases take turns."""
    for _, _, fn in cases:
        fn()
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(repeat):
        for name, _, fn in cases:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions (default 7)")
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic GC")
    args = parser.parse_args()

    built = time.perf_counter()
    history = make_history()
    built = time.perf_counter() - built
    rows = store(history)
    decoded = decode_rows(rows)
    snapshot = json.dumps(encode_state(replay(decoded[: EVENTS - TAIL]))).encode()
    tail = rows[EVENTS - TAIL:]

    full = replay(history)
    assert decoded == history
    assert engine_load(rows) == full
    assert store_shaped_load(rows) == full
    assert snapshot_load(snapshot, tail) == full
    assert baseline_load(rows)["version"] == EVENTS

    kinds: dict[str, int] = {}
    for event in history:
        kinds[type(event).__name__] = kinds.get(type(event).__name__, 0) + 1
    print(f"history: {EVENTS:,} events ({sum(len(r) for r in rows) / EVENTS:.0f} B/row avg), "
          f"{full.steps['steps[1]'].iterations_done:,} of {ITEMS:,} for_each lines done, "
          f"built by decide in {built:.1f} s")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])))
    print(f"snapshot at v{EVENTS - TAIL:,}: {len(snapshot) / 1024:.0f} KiB JSON; "
          f"gc {'off' if args.no_gc else 'on'}; median of {args.repeat} (min-max)\n")

    # (name, what, baseline it is held against, function)
    cases: list[tuple[str, str, str, Callable[[], object]]] = [
        ("baseline", "json.loads + dict-dispatch fold into a dict", "baseline",
         lambda: baseline_load(rows)),
        ("engine decode+fold", "json.loads + new_envelope + decode_envelope + replay",
         "baseline", lambda: engine_load(rows)),
        ("engine, store-shaped", "the same, all envelopes built first", "baseline",
         lambda: store_shaped_load(rows)),
        ("engine decode", "json.loads + new_envelope + decode_envelope", "baseline",
         lambda: decode_rows(rows)),
        ("engine fold", "replay(decoded events)", "baseline", lambda: replay(decoded)),
        ("snapshot load", f"decode_state + {TAIL}-event tail decode+fold", "baseline",
         lambda: snapshot_load(snapshot, tail)),
    ]
    if orjson_loads is not None:
        fast = orjson_loads
        assert engine_load(rows, fast) == full
        assert rows_load(rows, fast) == full
        cases += [
            ("baseline (orjson)", "orjson.loads + dict-dispatch fold into a dict",
             "baseline (orjson)", lambda: baseline_load(rows, fast)),
            ("engine (orjson)", "orjson.loads + new_envelope + decode_envelope + replay",
             "baseline (orjson)", lambda: engine_load(rows, fast)),
            ("engine, store-shaped (orjson)", "the same, all envelopes built first",
             "baseline (orjson)", lambda: store_shaped_load(rows, fast)),
            ("engine, from rows (orjson)", "orjson.loads + decode_event + replay, no envelope",
             "baseline (orjson)", lambda: rows_load(rows, fast)),
        ]
    if args.no_gc:
        gc.disable()
    times = measure([(name, what, fn) for name, what, _, fn in cases], args.repeat)
    gc.enable()

    header = (f"| {'figure':<29} | {'what':<55} | {'median ms':>9} | {'min-max ms':>13} "
              f"| {'events/s':>10} | {'x baseline':>10} |")
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for name, what, against, _ in cases:
        median = statistics.median(times[name])
        low, high = min(times[name]), max(times[name])
        # Ratio per repetition (the cases of one repetition ran back to back), then median.
        ratio = statistics.median(b / t for b, t in zip(times[against], times[name], strict=True))
        print(f"| {name:<29} | {what:<55} | {median * 1e3:>9.1f} | "
              f"{f'{low * 1e3:.1f}-{high * 1e3:.1f}':>13} | {EVENTS / median:>10,.0f} | "
              f"{ratio:>9.2f}x |")
    print("\n'x baseline' is the baseline's time / the figure's time, per repetition (higher is "
          f"faster), against the baseline with the same JSON decoder; snapshot load events/s is "
          f"{EVENTS:,} / its time.")


if __name__ == "__main__":
    main()
