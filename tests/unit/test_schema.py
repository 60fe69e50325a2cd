"""The small JSON Schema validator used for run inputs, event payloads and task forms."""

from __future__ import annotations

from typing import Any

import pytest

from wfdomain.errors import ErrorCode, InputValidationError
from wfdomain.schema import schema_errors, validate_against_schema

ORDER = {
    "type": "object",
    "required": ["id", "amount"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^o-[0-9]+$", "minLength": 3, "maxLength": 10},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
        "qty": {"type": "integer", "minimum": 1, "exclusiveMaximum": 100},
        "tier": {"enum": ["gold", "silver"]},
        "kind": {"const": "retail"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
        "note": {"type": ["string", "null"]},
    },
}


def errors(value: Any, schema: dict[str, Any] = ORDER) -> list[str]:
    return list(schema_errors(value, schema))


@pytest.mark.parametrize("value", [
    {"id": "o-1", "amount": 1},
    {"id": "o-12", "amount": 0.5, "qty": 99, "tier": "gold", "kind": "retail",
     "tags": ["a", "b"], "note": None},
    {"id": "o-123", "amount": 1000, "qty": 3.0, "note": "x"},
])
def test_valid_values_have_no_errors(value: Any) -> None:
    assert errors(value) == []
    validate_against_schema(value, ORDER, what="run input")


@pytest.mark.parametrize(("value", "expected"), [
    ([], ["$: expected object, got list"]),
    ({"id": "o-1"}, ["$.amount: is required"]),
    ({"id": 7, "amount": 1}, ["$.id: expected string, got int"]),
    ({"id": "x-1", "amount": 1}, ["$.id: does not match '^o-[0-9]+$'"]),
    ({"id": "o-", "amount": 1}, ["$.id: shorter than 3", "$.id: does not match '^o-[0-9]+$'"]),
    ({"id": "o-123456789", "amount": 1}, ["$.id: longer than 10"]),
    ({"id": "o-1", "amount": 0}, ["$.amount: must be > 0"]),
    ({"id": "o-1", "amount": 1001}, ["$.amount: must be <= 1000"]),
    ({"id": "o-1", "amount": True}, ["$.amount: expected number, got bool"]),
    ({"id": "o-1", "amount": 1, "qty": 0}, ["$.qty: must be >= 1"]),
    ({"id": "o-1", "amount": 1, "qty": 100}, ["$.qty: must be < 100"]),
    ({"id": "o-1", "amount": 1, "qty": 1.5}, ["$.qty: expected integer, got float"]),
    ({"id": "o-1", "amount": 1, "tier": "tin"}, ["$.tier: must be one of ['gold', 'silver']"]),
    ({"id": "o-1", "amount": 1, "kind": "bulk"}, ["$.kind: must equal 'retail'"]),
    ({"id": "o-1", "amount": 1, "tags": []}, ["$.tags: fewer than 1 items"]),
    ({"id": "o-1", "amount": 1, "tags": ["a", "b", "c"]}, ["$.tags: more than 2 items"]),
    ({"id": "o-1", "amount": 1, "tags": ["a", 2]}, ["$.tags[1]: expected string, got int"]),
    ({"id": "o-1", "amount": 1, "note": 3}, ["$.note: expected string or null, got int"]),
    ({"id": "o-1", "amount": 1, "extra": 1}, ["$.extra: is not allowed"]),
    ({}, ["$.id: is required", "$.amount: is required"]),
])
def test_each_violation_is_reported_with_its_json_path(value: Any, expected: list[str]) -> None:
    assert errors(value) == expected


def test_unknown_keywords_are_ignored_and_an_empty_schema_accepts_anything() -> None:
    assert errors({"a": 1}, {"type": "object", "x-ui": "wide", "format": "email"}) == []
    assert errors([1, "a", None], {}) == []


def test_an_unknown_type_name_accepts_any_value() -> None:
    assert errors(5, {"type": "decimal"}) == []


def test_validate_raises_input_invalid_with_every_problem() -> None:
    with pytest.raises(InputValidationError) as caught:
        validate_against_schema({}, ORDER, what="run input")
    error = caught.value
    assert error.code == ErrorCode.INPUT_INVALID
    assert error.path == "$.id"
    assert error.details == {"problems": ["$.id: is required", "$.amount: is required"]}
    assert error.message.startswith("run input does not match its schema: $.id: is required")


def test_validate_takes_a_code_and_none_accepts_anything() -> None:
    validate_against_schema(object(), None, what="anything")
    with pytest.raises(InputValidationError) as caught:
        validate_against_schema("x", {"type": "object"}, what="decision data",
                                code=ErrorCode.DECISION_INVALID)
    assert (caught.value.code, caught.value.path) == (ErrorCode.DECISION_INVALID, "$")


def test_the_message_lists_at_most_ten_problems_but_details_keep_all() -> None:
    schema = {"type": "object", "required": [f"f{i}" for i in range(12)]}
    with pytest.raises(InputValidationError) as caught:
        validate_against_schema({}, schema, what="run input")
    assert caught.value.message.count("is required") == 10
    problems = caught.value.details["problems"]
    assert isinstance(problems, list)
    assert len(problems) == 12
