"""Loading definitions: every error has a stable code and the exact path; the hash is stable."""

from __future__ import annotations

import copy
import hashlib
import json
from types import MappingProxyType
from typing import Any

import pytest

from wfdomain.definition import (
    ActionStep,
    Definition,
    RetryPolicy,
    definition_path,
    iter_expressions,
    parse_definition,
)
from wfdomain.errors import DefinitionError, ErrorCode, ExpressionError, WorkflowEngineError
from wfdomain.expressions import ExpressionCode

A = {"type": "assign", "values": {"x": "1"}}


def doc(*steps: Any, **extra: Any) -> dict[str, Any]:
    return {"id": "wf", "version": 1, "steps": list(steps), **extra}


def failure(document: Any) -> WorkflowEngineError:
    with pytest.raises(WorkflowEngineError) as caught:
        parse_definition(document)
    return caught.value


FULL = doc(
    {"type": "assign", "id": "init", "values": {"total": "input.amount * 2"}},
    {"type": "action", "id": "pay", "action": "charge", "input": {"amount": "state.total"},
     "retry": {"max_attempts": 3, "initial_interval_s": 1},
     "on_error": [{"type": "fail", "message": "'payment failed'"}]},
    {"type": "parallel", "branches": [
        {"name": "a", "steps": [{"type": "sleep", "seconds": 5}]},
        {"name": "b", "steps": [{"type": "child_run", "definition": "ship",
                                 "input": {"order": "input.order"}}]},
    ]},
    {"type": "for_each", "id": "fe", "items": "input.items", "max_concurrency": 2,
     "do": [{"type": "switch", "cases": [{"when": "item > 1", "steps": [A]}], "default": []}]},
    {"type": "wait_event", "id": "w", "event": "paid", "correlation": "input.order",
     "filter": "event.ok", "timeout_s": 60, "on_timeout": [{"type": "return"}]},
    {"type": "human_task", "id": "approve", "task": "Approve", "assignee": "'alice'",
     "outcomes": ["yes", "no"], "deadline_s": 60, "on_deadline": [A]},
    {"type": "if", "condition": "steps.approve.outcome = 'yes'",
     "then": [{"type": "return", "output": "state"}], "else": [A]},
    output="state",
)


# ---------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(("document", "path"), [
    (doc(A, A, {"type": "if", "condition": "true",
                "then": [{"type": "action", "action": "a", "retry": {"max_attempts": 0}}]}),
     "steps[2].then[0].retry.max_attempts"),
    (doc({"type": "switch", "cases": [{"when": "true",
                                       "steps": [{"type": "sleep", "seconds": -1}]}]}),
     "steps[0].cases[0].steps[0].seconds"),
    (doc({"type": "if", "condition": "true", "else": [{"type": "sleep", "seconds": 0}]}),
     "steps[0].else[0].seconds"),
    (doc({"type": "parallel", "branches": [{"name": "b", "steps": [
        {"type": "action", "action": "x",
         "on_error": [{"type": "human_task", "task": "t", "outcomes": []}]}]}]}),
     "steps[0].branches[0].steps[0].on_error[0].outcomes"),
    (doc({**A, "colour": "red"}), "steps[0].colour"),
    (doc({**A, "id": "9lives"}), "steps[0].id"),
    (doc({"type": "assign", "values": {}}), "steps[0].values"),
    (doc({"type": "action", "action": ""}), "steps[0].action"),
    (doc({"type": "fail", "message": "'x'", "code": "lower_case"}), "steps[0].code"),
    (doc({"type": "child_run", "definition": "not an id"}), "steps[0].definition"),
    (doc(5), "steps[0]"),
    (doc(), "steps"),
    ({"id": "wf", "version": 0, "steps": [A]}, "version"),
    ({"id": "wf", "version": 1, "steps": [A], "input_schema": 5}, "input_schema"),
    ({"version": 1, "steps": [A]}, "id"),
])
def test_a_malformed_document_is_definition_invalid_with_the_exact_path(
    document: dict[str, Any], path: str,
) -> None:
    error = failure(document)
    assert isinstance(error, DefinitionError)
    assert error.code == ErrorCode.DEFINITION_INVALID == "DEFINITION_INVALID"
    assert error.path == path
    assert f" at {path}: " in str(error)


def test_an_unknown_step_type_is_definition_invalid_at_the_step() -> None:
    error = failure(doc(A, {"type": "teleport", "to": "mars"}))
    assert (type(error), error.code, error.path) == (DefinitionError, "DEFINITION_INVALID",
                                                     "steps[1]")
    assert "teleport" in error.message


def test_a_step_without_a_type_is_definition_invalid_at_the_step() -> None:
    error = failure(doc(A, {"values": {"x": "1"}}))
    assert (error.code, error.path) == ("DEFINITION_INVALID", "steps[1]")


def test_a_document_that_is_not_a_mapping_is_definition_invalid() -> None:
    error = failure("steps: []")
    assert error.code == "DEFINITION_INVALID"
    assert not error.path


def test_the_error_counts_every_problem_but_reports_the_first() -> None:
    error = failure(doc({"type": "sleep", "seconds": -1}, {"type": "sleep", "seconds": -2}))
    assert error.path == "steps[0].seconds"
    assert error.details == {"errors": 2}


@pytest.mark.parametrize(("steps", "path"), [
    ([{**A, "id": "a"}, {"type": "parallel", "branches": [{"name": "b",
                                                            "steps": [{**A, "id": "a"}]}]}],
     "steps[1].branches[0].steps[0]"),
    ([{"type": "for_each", "items": "[1]", "do": [{**A, "id": "x"}]},
      {"type": "if", "condition": "true", "then": [], "else": [{**A, "id": "x"}]}],
     "steps[1].else[0]"),
])
def test_a_duplicate_step_id_is_refused_at_its_second_use(
    steps: list[dict[str, Any]], path: str,
) -> None:
    error = failure(doc(*steps))
    assert isinstance(error, DefinitionError)
    assert error.code == ErrorCode.DEFINITION_DUPLICATE_STEP_ID == "DEFINITION_DUPLICATE_STEP_ID"
    assert error.path == path


# ----------------------------------------------------------------------------- expressions


@pytest.mark.parametrize(("document", "code", "path"), [
    (doc(A, {"type": "action", "action": "pay", "input": {"amount": "$now()"}}),
     ExpressionCode.FUNCTION_NOT_ALLOWED, "steps[1].input.amount"),
    (doc({"type": "action", "action": "a", "input": {"a": [1, {"b": "$eval('1')"}]}}),
     ExpressionCode.FUNCTION_NOT_ALLOWED, "steps[0].input.a[1].b"),
    (doc({"type": "for_each", "items": "[1]", "do": [
        {"type": "wait_event", "event": "e", "correlation": "x", "timeout_s": 5,
         "on_timeout": [{"type": "fail", "message": "$random()"}]}]}),
     ExpressionCode.FUNCTION_NOT_ALLOWED, "steps[0].do[0].on_timeout[0].message"),
    (doc(A, output="$millis()"), ExpressionCode.FUNCTION_NOT_ALLOWED, "output"),
    (doc({"type": "if", "condition": "input.amount >", "then": []}),
     ExpressionCode.SYNTAX, "steps[0].condition"),
    (doc({"type": "if", "condition": "true", "then": [
        {"type": "for_each", "items": "x", "do": [{"type": "if", "condition": "(", "then": []}]}]}),
     ExpressionCode.SYNTAX, "steps[0].then[0].do[0].condition"),
    (doc({"type": "assign", "values": {"x": "$__evaluate_entry"}}),
     ExpressionCode.RESERVED_NAME, "steps[0].values.x"),
    (doc({"type": "switch", "cases": [{"when": "true", "steps": []},
                                      {"when": "$shuffle([1])", "steps": []}]}),
     ExpressionCode.FUNCTION_NOT_ALLOWED, "steps[0].cases[1].when"),
    (doc({"type": "wait_event", "event": "e", "correlation": "input.id",
          "filter": "event.x ="}), ExpressionCode.SYNTAX, "steps[0].filter"),
    (doc({"type": "human_task", "task": "t", "outcomes": ["ok"], "assignee": "$pad('a', 9)"}),
     ExpressionCode.FUNCTION_NOT_ALLOWED, "steps[0].assignee"),
    (doc({"type": "child_run", "definition": "c", "input": "$now()"}),
     ExpressionCode.FUNCTION_NOT_ALLOWED, "steps[0].input"),
    (doc({"type": "return", "output": "{"}), ExpressionCode.SYNTAX, "steps[0].output"),
])
def test_an_expression_outside_the_contract_is_refused_with_its_path(
    document: dict[str, Any], code: str, path: str,
) -> None:
    error = failure(document)
    assert isinstance(error, ExpressionError)
    assert (error.code, error.path) == (code, path)


def test_template_constants_are_not_expressions() -> None:
    definition = parse_definition(doc({"type": "action", "action": "a",
                                       "input": {"n": 1, "ok": True, "none": None,
                                                 "list": [2, "item"]}}))
    assert list(iter_expressions(definition)) == [("steps[0].input.list[1]", "item")]


def test_iter_expressions_yields_every_expression_with_its_path() -> None:
    paths = [path for path, _ in iter_expressions(parse_definition(FULL))]
    assert paths == [
        "output", "steps[0].values.total", "steps[1].input.amount", "steps[3].items",
        "steps[4].correlation", "steps[4].filter", "steps[5].assignee", "steps[6].condition",
        "steps[1].on_error[0].message", "steps[2].branches[1].steps[0].input.order",
        "steps[3].do[0].cases[0].when", "steps[3].do[0].cases[0].steps[0].values.x",
        "steps[5].on_deadline[0].values.x", "steps[6].then[0].output",
        "steps[6].else[0].values.x",
    ]


# ----------------------------------------------------------------------- model and hash


def test_a_valid_document_parses_into_typed_steps_with_defaults() -> None:
    definition = parse_definition(FULL)
    pay = definition.steps[1]
    assert isinstance(pay, ActionStep)
    assert pay.retry == RetryPolicy(max_attempts=3, initial_interval_s=1)
    assert pay.retry.delay_s(1) == 1.0
    assert pay.retry.delay_s(3) == 4.0
    assert RetryPolicy(initial_interval_s=100, max_interval_s=150).delay_s(4) == 150.0
    assert definition.action_names() == frozenset({"charge"})
    assert definition.block("steps[3].do")[0].type == "switch"
    assert [p for p, _ in definition.iter_steps()][:3] == ["steps[0]", "steps[1]", "steps[2]"]


def test_documents_are_plain_mappings_and_round_trip_through_to_document() -> None:
    definition = parse_definition(MappingProxyType(FULL))
    document = definition.to_document()
    assert json.loads(json.dumps(document)) == document  # JSON-ready, no YAML involved
    again = parse_definition(document)
    assert again == definition
    assert again.content_hash == definition.content_hash


def test_content_hash_is_a_stable_sha256_of_the_canonical_document() -> None:
    first = parse_definition(FULL)
    reordered = json.loads(json.dumps(FULL, sort_keys=True))
    reordered["steps"][1] = dict(reversed(list(reordered["steps"][1].items())))
    with_defaults = copy.deepcopy(FULL)
    with_defaults["steps"][1]["retry"]["backoff"] = 2.0
    with_defaults["secret_fields"] = []
    hashes = {parse_definition(d).content_hash for d in (FULL, reordered, with_defaults)}
    assert hashes == {first.content_hash}
    assert len(first.content_hash) == 64
    assert int(first.content_hash, 16) >= 0
    canonical = json.dumps(first.to_document(), sort_keys=True, separators=(",", ":"))
    assert first.content_hash == hashlib.sha256(canonical.encode()).hexdigest()
    # pinned: a change here strands every stored run, which records this hash
    assert parse_definition(doc(A)).content_hash == (
        "cc5b9db8cf45810f5ff29e9f5f9fd2ae86df303a202ba9a9867b4b008b493f80"
    )


@pytest.mark.parametrize("change", [
    lambda d: d["steps"][0]["values"].update(total="input.amount * 3"),
    lambda d: d.update(version=2),
    lambda d: d.update(title="Orders"),
    lambda d: d["steps"][1]["retry"].update(max_attempts=4),
    lambda d: d["steps"].append({"type": "sleep", "seconds": 1}),
    lambda d: d["steps"][4].update(event="paid2"),
])
def test_content_hash_changes_with_any_content(change: Any) -> None:
    changed = copy.deepcopy(FULL)
    change(changed)
    assert parse_definition(changed).content_hash != parse_definition(FULL).content_hash


def test_definitions_are_frozen() -> None:
    definition = parse_definition(FULL)
    with pytest.raises(Exception, match="frozen"):
        definition.version = 2  # type: ignore[misc]


@pytest.mark.parametrize(("key", "path"), [
    ("steps[3]@2.do[0]", "steps[3].do[0]"),
    ("steps[3]@12.do[0]@0.do[1]", "steps[3].do[0].do[1]"),
    ("steps[0].then[2]", "steps[0].then[2]"),
])
def test_definition_path_drops_iteration_numbers(key: str, path: str) -> None:
    assert definition_path(key) == path


def test_set_state_is_an_alias_of_assign() -> None:
    definition = parse_definition(doc({"type": "set_state", "values": {"x": "1"}}))
    assert definition.steps[0].type == "set_state"
    assert isinstance(definition, Definition)
