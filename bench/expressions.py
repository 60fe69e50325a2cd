"""Cost of the expression contract: plain jsonata-python, the contract in-process, and the
contract in an isolated worker process, on the same expressions and data, in one run.

Run from the repository root:

    .venv/bin/python bench/expressions.py                 # 5 repetitions of 1,000 evaluations
    .venv/bin/python bench/expressions.py --repeat 9 --number 5000
    .venv/bin/python bench/expressions.py --quick       # smoke run: 2 x 300

Each repetition times the three modes back to back on each expression (so drift of a
shared machine hits them alike), after one warm-up, and times every call. A mode's
evaluations/s is one over its median call time: on a shared machine a process is
descheduled now and then for milliseconds, which moves the mean (the throughput column,
all calls included) far more than the median. Figures are the median over the repetitions
with the min and max beside it; ratios are taken per repetition.

* ``plain``: ``Jsonata(source)`` compiled once, ``evaluate(data)``: jsonata-python's
  defaults (input validation on, no time box).
* ``contract``: ``IN_PROCESS.evaluate(source, data, now=...)``, exactly what ``decide`` calls:
  the compiled-expression cache lookup, input check, per-evaluation frame with time and
  depth bounds, ``$nowIso``, denied names unbound, range cap, output conversion and cap.
* ``isolated``: ``ProcessPoolEvaluator.evaluate`` with the same arguments: the load-time
  and input checks here, a JSON request over a pipe, the contract in the worker, a JSON
  reply. Its median call is the round trip; minus the in-process median of the same
  repetition, it is the cost of the isolation itself.

Two diagnostics follow: the floor (a 200-byte echo through a pipe to a forkserver child)
and where a round trip goes (request to worker start, the worker's evaluation, reply to
caller; stamps of the system-wide monotonic clock taken in both processes).

Targets: contract >= 0.75x plain evaluations/s; isolated median round trip < 250 us.
The load average is printed before and after: on a shared machine every figure moves with
it, the ratios much less.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from jsonata import Jsonata

from wfadapters.isolation import IsolationOptions, ProcessPoolEvaluator
from wfadapters.isolation.worker import encode_request
from wfdomain.expressions import IN_PROCESS

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DATA: dict[str, Any] = {
    "input": {
        "order": {
            "id": "o-1", "total": 150,
            "items": [{"sku": f"s{i}", "qty": i % 3 + 1, "price": 10 + i} for i in range(10)],
        },
        "customer": {"id": "c-42", "tier": "gold", "email": "a@example.com"},
    },
    "state": {"approved": False, "attempts": 1},
    "steps": {"fetch": {"output": {"total": 3}}},
    "run": {"id": "run-1", "tenant": "acme", "definition": "orders"},
}
EXPRESSIONS = {
    "simple": 'input.order.total > 100 and input.customer.tier = "gold"',
    "moderate": '$sum(input.order.items.(qty * price)) & "-" & $uppercase(input.customer.id)',
}
MODES = ("plain", "contract", "isolated")


def _timed(call: Callable[[], Any], number: int) -> tuple[float, list[float]]:
    """Evaluations per second over all calls, and each call's time."""
    samples = []
    started = time.perf_counter()
    for _ in range(number):
        t = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t)
    return number / (time.perf_counter() - started), samples


def _echo(conn: Connection) -> None:
    while True:
        try:
            conn.send_bytes(conn.recv_bytes())
        except EOFError:
            return


def _pipe_floor(repeat: int, number: int) -> list[float]:
    """Median round trip (us) of 200 bytes echoed by a forkserver child, per repetition."""
    context = multiprocessing.get_context("forkserver")
    parent, child = context.Pipe()
    echo = context.Process(target=_echo, args=(child,), daemon=True)
    echo.start()
    child.close()
    payload = b"x" * 200

    def round_trip() -> None:
        parent.send_bytes(payload)
        parent.poll(5.0)
        parent.recv_bytes()

    medians = [statistics.median(_timed(round_trip, number)[1]) * 1e6 for _ in range(repeat + 1)]
    parent.close()
    echo.join(5.0)
    return medians[1:]


def _timed_worker(conn: Connection) -> None:
    """A worker answering like the pool's, replying with when it started and finished."""
    from wfadapters.isolation.worker import _answer

    while True:
        try:
            raw = conn.recv_bytes()
        except EOFError:
            return
        started = time.perf_counter()
        _answer(raw)
        conn.send_bytes(json.dumps([started, time.perf_counter()]).encode())


def _segments(source: str, number: int) -> tuple[float, float, float]:
    """Median us of: request sent -> worker starts, worker's work, worker done -> reply read.

    ``perf_counter`` is the system-wide monotonic clock, so the two processes' stamps
    compare.
    """
    context = multiprocessing.get_context("forkserver")
    parent, child = context.Pipe()
    worker = context.Process(target=_timed_worker, args=(child,), daemon=True)
    worker.start()
    child.close()
    request = encode_request(source, None, DATA, NOW, None)
    parts: tuple[list[float], list[float], list[float]] = ([], [], [])
    for _ in range(number):
        sent = time.perf_counter()
        parent.send_bytes(request)
        parent.poll(5.0)
        started, done = json.loads(parent.recv_bytes())
        read = time.perf_counter()
        for part, value in zip(parts, (started - sent, done - started, read - done), strict=True):
            part.append(value * 1e6)
    parent.close()
    worker.join(5.0)
    wake, work, back = (statistics.median(part) for part in parts)
    return wake, work, back


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions")
    parser.add_argument("--number", type=int, default=1000, help="evaluations per repetition")
    parser.add_argument("--workers", type=int, default=1, help="isolated worker processes")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 x 300 evaluations")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.number = 2, 300

    load_before = os.getloadavg()[0]
    with ProcessPoolEvaluator(IsolationOptions(workers=args.workers)) as pool:
        rows = []
        for name, source in EXPRESSIONS.items():
            print(f"timing {name}: {source}", file=sys.stderr, flush=True)
            plain = Jsonata(source)
            calls: dict[str, Callable[[], Any]] = {
                "plain": lambda plain=plain: plain.evaluate(DATA),  # type: ignore[misc]
                "contract": lambda source=source: IN_PROCESS.evaluate(  # type: ignore[misc]
                    source, DATA, now=NOW),
                "isolated": lambda source=source: pool.evaluate(  # type: ignore[misc]
                    source, DATA, now=NOW),
            }
            results = {mode: call() for mode, call in calls.items()}
            if len({repr(result) for result in results.values()}) != 1:
                raise SystemExit(f"{name}: the modes disagree: {results}")
            rates: dict[str, list[float]] = {mode: [] for mode in MODES}
            medians: dict[str, list[float]] = {mode: [] for mode in MODES}
            for _ in range(args.repeat + 1):  # the first repetition warms up
                for mode in MODES:
                    rate, samples = _timed(calls[mode], args.number)
                    rates[mode].append(rate)
                    medians[mode].append(statistics.median(samples) * 1e6)
            rows.append((name, source,
                         {mode: values[1:] for mode, values in rates.items()},
                         {mode: values[1:] for mode, values in medians.items()}))

    print(f"\n{args.repeat} repetitions x {args.number} evaluations, "
          f"{args.workers} isolated worker(s); evaluations/s median (min-max); "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n")
    print("| expression | mode | evals/s (1 / median call) | min-max | vs plain "
          "| median call | throughput evals/s (all calls) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    verdicts = []
    for name, _, rates, medians in rows:
        per_call = {mode: [1e6 / us for us in values] for mode, values in medians.items()}
        for mode in MODES:
            median, low, high = _spread(per_call[mode])
            ratios = [m / p for m, p in zip(per_call[mode], per_call["plain"], strict=True)]
            ratio, rlow, rhigh = _spread(ratios)
            call_us = statistics.median(medians[mode])
            print(f"| {name} | {mode} | {median:,.0f} | {low:,.0f}-{high:,.0f} | "
                  f"{ratio:.2f}x ({rlow:.2f}-{rhigh:.2f}) | {call_us:.0f} us "
                  f"| {statistics.median(rates[mode]):,.0f} |")
        overhead = [i - c for i, c in zip(medians["isolated"], medians["contract"], strict=True)]
        extra, elow, ehigh = _spread(overhead)
        trip, tlow, thigh = _spread(medians["isolated"])
        ratio = statistics.median(
            [c / p for c, p in zip(per_call["contract"], per_call["plain"], strict=True)])
        verdicts.append(
            f"| {name} | {ratio:.2f}x | {'PASS' if ratio >= 0.75 else 'MISS'} "
            f"| {trip:.0f} us ({tlow:.0f}-{thigh:.0f}) | {'PASS' if trip < 250 else 'MISS'} "
            f"| {extra:.0f} us ({elow:.0f}-{ehigh:.0f}) |")
    floor, flow, fhigh = _spread(_pipe_floor(args.repeat, args.number))
    print(f"\nFloor on this machine now: a 200-byte echo through a pipe to a forkserver "
          f"child, median round trip {floor:.0f} us ({flow:.0f}-{fhigh:.0f}).")
    print("\nWhere an isolated round trip goes (median us; one worker, the pool's wire format):")
    print("\n| expression | request -> worker starts | worker evaluates | reply -> caller "
          "| in-process call |")
    print("|---|---:|---:|---:|---:|")
    for name, source, _, medians in rows:
        wake, work, back = _segments(source, args.number)
        print(f"| {name} | {wake:.0f} | {work:.0f} | {back:.0f} "
              f"| {statistics.median(medians['contract']):.0f} |")
    print("\nTargets: contract >= 0.75x plain; isolated median round trip < 250 us.\n")
    print("| expression | contract vs plain | >= 0.75x | isolated round trip (min-max) "
          "| < 250 us | of which isolation |")
    print("|---|---:|---|---:|---|---:|")
    print("\n".join(verdicts))

if __name__ == "__main__":
    main()
