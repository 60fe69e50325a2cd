"""The JSONata expression contract (wfdomain.expressions).

Also regression tests for the jsonata-python 0.7.1 traps the contract works around
(/work/shared/notes/jsonata-python.md B.1.4): if an upgrade changes them, these fail.
"""

from __future__ import annotations

import ast
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonata import JException, Jsonata, Timebox

from wfdomain import expressions
from wfdomain.decide import DecisionContext
from wfdomain.errors import ExpressionError
from wfdomain.expressions import (
    ALLOWED_FUNCTIONS,
    CONTRACT_FUNCTIONS,
    IN_PROCESS,
    CompiledExpression,
    ExpressionCode,
    ExpressionLimits,
    check_expression,
    compile_expression,
    evaluation_input,
    normalize,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
PATH = "steps.approve.when"
DATA: dict[str, Any] = {
    "input": {"amount": 150, "customer": {"tier": "gold"}, "items": [{"sku": "a", "qty": 2}]},
    "state": {"approved": False},
    "steps": {"fetch": {"output": {"total": 3}}},
    "item": None,
    "event": None,
}
DENIED = ("eval", "now", "millis", "random", "shuffle", "pad")


def evaluate(source: str, data: Any = None, **limits: int) -> Any:
    compiled = compile_expression(source, path=PATH)
    return compiled.evaluate(
        DATA if data is None else data, now=NOW, limits=ExpressionLimits(**limits)
    )


def refused(source: str, **limits: int) -> ExpressionError:
    """The error compiling and evaluating ``source`` raises; it must carry PATH."""
    with pytest.raises(ExpressionError) as caught:
        evaluate(source, **limits)
    assert caught.value.path == PATH
    return caught.value


class TestEvaluation:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("input.amount > 100", True),
            ('input.amount > 100 and input.customer.tier = "gold"', True),
            ("input.items[qty > 1].sku", "a"),
            ("$sum(input.items.qty) * 2", 4),
            ("steps.fetch.output.total", 3),
            ("input.missing", None),
            ("[1, 2, 3][$ > 1]", [2, 3]),
            ('{"n": input.amount, "list": [1..3]}', {"n": 150, "list": [1, 2, 3]}),
            ("($x := 1; $x + 1)", 2),
            ("($twice := function($v){ $v * 2 }; $twice(input.amount))", 300),
            ("$map([1, 2], function($v){ $v + 1 })", [2, 3]),
            ('($string := function($v){ "mine" }; $string(1))', "mine"),
            ('$substring(?, 0, 2)("hello")', "he"),
        ],
    )
    def test_evaluates(self, source: str, expected: Any) -> None:
        assert evaluate(source) == expected

    def test_results_are_plain_json_types(self) -> None:
        result = evaluate('{"a": [1..3], "b": input.items, "c": [input.amount]}')
        assert type(result["a"]) is list
        assert type(result["b"]) is list
        assert type(result["c"]) is list
        assert json.loads(json.dumps(result)) == result

    def test_input_is_copied_not_mutated(self) -> None:
        data = {"input": {"xs": [3, 1, 2]}}
        result = evaluate("input", data)
        assert result == {"xs": [3, 1, 2]}
        assert result is not data["input"]
        result["xs"].append(4)
        assert data == {"input": {"xs": [3, 1, 2]}}

    def test_mappings_and_tuples_are_accepted_as_input(self) -> None:
        data = MappingProxyType({"input": MappingProxyType({"xs": (1, 2)})})
        assert evaluate("$sum(input.xs)", data) == 3

    @pytest.mark.parametrize(
        "data",
        [{"input": float("nan")}, {"input": {1: "x"}}, {"input": object()}],
        ids=["nan", "int-key", "object"],
    )
    def test_non_json_input_is_invalid(self, data: Any) -> None:
        with pytest.raises(ExpressionError) as caught:
            evaluate("input", data)
        assert caught.value.code == ExpressionCode.INVALID
        assert caught.value.path == PATH

    @pytest.mark.parametrize(
        ("source", "what"),
        [
            ("function($x){ $x }", "a function"),
            ('{"f": $string}', "a function"),
            ("/a/", "a regex"),
        ],
    )
    def test_non_json_result_is_invalid(self, source: str, what: str) -> None:
        error = refused(source)
        assert error.code == ExpressionCode.INVALID
        assert what in error.message

    @pytest.mark.parametrize("source", ["input.amount / 0", "$power(10, 400)"])
    def test_arithmetic_failure_is_an_evaluation_error(self, source: str) -> None:
        assert refused(source).code == ExpressionCode.EVALUATION

    def test_jsonata_error_keeps_its_code_in_details(self) -> None:
        error = refused('$error("boom")')
        assert error.code == ExpressionCode.EVALUATION
        assert error.details["jsonata_code"] == "D3137"
        assert "boom" in error.message

    def test_shared_compiled_expression_is_thread_safe(self) -> None:
        compiled = compile_expression("$sum($map([1..input.n], function($v){ $v * 2 }))")
        expected = {n: n * (n + 1) for n in range(1, 9)}

        def run(n: int) -> set[int]:
            return {compiled.evaluate({"input": {"n": n}}, now=NOW) for _ in range(100)}

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = dict(zip(expected, pool.map(run, expected), strict=True))
        assert results == {n: {total} for n, total in expected.items()}

    def test_check_expression_accepts_and_refuses(self) -> None:
        check_expression("input.amount > 100", path=PATH)
        with pytest.raises(ExpressionError) as caught:
            check_expression("$now()", path=PATH)
        assert caught.value.code == ExpressionCode.FUNCTION_NOT_ALLOWED
        assert caught.value.path == PATH


class TestNormalize:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("a == 1", "a = 1"),
            ("a==1", "a=1"),
            ('name == "x == y"', 'name = "x == y"'),
            ("name == 'x == y'", "name = 'x == y'"),
            ("a == 1 /* a == b */", "a = 1 /* a == b */"),
            ("a != 1 and b <= 2 and c >= 3", "a != 1 and b <= 2 and c >= 3"),
            ("($x := 1; $x == 1)", "($x := 1; $x = 1)"),
            ("$contains(a, /x==y/) == true", "$contains(a, /x==y/) = true"),
            ("a / 2 == 1", "a / 2 = 1"),
            ("a = 1", "a = 1"),
            ('"unterminated ==', '"unterminated =='),
        ],
    )
    def test_rewrites_only_the_operator(self, source: str, expected: str) -> None:
        assert normalize(source) == expected

    def test_double_equals_evaluates_as_equality(self) -> None:
        compiled = compile_expression('input.customer.tier == "gold"')
        assert compiled.source == 'input.customer.tier = "gold"'
        assert compiled.evaluate(DATA, now=NOW) is True


class TestFunctionAllowList:
    def test_allow_list_excludes_the_denied_built_ins(self) -> None:
        assert not ALLOWED_FUNCTIONS & set(DENIED)
        assert sorted(CONTRACT_FUNCTIONS) == ["nowIso"]

    def test_allow_list_names_real_built_ins(self) -> None:
        built_ins = set(Jsonata.static_frame.bindings)
        assert ALLOWED_FUNCTIONS.issubset(built_ins)
        assert built_ins - ALLOWED_FUNCTIONS == set(DENIED)

    @pytest.mark.parametrize("name", DENIED)
    @pytest.mark.parametrize(
        "form",
        [
            "${name}()",  # direct call
            "($f := ${name}; 1)",  # alias, never called
            '($f := ${name}; $f("x"))',  # alias, called
            '"x" ~> ${name}',  # chained
            '"x" ~> ${name}()',  # chained call
            "${name}(?, 1)",  # partial application
            "$map([1], ${name})",  # passed as a value
            "function($v){ ${name}($v) }(1)",  # inside a lambda
            '{"k": ${name}}',  # stored in an object
            "[1]@${name}",  # tuple focus binding
            "[1]#${name}",  # tuple index binding
            "function(${name}){ 1 }(2)",  # shadowed by a parameter: still refused
        ],
    )
    def test_denied_function_is_refused_at_compile_time(self, name: str, form: str) -> None:
        source = form.replace("{name}", name)
        with pytest.raises(ExpressionError) as caught:
            compile_expression(source, path=PATH)
        assert caught.value.code == ExpressionCode.FUNCTION_NOT_ALLOWED
        assert caught.value.path == PATH
        assert caught.value.details["functions"] == [name]

    @pytest.mark.parametrize(
        "source",
        [
            "$__evaluate_entry := 1",
            "($__evaluate_entry := $nope; $__evaluate_exit := $nope; "
            "$f := function($x){ $f($x) }; $f(1))",
            "$__anything",
            "[1]@$__evaluate_entry",
            "function($__x){ 1 }(1)",
        ],
    )
    def test_reserved_names_are_refused(self, source: str) -> None:
        with pytest.raises(ExpressionError) as caught:
            compile_expression(source, path=PATH)
        assert caught.value.code == ExpressionCode.RESERVED_NAME
        assert caught.value.path == PATH

    @pytest.mark.parametrize(
        "source", ['"$now()"', "/* $now() */ 1", "now", "`$now`", "$nowIso()", "$x.now"]
    )
    def test_denied_names_outside_variable_references_are_fine(self, source: str) -> None:
        check_expression(source)

    def test_denied_built_ins_are_unbound_at_run_time_as_a_backstop(self) -> None:
        # Bypass the compile-time check to reach the run-time layer.
        unchecked = expressions._BoundedJsonata("$now()", expressions._re2_engine)
        compiled = CompiledExpression("$now()", unchecked, path=PATH, limits=ExpressionLimits())
        with pytest.raises(ExpressionError) as caught:
            compiled.evaluate({}, now=NOW)
        assert caught.value.code == ExpressionCode.FUNCTION_NOT_ALLOWED
        assert caught.value.path == PATH

    def test_to_millis_reads_iso_timestamps_only(self) -> None:
        assert evaluate('$toMillis("2026-01-01T00:00:00Z")') == 1_767_225_600_000
        error = refused('$toMillis("10:00", "[H]:[m]")')  # would read the wall clock
        assert error.code == ExpressionCode.FUNCTION_NOT_ALLOWED


class TestNowIso:
    def test_returns_the_logical_time_in_utc_with_milliseconds(self) -> None:
        assert evaluate("$nowIso()") == "2026-01-02T03:04:05.678Z"

    def test_converts_other_offsets_to_utc(self) -> None:
        compiled = compile_expression("$nowIso()")
        plus_five = datetime(2026, 1, 2, 0, 0, tzinfo=timezone(timedelta(hours=5)))
        assert compiled.evaluate({}, now=plus_five) == "2026-01-01T19:00:00.000Z"

    def test_cached_expression_follows_each_evaluations_now(self) -> None:
        first = compile_expression("$nowIso()")
        second = compile_expression("$nowIso()")
        later = NOW + timedelta(days=1)
        assert first.evaluate({}, now=NOW) == "2026-01-02T03:04:05.678Z"
        assert second.evaluate({}, now=later) == "2026-01-03T03:04:05.678Z"
        assert first.evaluate({}, now=NOW) == "2026-01-02T03:04:05.678Z"

    def test_naive_now_is_refused(self) -> None:
        with pytest.raises(ExpressionError) as caught:
            compile_expression("1", path=PATH).evaluate({}, now=datetime(2026, 1, 1))
        assert caught.value.code == ExpressionCode.INVALID
        assert caught.value.path == PATH

    def test_takes_no_arguments(self) -> None:
        assert refused("$nowIso(1)").code == ExpressionCode.EVALUATION


class TestGuardrails:
    def test_infinite_tail_recursion_times_out(self) -> None:
        error = refused("($f := function($x){ $f($x) }; $f(1))", timeout_ms=200)
        assert error.code == ExpressionCode.TIMEOUT
        assert error.details["limit"] == 200

    def test_non_tail_recursion_exceeds_depth(self) -> None:
        error = refused("($f := function($x){ 1 + $f($x + 1) }; $f(1))")
        assert error.code == ExpressionCode.DEPTH_EXCEEDED

    def test_time_box_starts_at_evaluation_not_at_compile(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clock = [1_000_000]
        monkeypatch.setattr(Timebox, "current_milli_time", staticmethod(lambda: clock[0]))
        compiled = compile_expression("input.amount + 1 /* compiled long ago */")
        clock[0] += 3_600_000  # an hour later: the constructor-clock bug would time out
        assert compiled.evaluate(DATA, now=NOW) == 151

    def test_time_box_still_fires_on_a_cached_expression(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        compiled = compile_expression("$sum([1..10].($ * 2))")
        clock = [0]

        def tick() -> int:
            clock[0] += 400
            return clock[0]

        monkeypatch.setattr(Timebox, "current_milli_time", staticmethod(tick))
        with pytest.raises(ExpressionError) as caught:
            compiled.evaluate({}, now=NOW, limits=ExpressionLimits(timeout_ms=1000))
        assert caught.value.code == ExpressionCode.TIMEOUT

    def test_failed_evaluations_do_not_leak_depth(self) -> None:
        compiled = compile_expression('input.fail ? $error("x") : input.value', path=PATH)
        limits = ExpressionLimits(max_depth=20)
        for _ in range(50):
            with pytest.raises(ExpressionError):
                compiled.evaluate({"input": {"fail": True}}, now=NOW, limits=limits)
        assert compiled.evaluate({"input": {"value": 7}}, now=NOW, limits=limits) == 7

    def test_large_range_is_refused(self) -> None:
        error = refused("[1..1000000]")
        assert error.code == ExpressionCode.RANGE_TOO_LARGE
        assert error.details["limit"] == 100_000

    def test_range_cap_applies_to_computed_bounds(self) -> None:
        assert refused("($n := 200000; [1..$n])").code == ExpressionCode.RANGE_TOO_LARGE

    def test_range_at_the_cap_is_allowed(self) -> None:
        assert evaluate("$count([1..10])", max_range=10) == 10
        assert refused("[1..11]", max_range=10).code == ExpressionCode.RANGE_TOO_LARGE

    def test_range_cap_holds_when_another_jsonata_was_constructed_last(self) -> None:
        compiled = compile_expression("[1..200000]", path=PATH)
        Jsonata("1")  # jsonata evaluates on the thread's last-constructed instance
        with pytest.raises(ExpressionError) as caught:
            compiled.evaluate({}, now=NOW)
        assert caught.value.code == ExpressionCode.RANGE_TOO_LARGE

    def test_plain_jsonata_in_the_same_thread_is_unaffected(self) -> None:
        other = Jsonata("$count([1..3])")
        compile_expression("[1..200000]")
        with pytest.raises(ExpressionError):
            compile_expression("[1..200000]").evaluate({}, now=NOW)
        assert other.evaluate(None) == 3

    def test_output_is_capped(self) -> None:
        assert evaluate("[1..5]", max_output_bytes=11) == [1, 2, 3, 4, 5]  # 11 bytes
        error = refused("[1..6]", max_output_bytes=11)
        assert error.code == ExpressionCode.OUTPUT_TOO_LARGE
        assert error.details == {"size": 13, "limit": 11}

    def test_source_length_is_capped(self) -> None:
        longest = '"' + "a" * 4094 + '"'
        assert evaluate(longest) == "a" * 4094
        with pytest.raises(ExpressionError) as caught:
            compile_expression(longest + " ", path=PATH)
        assert caught.value.code == ExpressionCode.TOO_LONG
        assert caught.value.path == PATH
        assert caught.value.details == {"length": 4097, "limit": 4096}

    def test_deeply_nested_source_is_refused(self) -> None:
        with pytest.raises(ExpressionError) as caught:
            compile_expression("(" * 3000 + "1" + ")" * 3000, path=PATH)
        assert caught.value.code in {ExpressionCode.TOO_LONG, ExpressionCode.DEPTH_EXCEEDED}
        nested = "(" * 2000 + "1" + ")" * 2000
        with pytest.raises(ExpressionError) as caught:
            compile_expression(nested, path=PATH).evaluate({}, now=NOW)
        assert caught.value.code == ExpressionCode.DEPTH_EXCEEDED
        assert caught.value.path == PATH

    @pytest.mark.parametrize("field", ["timeout_ms", "max_depth", "max_range"])
    @pytest.mark.parametrize("value", [0, -1, True])
    def test_limits_must_be_positive_integers(self, field: str, value: int) -> None:
        with pytest.raises(ExpressionError) as caught:
            ExpressionLimits(**{field: value})
        assert caught.value.code == ExpressionCode.INVALID


class TestSyntax:
    @pytest.mark.parametrize(
        "source", ["1 +", '"abc', "a ==== b", "/", "/*", "(1", "$x := ", "`a", "a = = b", ""]
    )
    def test_syntax_errors(self, source: str) -> None:
        with pytest.raises(ExpressionError) as caught:
            compile_expression(source, path=PATH)
        assert caught.value.code == ExpressionCode.SYNTAX
        assert caught.value.path == PATH

    def test_non_string_source_is_invalid(self) -> None:
        with pytest.raises(ExpressionError) as caught:
            compile_expression(42, path=PATH)  # type: ignore[arg-type]
        assert caught.value.code == ExpressionCode.INVALID


class TestRegex:
    def test_catastrophic_pattern_runs_in_linear_time(self) -> None:
        data = {"input": {"s": "a" * 5000 + "!"}}
        started = time.perf_counter()
        assert evaluate("$match(input.s, /(a+)+$/)", data) is None
        assert evaluate("$contains(input.s, /(a*)*b/)", data) is False
        assert time.perf_counter() - started < 2.0  # stdlib re: longer than the universe

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ('$match("ABC", /b/i).match', "B"),
            ('$replace("abc", /b/, "[$0]")', "a[b]c"),
            ('$split("a,b;c", /[,;]/)', ["a", "b", "c"]),
            ('$contains("abc", /^a/)', True),
            ('$match("a1b22", /[0-9]+/).match', ["1", "22"]),
        ],
    )
    def test_regex_functions_work_with_re2(self, source: str, expected: Any) -> None:
        assert evaluate(source) == expected

    @pytest.mark.parametrize("source", [r'$match("aa", /(a)\1/)', '$match("ab", /a(?=b)/)'])
    def test_patterns_outside_re2_are_refused(self, source: str) -> None:
        with pytest.raises(ExpressionError) as caught:
            compile_expression(source, path=PATH)
        assert caught.value.code == ExpressionCode.REGEX_NOT_ALLOWED
        assert caught.value.path == PATH


# ------------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "amount", "items", "k"]), children, max_size=4)
    ),
    max_leaves=12,
)
documents = st.fixed_dictionaries(
    {
        "input": json_values,
        "state": json_values,
        "steps": json_values,
        "item": json_values,
        "event": json_values,
    }
)
PROPERTY_EXPRESSIONS = [
    compile_expression(source)
    for source in [
        "input.amount > 100",
        "$sum(input.*)",
        "$count(steps.*)",
        "$string(input) & $string(item)",
        "input.items[amount > 1].k",
        "$sort(input.*)",
        "$keys(state)",
        "$map(input.*, function($v){ $v * 2 })",
        '$nowIso() & ":" & $type(event)',
        "input.a.b = item",
        "[input, state, steps]",
        '$join(input.*, ",")',
        "$match(item, /a+/)",
        "$number(item) + 1",
        '$lookup(state, "k")',
        "input.amount / state.amount",
        "$reduce(input.*, function($a, $v){ $a + $v }, 0)",
        "$distinct(**)",
        "item ? [1..$count(input.*)] : event",
    ]
]


CONTRACT_CODES = {value for name, value in vars(ExpressionCode).items() if name.isupper()}


def outcome(compiled: CompiledExpression | str, data: Any) -> str:
    """``"ok"`` (the result is plain JSON) or the code of the ExpressionError raised.

    Any other exception propagates and fails the property.
    """
    limits = ExpressionLimits(timeout_ms=100)
    try:
        if isinstance(compiled, str):
            compiled = compile_expression(compiled, limits=limits)
        result = compiled.evaluate(data, now=NOW, limits=limits)
    except ExpressionError as error:
        return error.code
    assert json.loads(json.dumps(result)) == result
    return "ok"


@settings(max_examples=150, deadline=None)
@given(data=documents, compiled=st.sampled_from(PROPERTY_EXPRESSIONS))
def test_evaluate_raises_only_expression_errors(data: Any, compiled: CompiledExpression) -> None:
    assert outcome(compiled, data) in {"ok", *CONTRACT_CODES}


@settings(max_examples=150, deadline=None)
@given(
    source=st.lists(
        st.sampled_from(
            [
                *"$()[]{}.,;:=!<>~?*/%&|^@#\"'` -+019ax",
                *("$now", "$map", "function", "$x", ":=", "..", "/*", "*/", "==", "and", "/a+/"),
            ]
        ),
        max_size=20,
    ).map("".join)
)
def test_compile_raises_only_expression_errors(source: str) -> None:
    assert outcome(source, DATA) in {"ok", *CONTRACT_CODES}


# ----------------------------------------------------------------------- upstream traps
# jsonata-python 0.7.1 behaviour the contract works around (notes B.1.4, traps 1-5). Each
# test pins the raw library behaviour: when an upgrade changes one, it fails here, and the
# workaround can be reviewed (kept, simplified or dropped).


class FakeClock:
    """A controllable ``Timebox.current_milli_time``."""

    def __init__(self, start: int = 1_000_000) -> None:
        self.now = start
        self.step = 0  # added at every reading

    def __call__(self) -> int:
        self.now += self.step
        return self.now


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(Timebox, "current_milli_time", staticmethod(clock))
    return clock


class TestUpstreamTraps:
    def test_1_constructor_timeout_clock_starts_at_construction(
        self, fake_clock: FakeClock
    ) -> None:
        compiled = Jsonata("a + 1", timeout=500, stack=100)
        fake_clock.now += 700  # the expression sits in a cache for 0.7 s
        with pytest.raises(JException) as caught:
            compiled.evaluate({"a": 1})
        assert caught.value.error == "D1012"

    def test_2_constructor_depth_counter_leaks_on_exceptions(self) -> None:
        compiled = Jsonata('fail ? $error("x") : value', timeout=None, stack=60)
        for _ in range(40):
            with pytest.raises(JException):
                compiled.evaluate({"fail": True})
        with pytest.raises(JException) as caught:
            compiled.evaluate({"fail": False, "value": 7})
        assert caught.value.error == "D1011"

    def test_3_an_expression_can_switch_the_guardrails_off(self, fake_clock: FakeClock) -> None:
        fake_clock.step = 50  # ms per guardrail check: the 11th check is over 500 ms
        guarded = "$sum([1..20].($ * 2))"
        with pytest.raises(JException) as caught:
            Jsonata(guarded, timeout=500, stack=100).evaluate(None)
        assert caught.value.error == "D1012"
        unguarded = f"($__evaluate_entry := $nope; $__evaluate_exit := $nope; {guarded})"
        assert Jsonata(unguarded, timeout=500, stack=100).evaluate(None) == 420
        with pytest.raises(TypeError):  # bound to null instead: a raw TypeError (trap 5)
            Jsonata(f"($__evaluate_entry := null; {guarded})", timeout=500).evaluate(None)

    def test_4_now_and_millis_read_the_last_constructed_instance(
        self, fake_clock: FakeClock
    ) -> None:
        first = Jsonata("$millis()")
        fake_clock.now = 2_000_000
        last = Jsonata("1")
        fake_clock.now = 9_000_000
        assert first.evaluate(None) == 2_000_000  # the other instance's stamp, 7 s stale
        assert last.timestamp == 2_000_000

    @pytest.mark.parametrize(
        ("make", "error"),
        [
            (lambda: Jsonata("(" * 5000 + "1" + ")" * 5000), RecursionError),
            (lambda: Jsonata("input").evaluate(_nested(20_000)), RecursionError),
            (lambda: Jsonata("input").evaluate({"input": {1, 2}}), ValueError),
            (lambda: Jsonata("$string(1 / 0)").evaluate(None), ZeroDivisionError),
        ],
        ids=["deep-source", "deep-input", "non-json-input", "division"],
    )
    def test_5_control_failures_escape_as_raw_python_exceptions(
        self, make: Any, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            make()

    def test_the_contract_maps_every_raw_failure(self) -> None:
        with pytest.raises(ExpressionError) as caught:
            compile_expression("(" * 5000 + "1" + ")" * 5000, limits=ExpressionLimits(
                max_source_length=20_000))
        assert caught.value.code == ExpressionCode.DEPTH_EXCEEDED
        with pytest.raises(ExpressionError) as caught:
            compile_expression("input").evaluate({"input": _nested(20_000)}, now=NOW)
        assert caught.value.code == ExpressionCode.DEPTH_EXCEEDED

    def test_range_operator_cap_is_ten_million(self) -> None:
        with pytest.raises(JException) as caught:
            Jsonata("[1..10000001]").evaluate(None)
        assert caught.value.error == "D2014"

    def test_import_raises_the_recursion_limit(self) -> None:
        assert sys.getrecursionlimit() >= 10_000


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


class TestEvaluators:
    def test_in_process_evaluator_is_compile_then_evaluate(self) -> None:
        limits = ExpressionLimits(max_range=10)
        assert not IN_PROCESS.blocking
        assert IN_PROCESS.evaluate("$count([1..10])", {}, now=NOW, limits=limits) == 10
        with pytest.raises(ExpressionError) as caught:
            IN_PROCESS.evaluate("[1..11]", {}, now=NOW, path=PATH, limits=limits)
        assert caught.value.code == ExpressionCode.RANGE_TOO_LARGE
        assert caught.value.path == PATH

    def test_decisions_evaluate_in_process_by_default(self) -> None:
        assert DecisionContext(now=NOW).evaluator is IN_PROCESS

    def test_evaluation_input_checks_what_evaluate_checks(self) -> None:
        data = {"input": [1, {"a": None}]}
        assert evaluation_input(data, NOW) is data  # already plain: not copied
        assert evaluation_input({"xs": (1, 2)}, NOW) == {"xs": [1, 2]}
        with pytest.raises(ExpressionError) as caught:
            evaluation_input({"x": float("inf")}, NOW, path=PATH)
        assert (caught.value.code, caught.value.path) == (ExpressionCode.INVALID, PATH)
        with pytest.raises(ExpressionError) as caught:
            evaluation_input({}, datetime(2026, 1, 1), path=PATH)
        assert caught.value.code == ExpressionCode.INVALID

    def test_an_input_over_the_size_cap_is_refused_before_evaluation(self) -> None:
        limits = ExpressionLimits(max_input_bytes=1_000)
        assert IN_PROCESS.evaluate("1", {"s": "x" * 900}, now=NOW, limits=limits) == 1
        for data in ({"s": "x" * 1_000}, {"xs": list(range(300))}, {"k" * 600: 1, "j" * 600: 2}):
            with pytest.raises(ExpressionError) as caught:
                IN_PROCESS.evaluate("1", data, now=NOW, path=PATH, limits=limits)
            assert caught.value.code == ExpressionCode.INPUT_TOO_LARGE
            assert caught.value.path == PATH
            assert caught.value.details["max_bytes"] == 1_000

    def test_an_input_over_the_depth_cap_is_refused_before_evaluation(self) -> None:
        limits = ExpressionLimits(max_input_depth=5)

        def nested(depth: int) -> Any:
            return 1 if depth == 0 else ({"a": nested(depth - 1)} if depth % 2 else
                                         [nested(depth - 1)])

        assert IN_PROCESS.evaluate("1", nested(5), now=NOW, limits=limits) == 1
        for data in (nested(6), {"t": (nested(5),)}):  # plain or copied, the same cap
            with pytest.raises(ExpressionError) as caught:
                evaluation_input(data, NOW, path=PATH, limits=limits)
            assert caught.value.code == ExpressionCode.DEPTH_EXCEEDED
        deep: Any = 1
        for _ in range(100_000):  # far past Python's recursion limit: still a clean code
            deep = [deep]
        with pytest.raises(ExpressionError) as caught:
            IN_PROCESS.evaluate("1", deep, now=NOW)
        assert caught.value.code == ExpressionCode.DEPTH_EXCEEDED

    @pytest.mark.parametrize(
        "source",
        ["input", "input.xs", "[input.xs, input.xs]", "$sort(input.xs)", "$reverse(input.xs)",
         '$merge([input.obj, {"b": 2}])', "$append(input.xs, 9)", "input.obj ~> | $ | {'c': 3} |",
         "$spread(input.obj)", "[null, input.obj]"],
    )
    def test_evaluation_never_mutates_the_input_or_aliases_it(self, source: str) -> None:
        data = {"input": {"xs": [3, 1, 2], "obj": {"a": [1]}}}
        before = json.loads(json.dumps(data))
        result = compile_expression(source).evaluate(data, now=NOW)
        assert data == before
        if isinstance(result, dict | list):
            result.clear()  # the result is the caller's to change
        assert data == before


def test_only_the_contract_imports_jsonata() -> None:
    """One contract for every engine: no other module of the library evaluates JSONata."""
    root = Path(expressions.__file__).parent.parent
    contract = {"wfdomain/expressions.py", "wfdomain/expression_values.py",
                "wfdomain/expression_syntax.py"}
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            if any(m == "jsonata" or m.startswith("jsonata.") for m in modules):
                offenders.append(path.relative_to(root).as_posix())
    assert sorted(set(offenders)) == sorted(contract)
