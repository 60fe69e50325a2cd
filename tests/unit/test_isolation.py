"""The isolated expression evaluator (wfadapters.isolation): a pool of worker processes.

Hostile expressions whose work happens inside one native built-in, where the cooperative
timeout cannot interrupt them, are run here in isolated mode only: in-process they would
hold the test process for seconds and take gigabytes. Each asserts its code, that it ended
within its budget plus a generous margin (not a performance figure: a hang would fail),
that a killed worker's PID is gone and replaced, and that the next evaluation works.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import struct
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from wfadapters.isolation import IsolationOptions, ProcessPoolEvaluator
from wfadapters.isolation.worker import (
    readable_poller,
    recv_message,
    send_message,
    wait_readable,
)
from wfdomain.errors import ExpressionError
from wfdomain.expressions import (
    IN_PROCESS,
    ExpressionCode,
    ExpressionEvaluator,
    ExpressionLimits,
    compile_expression,
    evaluation_input,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
PATH = "steps[0].values.x"
DATA: dict[str, Any] = {"input": {"amount": 150, "items": [{"sku": "a", "qty": 2}]}}
WORKERS = 2
GRACE_MS = 300
MARGIN_S = 3.0  # scheduling slack on a shared machine; a hang still fails


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolEvaluator]:
    options = IsolationOptions(workers=WORKERS, memory_limit_mb=384, grace_ms=GRACE_MS)
    with ProcessPoolEvaluator(options) as started:
        yield started


def outcome(evaluator: ExpressionEvaluator, source: str, data: Any = None, **limits: Any) -> Any:
    """``("ok", value)`` or ``("error", error.to_dict())``."""
    try:
        value = evaluator.evaluate(
            source, DATA if data is None else data, now=NOW, path=PATH,
            limits=ExpressionLimits(**limits) if limits else None,
        )
    except ExpressionError as error:
        return ("error", error.to_dict())
    return ("ok", value)


def gone(pid: int) -> bool:
    """Whether no process (not even a zombie) has this PID."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" in status.read_text()


def state(pid: int) -> str:
    """The process's scheduler state: R running (or spinning), S asleep on its pipe."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def cpu_ns(pid: int) -> int:
    """Nanoseconds of CPU the process has used."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.01)


def assert_pool_works(pool: ProcessPoolEvaluator) -> None:
    assert len(pool.pids) == WORKERS
    for _ in range(WORKERS * 2):
        assert pool.evaluate("input.amount + 1", DATA, now=NOW) == 151


class TestSameResultsAsInProcess:
    @pytest.mark.parametrize(
        ("source", "limits"),
        [
            ("input.amount > 100", {}),
            ("input.items[qty > 1].sku", {}),
            ('{"n": input.amount, "list": [1..3], "none": input.missing}', {}),
            ("input.missing", {}),
            ("$nowIso()", {}),
            ("[null, 1.5, -0.0, 1e300, true]", {}),
            ('"\\ud800 lone surrogate, ünïcödé"', {}),
            ("$map([1, 2], function($v){ $v + 1 })", {}),
            ('$match("a1b22", /[0-9]+/).match', {}),
            ("input.amount / 0", {}),
            ('$error("boom")', {}),
            ("function($x){ $x }", {}),
            ("[1..200000]", {}),
            ("[1..6]", {"max_output_bytes": 11}),
            ("($f := function($x){ 1 + $f($x + 1) }; $f(1))", {}),
            ("($f := function($x){ $f($x) }; $f(1))", {"timeout_ms": 100}),
            ("1 +", {}),
            ("$now()", {}),
            ("$__evaluate_entry", {}),
            ('$match("aa", /(a)\\1/)', {}),
            ("$nowIso(1)", {}),
            ('$toMillis("10:00", "[H]:[m]")', {}),
        ],
    )
    def test_outcomes_are_identical(
        self, pool: ProcessPoolEvaluator, source: str, limits: dict[str, int]
    ) -> None:
        assert outcome(pool, source, **limits) == outcome(IN_PROCESS, source, **limits)

    @pytest.mark.parametrize(
        "data",
        [
            {"input": float("nan")},
            {"input": {1: "x"}},
            {"input": object()},
            MappingProxyType({"input": MappingProxyType({"xs": (1, 2)})}),
        ],
        ids=["nan", "int-key", "object", "mapping-proxy"],
    )
    def test_input_checks_are_identical(self, pool: ProcessPoolEvaluator, data: Any) -> None:
        assert outcome(pool, "input", data) == outcome(IN_PROCESS, "input", data)

    def test_naive_now_is_refused_the_same_way(self, pool: ProcessPoolEvaluator) -> None:
        errors = []
        for evaluator in (pool, IN_PROCESS):
            with pytest.raises(ExpressionError) as caught:
                evaluator.evaluate("1", {}, now=datetime(2026, 1, 1), path=PATH)
            errors.append(caught.value.to_dict())
        assert errors[0] == errors[1]
        assert errors[0]["code"] == ExpressionCode.INVALID

    def test_refusals_at_load_time_cost_no_round_trip(self, pool: ProcessPoolEvaluator) -> None:
        before = pool.pids
        for source in ['$pad("x", 1000000000)', '$eval("1")', "(" * 3000 + "1" + ")" * 3000]:
            with pytest.raises(ExpressionError) as caught:
                pool.evaluate(source, DATA, now=NOW, path=PATH)
            assert caught.value.code in {
                ExpressionCode.FUNCTION_NOT_ALLOWED,
                ExpressionCode.TOO_LONG,
                ExpressionCode.DEPTH_EXCEEDED,
            }
            assert caught.value.path == PATH
        assert pool.pids == before

    def test_concurrent_callers_get_their_own_results(self, pool: ProcessPoolEvaluator) -> None:
        def run(n: int) -> set[Any]:
            data = {"input": {"n": n}}
            return {pool.evaluate("input.n * 2", data, now=NOW) for _ in range(30)}

        with ThreadPoolExecutor(max_workers=6) as threads:
            results = list(threads.map(run, range(12)))
        assert results == [{n * 2} for n in range(12)]


BIG = {"max_range": 10_000_000, "max_output_bytes": 10**9}


class TestHostileExpressionsIsolated:
    @pytest.mark.parametrize(
        ("source", "limits", "code", "killed"),
        [
            # Native work inside one built-in: only the hard deadline ends it.
            ("$sum([1..10000000])", {**BIG, "timeout_ms": 300}, ExpressionCode.TIMEOUT, True),
            ("$string([1..10000000])", {**BIG, "timeout_ms": 300}, ExpressionCode.TIMEOUT, True),
            ("[1..10000000]", {**BIG, "timeout_ms": 300}, ExpressionCode.TIMEOUT, True),
            # String doubling: one concatenation outgrows the worker's address space.
            (
                '$reduce([1..40], function($a, $v){ $a & $a }, "x")',
                {**BIG, "timeout_ms": 10_000},
                ExpressionCode.MEMORY_LIMIT,
                True,
            ),
            # Work made of AST steps: the cooperative guardrails end it inside the worker.
            ("($f := function($x){ $f($x) }; $f(1))", {"timeout_ms": 300}, ExpressionCode.TIMEOUT,
             False),
            (
                "($fib := function($n){ $n < 2 ? $n : $fib($n - 1) + $fib($n - 2) }; $fib(35))",
                {"timeout_ms": 300},
                ExpressionCode.TIMEOUT,
                False,
            ),
            # Many small steps, no big allocation: the cooperative timeout ends it.
            ("$sum([1..20000].([1..20000] ~> $count()))", {"timeout_ms": 300},
             ExpressionCode.TIMEOUT, False),
            ("($f := function($x){ 1 + $f($x + 1) }; $f(1))", {}, ExpressionCode.DEPTH_EXCEEDED,
             False),
            ("[1..100000000]", {}, ExpressionCode.RANGE_TOO_LARGE, False),
            ("[[1..100000], [1..100000]]", {}, ExpressionCode.OUTPUT_TOO_LARGE, False),
        ],
        ids=["sum-range", "string-range", "range-output", "string-doubling", "tail-recursion",
             "exponential", "nested-ranges", "deep-recursion", "range-bomb", "huge-output"],
    )
    def test_fails_with_its_code_within_budget_and_the_pool_recovers(
        self,
        pool: ProcessPoolEvaluator,
        source: str,
        limits: dict[str, int],
        code: str,
        killed: bool,
    ) -> None:
        budget_s = (limits.get("timeout_ms", 1000) + GRACE_MS) / 1000
        before = pool.pids
        started = time.monotonic()
        with pytest.raises(ExpressionError) as caught:
            pool.evaluate(source, {}, now=NOW, path=PATH, limits=ExpressionLimits(**limits))
        elapsed = time.monotonic() - started
        assert caught.value.code == code
        assert caught.value.path == PATH
        assert elapsed < budget_s + MARGIN_S
        if killed:
            lost = before - pool.pids
            assert len(lost) == 1
            (pid,) = lost
            assert caught.value.code != ExpressionCode.TIMEOUT or (
                caught.value.details["killed_pid"] == pid
            )
            assert gone(pid)
        else:
            assert pool.pids == before
        assert_pool_works(pool)

    def test_catastrophic_regex_on_large_input_is_linear(self, pool: ProcessPoolEvaluator) -> None:
        data = {"input": {"s": "a" * 100_000 + "!"}}
        assert pool.evaluate("$match(input.s, /(a+)+$/)", data, now=NOW) is None
        assert pool.evaluate("$contains(input.s, /(a*)*b/)", data, now=NOW) is False

    def test_deep_input_is_refused_before_sending(self, pool: ProcessPoolEvaluator) -> None:
        deep: Any = 1
        for _ in range(20_000):
            deep = {"a": deep}
        assert outcome(pool, "input", {"input": deep}) == outcome(
            IN_PROCESS, "input", {"input": deep}
        )
        assert outcome(pool, "input", {"input": deep})[1]["code"] == (
            ExpressionCode.DEPTH_EXCEEDED
        )

    def test_input_too_deep_to_send_is_a_stable_error(self, pool: ProcessPoolEvaluator) -> None:
        # Only reachable with the recursion limit and max_input_depth raised far beyond
        # their defaults: the wire format nests at most about 2,000 levels.
        deep: Any = 1
        for _ in range(2_500):
            deep = {"a": deep}
        previous = sys.getrecursionlimit()
        sys.setrecursionlimit(10_000)
        try:
            with pytest.raises(ExpressionError) as caught:
                pool.evaluate("1", {"input": deep}, now=NOW, path=PATH,
                              limits=ExpressionLimits(max_input_depth=5_000))
        finally:
            sys.setrecursionlimit(previous)
        assert caught.value.code == ExpressionCode.DEPTH_EXCEEDED
        assert caught.value.path == PATH
        assert_pool_works(pool)


class TestPoolLifecycle:
    def test_a_worker_killed_while_idle_is_replaced_on_use(self) -> None:
        with ProcessPoolEvaluator(IsolationOptions(workers=1)) as pool:
            (pid,) = pool.pids
            os.kill(pid, 9)
            wait_until(lambda: gone(pid))
            assert pool.evaluate("1 + 1", {}, now=NOW) == 2
            assert pid not in pool.pids
            assert len(pool.pids) == 1

    def test_a_worker_dying_mid_evaluation_is_a_stable_error(self) -> None:
        with ProcessPoolEvaluator(IsolationOptions(workers=1)) as pool:
            (pid,) = pool.pids
            started_with = cpu_ns(pid)
            errors: list[ExpressionError] = []

            def evaluate() -> None:
                try:
                    pool.evaluate(
                        "($f := function($x){ $f($x) }; $f(1))", {}, now=NOW, path=PATH,
                        limits=ExpressionLimits(timeout_ms=20_000),
                    )
                except ExpressionError as error:
                    errors.append(error)

            caller = threading.Thread(target=evaluate)
            caller.start()
            # More CPU than its bounded spin for a request could take: it is evaluating.
            wait_until(lambda: cpu_ns(pid) - started_with > 100_000_000)
            os.kill(pid, 9)  # as the kernel's OOM killer would
            caller.join(10)
            assert not caller.is_alive()
            assert [e.code for e in errors] == [ExpressionCode.ISOLATION_FAILED]
            assert errors[0].details["exitcode"] == -9
            assert errors[0].path == PATH
            assert pool.evaluate("1 + 1", {}, now=NOW) == 2
            assert pid not in pool.pids

    def test_close_stops_every_worker_and_refuses_further_work(self) -> None:
        pool = ProcessPoolEvaluator(IsolationOptions(workers=2))
        with pytest.raises(ExpressionError) as caught:
            pool.evaluate("1", {}, now=NOW)
        assert caught.value.code == ExpressionCode.ISOLATION_FAILED
        pool.start()
        pids = pool.pids
        assert len(pids) == 2
        pool.close()
        assert pool.pids == frozenset()
        assert all(gone(pid) for pid in pids)
        with pytest.raises(ExpressionError) as caught:
            pool.evaluate("1", {}, now=NOW)
        assert caught.value.code == ExpressionCode.ISOLATION_FAILED

    def test_spawn_start_method_gives_the_same_results(self) -> None:
        with ProcessPoolEvaluator(IsolationOptions(workers=1, start_method="spawn")) as pool:
            assert outcome(pool, "input.items[0]") == outcome(IN_PROCESS, "input.items[0]")

    def test_without_spinning_results_and_deadlines_are_the_same(self) -> None:
        options = IsolationOptions(workers=1, spin_us=0, grace_ms=GRACE_MS)
        with ProcessPoolEvaluator(options) as pool:
            assert outcome(pool, "input.items[0]") == outcome(IN_PROCESS, "input.items[0]")
            (pid,) = pool.pids
            with pytest.raises(ExpressionError) as caught:
                pool.evaluate("$sum([1..10000000])", {}, now=NOW,
                              limits=ExpressionLimits(**BIG, timeout_ms=300))
            assert caught.value.code == ExpressionCode.TIMEOUT
            assert caught.value.details["killed_pid"] == pid
            assert pool.evaluate("1 + 1", {}, now=NOW) == 2

    def test_an_idle_worker_stops_spinning_and_costs_no_cpu(self) -> None:
        with ProcessPoolEvaluator(IsolationOptions(workers=1, spin_us=5000)) as pool:
            (pid,) = pool.pids
            assert pool.evaluate("1 + 1", {}, now=NOW) == 2
            # After its bounded spin the worker blocks on its pipe (S), not on the CPU (R).
            wait_until(lambda: state(pid) == "S")
            before = cpu_ns(pid)
            time.sleep(0.3)  # the window measured, not a synchronisation
            # A worker that kept spinning would use most of the window (300 ms).
            assert cpu_ns(pid) - before < 20_000_000

    @pytest.mark.parametrize(
        "options",
        [
            {"workers": 0},
            {"memory_limit_mb": 10},
            {"grace_ms": -1},
            {"start_method": "fork"},
            {"spin_us": -1},
            {"spin_us": 10_001},
        ],
    )
    def test_options_are_checked(self, options: dict[str, Any]) -> None:
        with pytest.raises(ExpressionError) as caught:
            IsolationOptions(**options)
        assert caught.value.code == ExpressionCode.INVALID


class TestWaiting:
    def test_wait_readable_reports_input_and_eof_and_ends_after_its_spin(self) -> None:
        parent, child = multiprocessing.Pipe()
        poller = readable_poller(parent)
        assert not wait_readable(poller, 0.002)  # nothing came: it gives up after the spin
        assert not wait_readable(poller, 0.0)
        child.send_bytes(b"x")
        assert wait_readable(poller, 0.002)
        assert parent.recv_bytes() == b"x"
        child.close()
        assert wait_readable(poller, 0.002)  # EOF: the reader's recv reports it
        with pytest.raises(EOFError):
            parent.recv_bytes()
        parent.close()


class TestFraming:
    """The pool's reads and writes frame messages exactly as multiprocessing's Connection."""

    def test_messages_cross_with_connection_framing_both_ways(self) -> None:
        left, right = multiprocessing.Pipe()
        big = os.urandom(300_000)  # more than a pipe holds: the writer waits for the reader
        with ThreadPoolExecutor(max_workers=1) as thread:
            for payload in (b"", b"x", big):
                sent = thread.submit(send_message, left.fileno(), payload)
                assert right.recv_bytes() == payload
                sent.result()
                sent = thread.submit(right.send_bytes, payload)
                assert recv_message(left.fileno()) == payload
                sent.result()
        left.close()
        right.close()

    def test_long_header_eof_and_extra_bytes(self) -> None:
        read, write = os.pipe()
        os.write(write, struct.pack("!iQ", -1, 5) + b"hello")  # Connection's > 2 GiB form
        assert recv_message(read) == b"hello"
        os.write(write, struct.pack("!i", 5) + b"hello" + struct.pack("!i", 0))
        with pytest.raises(OSError, match="more than one message"):
            recv_message(read)
        os.write(write, struct.pack("!i", 10) + b"half")
        os.close(write)
        with pytest.raises(EOFError):  # the writer died mid-message
            recv_message(read)
        with pytest.raises(EOFError):
            recv_message(read)
        os.close(read)


class TestCheckedEvaluation:
    """The worker's entry point: evaluate minus the input walk its caller has made."""

    @pytest.mark.parametrize(
        ("source", "data"),
        [
            ("input.items[qty > 1].sku", DATA),
            ("input", MappingProxyType({"input": MappingProxyType({"xs": (1, 2)})})),
            ('"\\ud800" & input.s', {"input": {"s": "\udc00 ünï"}}),
            ("input.n / 0", {"input": {"n": -0.0}}),
            ("[1..6]", {}),
            ("[1..100]", {}),
            ("$nowIso()", {}),
            ("($f := function($x){ 1 + $f($x + 1) }; $f(1))", {}),
        ],
    )
    def test_gives_what_evaluate_gives_on_the_document_sent(self, source: str, data: Any) -> None:
        limits = ExpressionLimits(max_output_bytes=40)
        compiled = compile_expression(source, path=PATH)
        document = evaluation_input(data, NOW, path=PATH, limits=limits)
        sent = json.loads(json.dumps(document))

        def run(call: Any) -> Any:
            try:
                return ("ok", call())
            except ExpressionError as error:
                return ("error", error.to_dict())

        assert run(lambda: compiled.evaluate_checked(sent, now=NOW, limits=limits)) == run(
            lambda: compiled.evaluate(data, now=NOW, limits=limits)
        )
