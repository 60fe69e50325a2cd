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
  and input checks here, a marshal request over a pipe, the contract in the worker, a
  JSON reply. Its median call is the round trip; minus the in-process median of the same
  repetition, it is the cost of the isolation itself.

Diagnostics follow: the floor (a 200-byte echo through a pipe to a forkserver child, both
ends waiting as the pool does: a bounded spin, then a blocking wait; and both ends
blocking at once, the way the pool waited before it spun), where a round trip goes
(request to worker start, the worker's evaluation, reply to caller; stamps of the
system-wide monotonic clock taken in both processes), the CPU the isolated mode costs:
per evaluation (caller and worker together, against the wall time of the call) and of an
idle worker over one second, and the lag of an asyncio loop next to a thread that
evaluates back to back (in-process, isolated, and isolated without spinning: the GIL
cost of a spinning caller).

Targets: contract >= 0.75x plain evaluations/s; isolated median round trip < 250 us.
The load average is printed before and after: on a shared machine every figure moves with
it, the ratios much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from jsonata import Jsonata

from wfadapters.isolation import IsolationOptions, ProcessPoolEvaluator
from wfadapters.isolation.worker import (
    encode_request,
    readable_poller,
    recv_message,
    send_message,
    wait_readable,
)
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


def _echo(conn: Connection, spin_us: int) -> None:
    poller = readable_poller(conn)
    while True:
        wait_readable(poller, spin_us / 1e6)
        try:
            send_message(conn.fileno(), recv_message(conn.fileno()))
        except EOFError:
            return


def _pipe_floor(repeat: int, number: int, spin_us: int) -> list[float]:
    """Median round trip (us) of 200 bytes echoed by a forkserver child, per repetition."""
    context = multiprocessing.get_context("forkserver")
    parent, child = context.Pipe()
    echo = context.Process(target=_echo, args=(child, spin_us), daemon=True)
    echo.start()
    child.close()
    payload = b"x" * 200
    poller = readable_poller(parent)

    def round_trip() -> None:
        send_message(parent.fileno(), payload)
        wait_readable(poller, spin_us / 1e6)
        poller.poll(5000)
        recv_message(parent.fileno())

    medians = [statistics.median(_timed(round_trip, number)[1]) * 1e6 for _ in range(repeat + 1)]
    parent.close()
    echo.join(5.0)
    return medians[1:]


def _timed_worker(conn: Connection, spin_us: int) -> None:
    """A worker answering like the pool's, replying with when it started and finished."""
    from wfadapters.isolation.worker import _answer

    poller = readable_poller(conn)
    while True:
        wait_readable(poller, spin_us / 1e6)
        try:
            raw = recv_message(conn.fileno())
        except EOFError:
            return
        started = time.perf_counter()
        _answer(raw)
        send_message(conn.fileno(), json.dumps([started, time.perf_counter()]).encode())


def _segments(source: str, number: int, spin_us: int) -> tuple[float, float, float]:
    """Median us of: request sent -> worker starts, worker's work, worker done -> reply read.

    ``perf_counter`` is the system-wide monotonic clock, so the two processes' stamps
    compare.
    """
    context = multiprocessing.get_context("forkserver")
    parent, child = context.Pipe()
    worker = context.Process(target=_timed_worker, args=(child, spin_us), daemon=True)
    worker.start()
    child.close()
    poller = readable_poller(parent)
    request = encode_request(source, None, DATA, NOW, None)
    parts: tuple[list[float], list[float], list[float]] = ([], [], [])
    for _ in range(number):
        sent = time.perf_counter()
        send_message(parent.fileno(), request)
        wait_readable(poller, spin_us / 1e6)
        poller.poll(5000)
        started, done = json.loads(recv_message(parent.fileno()))
        read = time.perf_counter()
        for part, value in zip(parts, (started - sent, done - started, read - done), strict=True):
            part.append(value * 1e6)
    parent.close()
    worker.join(5.0)
    wake, work, back = (statistics.median(part) for part in parts)
    return wake, work, back


def _loop_lag(evaluate: Callable[[], Any] | None, seconds: float) -> tuple[float, ...]:
    """An asyncio loop ticking every 1 ms while a thread evaluates back to back.

    Returns the loop's median and p99 lag (us past each 1 ms tick), the thread's median
    call (us) and its evaluations/s: how much a caller thread waiting on a worker (spinning
    or blocked) holds up the loop next to it.
    """
    calls: list[float] = []
    stop = threading.Event()

    def work() -> None:
        while evaluate is not None and not stop.is_set():
            started = time.perf_counter()
            evaluate()
            calls.append(time.perf_counter() - started)

    async def ticks() -> list[float]:
        lags = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append((time.perf_counter() - started - 0.001) * 1e6)
        return lags

    thread = threading.Thread(target=work)
    thread.start()
    lags = sorted(asyncio.run(ticks()))
    stop.set()
    thread.join()
    call = statistics.median(calls) * 1e6 if calls else 0.0
    return lags[len(lags) // 2], lags[int(len(lags) * 0.99)], call, len(calls) / seconds


def _cpu_s(pids: frozenset[int]) -> float:
    """CPU time (s) the processes have run, from the scheduler's nanosecond counter."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions")
    parser.add_argument("--number", type=int, default=1000, help="evaluations per repetition")
    parser.add_argument("--workers", type=int, default=1, help="isolated worker processes")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 x 300 evaluations")
    parser.add_argument("--spin-us", type=int, default=IsolationOptions().spin_us,
                        help="IsolationOptions.spin_us of the pool (0: block at once)")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.number = 2, 300

    load_before = os.getloadavg()[0]
    options = IsolationOptions(workers=args.workers, spin_us=args.spin_us)
    cpu: dict[str, tuple[float, float, float]] = {}
    with ProcessPoolEvaluator(options) as pool:
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
            spent = [0.0, 0.0, 0.0]  # isolated: wall, caller CPU, workers' CPU (s)
            for repetition in range(args.repeat + 1):  # the first repetition warms up
                for mode in MODES:
                    wall, caller, workers = (time.perf_counter(), time.process_time(),
                                             _cpu_s(pool.pids))
                    rate, samples = _timed(calls[mode], args.number)
                    rates[mode].append(rate)
                    medians[mode].append(statistics.median(samples) * 1e6)
                    if mode == "isolated" and repetition:
                        for index, value in enumerate((
                                time.perf_counter() - wall, time.process_time() - caller,
                                _cpu_s(pool.pids) - workers)):
                            spent[index] += value
            calls_timed = args.repeat * args.number
            cpu[name] = (spent[0] / calls_timed * 1e6, spent[1] / calls_timed * 1e6,
                         spent[2] / calls_timed * 1e6)
            rows.append((name, source,
                         {mode: values[1:] for mode, values in rates.items()},
                         {mode: values[1:] for mode, values in medians.items()}))
        idle_from = _cpu_s(pool.pids)
        time.sleep(1.0)
        idle_cpu_ms = (_cpu_s(pool.pids) - idle_from) * 1e3
        simple = EXPRESSIONS["simple"]
        lag_rows = [("no evaluations", _loop_lag(None, 1.0)),
                    ("in-process", _loop_lag(
                        lambda: IN_PROCESS.evaluate(simple, DATA, now=NOW), 1.0)),
                    (f"isolated, spin {args.spin_us} us", _loop_lag(
                        lambda: pool.evaluate(simple, DATA, now=NOW), 1.0))]
    if args.spin_us:
        with ProcessPoolEvaluator(IsolationOptions(workers=args.workers, spin_us=0)) as blocking:
            lag_rows.append(("isolated, spin 0 (blocking at once)", _loop_lag(
                lambda: blocking.evaluate(simple, DATA, now=NOW), 1.0)))


    print(f"\n{args.repeat} repetitions x {args.number} evaluations, "
          f"{args.workers} isolated worker(s), spin {args.spin_us} us; "
          "evaluations/s median (min-max); "
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
    floor, flow, fhigh = _spread(_pipe_floor(args.repeat, args.number, args.spin_us))
    blocked, blow, bhigh = _spread(_pipe_floor(args.repeat, args.number, 0))
    print(f"\nFloor on this machine now: a 200-byte echo through a pipe to a forkserver "
          f"child, median round trip {floor:.0f} us ({flow:.0f}-{fhigh:.0f}) waiting as "
          f"the pool does (spin {args.spin_us} us), {blocked:.0f} us ({blow:.0f}-{bhigh:.0f}) "
          "with both ends blocking at once.")
    print("\nCPU of the isolated mode (us per evaluation, all timed calls; the caller's CPU "
          "includes its checks and encoding):")
    print("\n| expression | wall time per call | caller CPU | worker CPU |")
    print("|---|---:|---:|---:|")
    for name, (wall, caller, worker) in cpu.items():
        print(f"| {name} | {wall:.0f} | {caller:.0f} | {worker:.0f} |")
    print(f"\nAn idle worker over the 1 s after the last call: {idle_cpu_ms:.2f} ms of CPU.")
    print("\nAn asyncio loop ticking every 1 ms while another thread evaluates the simple "
          "expression back to back (1 s each):")
    print("\n| the thread | loop lag median | loop lag p99 | thread's median call "
          "| evals/s |")
    print("|---|---:|---:|---:|---:|")
    for label, (lag50, lag99, call, rate) in lag_rows:
        print(f"| {label} | {lag50:.0f} us | {lag99:.0f} us | {call:.0f} us | {rate:,.0f} |")
    print("\nWhere an isolated round trip goes (median us; one worker, the pool's wire format "
          "and waiting):")
    print("\n| expression | request -> worker starts | worker evaluates | reply -> caller "
          "| in-process call |")
    print("|---|---:|---:|---:|---:|")
    for name, source, _, medians in rows:
        wake, work, back = _segments(source, args.number, args.spin_us)
        print(f"| {name} | {wake:.0f} | {work:.0f} | {back:.0f} "
              f"| {statistics.median(medians['contract']):.0f} |")
    print("\nTargets: contract >= 0.75x plain; isolated median round trip < 250 us.\n")
    print("| expression | contract vs plain | >= 0.75x | isolated round trip (min-max) "
          "| < 250 us | of which isolation |")
    print("|---|---:|---|---:|---|---:|")
    print("\n".join(verdicts))

if __name__ == "__main__":
    main()
