"""The action registry: models from type hints, validation errors, lookup and invocation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from wfdomain.actions import ActionContext, ActionRegistry
from wfdomain.definition import parse_definition
from wfdomain.errors import ActionFailedError, ErrorCode, UnknownActionError

CTX = ActionContext(tenant="t1", run_id="r1", step_key="steps[0]",
                    idempotency_key="t1:r1:steps[0]", attempt=2)


class ChargeIn(BaseModel):
    amount: float
    currency: str = "EUR"


class ChargeOut(BaseModel):
    charged: float


async def charge(inp: ChargeIn, ctx: ActionContext) -> ChargeOut:
    return ChargeOut(charged=inp.amount)


def test_models_and_context_are_inferred_from_type_hints() -> None:
    registry = ActionRegistry()
    spec = registry.register("charge", charge)
    assert (spec.name, spec.input_model, spec.output_model, spec.takes_context) == (
        "charge", ChargeIn, ChargeOut, True)

    async def untyped(payload):  # type: ignore[no-untyped-def]
        return payload

    async def plain(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    assert registry.register("untyped", untyped).input_model is None
    plain_spec = registry.register("plain", plain)
    assert (plain_spec.input_model, plain_spec.output_model, plain_spec.takes_context) == (
        None, None, False)
    assert registry.names() == frozenset({"charge", "untyped", "plain"})


async def test_invoke_validates_input_and_returns_output_as_json_data() -> None:
    registry = ActionRegistry()
    registry.register("charge", charge)
    assert await registry.invoke("charge", {"amount": "12.5"}, CTX) == {"charged": 12.5}


async def test_the_context_reaches_the_action() -> None:
    registry = ActionRegistry()
    seen: list[ActionContext] = []

    @registry.action()
    async def record(inp: dict[str, Any], ctx: ActionContext) -> None:
        seen.append(ctx)

    await registry.invoke("record", {}, CTX)
    assert seen == [CTX]


async def test_an_invalid_input_is_action_input_invalid_and_not_retryable() -> None:
    registry = ActionRegistry()
    registry.register("charge", charge)
    with pytest.raises(ActionFailedError) as caught:
        await registry.invoke("charge", {"amount": "lots"}, CTX)
    error = caught.value
    assert error.code == ErrorCode.ACTION_INPUT_INVALID == "ACTION_INPUT_INVALID"
    assert error.retryable is False
    assert "charge" in error.message


async def test_an_invalid_output_is_action_output_invalid_and_not_retryable() -> None:
    registry = ActionRegistry()

    @registry.action("bad")
    async def bad(inp: ChargeIn) -> ChargeOut:
        return {"charged": "much"}  # type: ignore[return-value]

    @registry.action("coerced")
    async def coerced(inp: ChargeIn) -> ChargeOut:
        return {"charged": "3"}  # type: ignore[return-value]

    with pytest.raises(ActionFailedError) as caught:
        await registry.invoke("bad", {"amount": 1}, CTX)
    assert (caught.value.code, caught.value.retryable) == (ErrorCode.ACTION_OUTPUT_INVALID, False)
    assert await registry.invoke("coerced", {"amount": 1}, CTX) == {"charged": 3.0}


async def test_errors_raised_by_the_action_propagate_unchanged() -> None:
    registry = ActionRegistry()

    @registry.action()
    async def declines(inp: ChargeIn) -> ChargeOut:
        raise ActionFailedError("card declined", code="DECLINED", retryable=False)

    @registry.action()
    async def flaky(inp: ChargeIn) -> ChargeOut:
        raise RuntimeError("down")

    with pytest.raises(ActionFailedError) as caught:
        await registry.invoke("declines", {"amount": 1}, CTX)
    assert (caught.value.code, caught.value.retryable) == ("DECLINED", False)
    with pytest.raises(RuntimeError, match="down"):
        await registry.invoke("flaky", {"amount": 1}, CTX)
    assert ActionFailedError("x").retryable is True  # retryable unless said otherwise


def test_the_decorator_registers_under_the_function_name_and_returns_it() -> None:
    registry = ActionRegistry()

    async def ship(inp: dict[str, Any]) -> dict[str, Any]:
        return inp

    assert registry.action()(ship) is ship
    assert registry.action("ship_v2")(ship) is ship
    assert registry.names() == frozenset({"ship", "ship_v2"})
    assert registry.get("ship_v2").fn is ship


async def test_an_unknown_action_is_action_unknown_with_the_known_names() -> None:
    registry = ActionRegistry()
    registry.register("charge", charge)
    with pytest.raises(UnknownActionError) as caught:
        await registry.invoke("refund", {}, CTX)
    assert caught.value.code == ErrorCode.ACTION_UNKNOWN == "ACTION_UNKNOWN"
    assert "['charge']" in caught.value.message


def test_check_definition_names_the_path_of_the_first_unknown_action() -> None:
    registry = ActionRegistry()
    registry.register("charge", charge)
    definition = parse_definition({"id": "wf", "version": 1, "steps": [
        {"type": "action", "action": "charge"},
        {"type": "if", "condition": "true", "then": [{"type": "action", "action": "refund"}]},
    ]})
    with pytest.raises(UnknownActionError) as caught:
        registry.check_definition(definition)
    assert (caught.value.code, caught.value.path) == ("ACTION_UNKNOWN", "steps[1].then[0].action")
    registry.register("refund", charge)
    registry.check_definition(definition)


def test_registering_twice_or_a_sync_function_is_refused() -> None:
    registry = ActionRegistry()
    registry.register("charge", charge)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("charge", charge)

    def sync(inp: dict[str, Any]) -> None:
        return None

    with pytest.raises(ValueError, match="async"):
        registry.register("sync", sync)  # type: ignore[arg-type]


def test_merge_adds_every_action_and_refuses_clashes() -> None:
    first, second, target = ActionRegistry(), ActionRegistry(), ActionRegistry()
    first.register("a", charge)
    second.register("b", charge)
    target.merge([first, second])
    assert target.names() == frozenset({"a", "b"})
    with pytest.raises(ValueError, match="already registered"):
        target.merge([first])


def test_a_model_defined_in_a_local_scope_is_refused_with_a_value_error() -> None:
    class LocalIn(BaseModel):
        n: int

    async def local(inp: LocalIn) -> None:
        return None

    with pytest.raises(ValueError, match="local"):
        ActionRegistry().register("local", local)
