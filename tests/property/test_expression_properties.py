"""Properties of the expression contract over generated expressions and JSON inputs.

* Against plain jsonata-python: the contract returns the same value, or fails with one of
  its own codes; a guardrail code only where plain jsonata failed too or the result is
  over a cap. Never another exception, never another value.
* The input document is never mutated.
* The isolated mode (a worker process pool) gives exactly what the in-process mode gives.

Expressions are drawn from a small grammar over the paths the generated documents have:
paths, literals, operators, conditionals, array and object constructors, filters, small
ranges, allowed built-ins and lambdas passed to higher-order built-ins. Every generated
expression ends quickly, so plain jsonata (which has no timeout) can run it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonata import JException, Jsonata

from wfadapters.isolation import IsolationOptions, ProcessPoolEvaluator
from wfdomain.errors import ExpressionError
from wfdomain.expression_paths import field_path
from wfdomain.expressions import IN_PROCESS, ExpressionCode, ExpressionLimits

NOW = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
LIMITS = ExpressionLimits(timeout_ms=2000)
CODES = {value for name, value in vars(ExpressionCode).items() if name.isupper()}
GUARDRAILS = {
    ExpressionCode.TIMEOUT, ExpressionCode.DEPTH_EXCEEDED, ExpressionCode.RANGE_TOO_LARGE,
    ExpressionCode.OUTPUT_TOO_LARGE, ExpressionCode.MEMORY_LIMIT,
}
KEYS = ["a", "b", "k", "items", "name"]

# -- documents --------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
    | st.text(alphabet="abcAB ,-1é", max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=4)
    ),
    max_leaves=10,
)
numbers = st.integers(min_value=-1000, max_value=1000) | st.floats(
    min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False
)
records = st.fixed_dictionaries(
    {"k": scalars}, optional={"name": st.text(alphabet="abc ,", max_size=4), "a": json_values}
)
documents = st.fixed_dictionaries({
    "input": st.fixed_dictionaries(
        {"a": json_values, "b": numbers, "items": st.lists(records, max_size=4)},
        optional={"name": st.text(alphabet="abcAB ,", max_size=6), "k": json_values},
    ) | json_values,
    "state": st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3),
    "item": json_values,
})

# -- expressions --------------------------------------------------------------------------

paths = st.sampled_from([
    "input", "state", "item", "input.a", "input.b", "input.items", "input.items.k",
    "input.items.name", "input.name", "state.k", "input.a.b", "item.name", "$", "input.*",
    "**.k", "input.items[0]", "input.items[-1].k", "$count(input.items)",
])
literals = st.one_of(
    st.integers(min_value=-50, max_value=50).map(str),
    st.sampled_from(["0.5", "1e3", '"a"', '"b,c"', '""', "true", "false", "null", "[]", "{}"]),
)
UNARY_FUNCTIONS = [
    "string", "length", "count", "sum", "max", "min", "average", "keys", "uppercase",
    "lowercase", "trim", "reverse", "sort", "distinct", "number", "boolean", "not", "exists",
    "type", "abs", "floor", "ceil", "round", "sqrt", "spread", "each", "base64encode",
]
BINARY_FUNCTIONS = ["append", "join", "split", "contains", "substring", "lookup",
                    "substringBefore", "substringAfter", "zip", "formatBase", "power"]
LAMBDA_FUNCTIONS = ["map", "filter", "single", "sift"]
OPERATORS = ["+", "-", "*", "/", "%", "&", "=", "!=", "<", ">", "<=", ">=", "and", "or", "in"]


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(OPERATORS), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(UNARY_FUNCTIONS), children).map(lambda t: f"${t[0]}({t[1]})"),
        st.tuples(st.sampled_from(BINARY_FUNCTIONS), children, children).map(
            lambda t: f"${t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(st.sampled_from(LAMBDA_FUNCTIONS), children, children).map(
            lambda t: f"${t[0]}({t[1]}, function($v){{ {t[2].replace('$.', '$v.')} }})"
        ),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.lists(children, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.tuples(st.sampled_from(KEYS), children).map(lambda t: f'{{"{t[0]}": {t[1]}}}'),
        st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(children, children).map(lambda t: f"($x := {t[0]}; [$x, {t[1]}])"),
        st.integers(min_value=0, max_value=20).map(lambda n: f"[1..{n}]"),
        paths.map(lambda p: f"-({p})"),
    )


expressions = st.recursive(paths | literals, _extend, max_leaves=6)

# -- outcomes -----------------------------------------------------------------------------


def contract(evaluator: Any, source: str, data: Any) -> tuple[str, Any]:
    try:
        return ("ok", evaluator.evaluate(source, data, now=NOW, limits=LIMITS))
    except ExpressionError as error:
        return ("error", error.to_dict())


def plain(source: str, data: Any) -> tuple[str, Any]:
    try:
        result = Jsonata(source).evaluate(copy.deepcopy(data))
    except Exception as exc:  # plain jsonata lets raw Python errors out (AttributeError...)
        return ("error", exc.error if isinstance(exc, JException) else type(exc).__name__)
    try:
        return ("ok", json.loads(json.dumps(result, allow_nan=False)))
    except (TypeError, ValueError):  # a function or a non-finite number: not JSON
        return ("error", "not JSON")


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolEvaluator]:
    with ProcessPoolEvaluator(IsolationOptions(workers=1)) as started:
        yield started


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=expressions, data=documents)
def test_contract_is_plain_jsonata_or_one_of_its_codes(source: str, data: Any) -> None:
    before = copy.deepcopy(data)
    kind, value = contract(IN_PROCESS, source, data)
    assert data == before  # never mutated
    expected_kind, expected = plain(source, data)
    if kind == "ok":
        assert (expected_kind, expected) == ("ok", value)
        return
    assert value["code"] in CODES
    if expected_kind == "ok":
        # Plain jsonata succeeded: only a guardrail may refuse what it accepts.
        assert value["code"] in GUARDRAILS, (value, expected)
    jsonata_code = value["details"].get("jsonata_code")
    if value["code"] == ExpressionCode.EVALUATION and jsonata_code is not None:
        assert expected == jsonata_code  # the same jsonata error, under its contract code


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(source=expressions, data=documents)
def test_isolated_mode_agrees_with_in_process(
    pool: ProcessPoolEvaluator, source: str, data: Any
) -> None:
    assert contract(pool, source, data) == contract(IN_PROCESS, source, data)


plain_paths = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(".".join)


@settings(max_examples=500, deadline=None)
@given(source=plain_paths,
       data=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4) | json_values)
def test_plain_field_paths_answer_as_plain_jsonata(source: str, data: Any) -> None:
    # These take the evaluator's shortcut (expression_paths) wherever it applies.
    assert field_path(source) is not None
    assert contract(IN_PROCESS, source, data) == plain(source, data)
