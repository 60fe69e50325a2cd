"""The isolated expression evaluator (wfadapters.isolation): a pool of worker processes.

Hostile expressions whose work happens inside one native built-in, where the cooperative
timeout cannot interrupt them, are run here in isolated mode only: in-process they would
hold the test process for seconds and take gigabytes. Each asserts its code, that it ended
within its budget plus a generous margin (not a performance figure: a hang would fail),
that a killed worker's PID is gone and replaced, and that the next evaluation works.
"""

from __future__ import annotations

import os
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
from wfdomain.errors import ExpressionError
from wfdomain.expressions import IN_PROCESS, ExpressionCode, ExpressionEvaluator, ExpressionLimits

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
            # Running (R), not sleeping on its pipe (S): the request has arrived.
            wait_until(lambda: Path(f"/proc/{pid}/stat").read_text().split()[2] == "R")
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

    @pytest.mark.parametrize(
        "options",
        [
            {"workers": 0},
            {"memory_limit_mb": 10},
            {"grace_ms": -1},
            {"start_method": "fork"},
        ],
    )
    def test_options_are_checked(self, options: dict[str, Any]) -> None:
        with pytest.raises(ExpressionError) as caught:
            IsolationOptions(**options)
        assert caught.value.code == ExpressionCode.INVALID
