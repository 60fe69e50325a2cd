"""The action registry: async Python callables with pydantic input and output.

An action is ``async def name(input: InModel, ctx: ActionContext) -> OutModel``. The input
and output models are read from its type hints (both optional: a parameter typed as a
plain ``dict`` or without a model receives the JSON as is). ``ctx.idempotency_key`` is
the same for every attempt of one step instance: pass it to the systems you call.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError

from wfdomain.definition import Definition
from wfdomain.errors import ActionFailedError, ErrorCode, UnknownActionError

__all__ = ["ActionContext", "ActionRegistry", "ActionSpec"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionContext:
    """What an action knows about the call it serves."""

    tenant: str
    run_id: str
    step_key: str
    idempotency_key: str
    attempt: int


ActionFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSpec:
    """A registered action."""

    name: str
    fn: ActionFn
    input_model: type[BaseModel] | None
    output_model: type[BaseModel] | None
    takes_context: bool


def _model(hint: Any) -> type[BaseModel] | None:
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None


class ActionRegistry:
    """Named actions, shared by every engine (local workers and Temporal activities)."""

    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}

    def register(self, name: str, fn: ActionFn) -> ActionSpec:
        """Register ``fn`` under ``name``; models come from its type hints.

        Raises:
            ValueError: the name is taken or ``fn`` is not an async function.
        """
        if name in self._specs:
            raise ValueError(f"action {name!r} is already registered")
        if not inspect.iscoroutinefunction(fn):
            raise ValueError(f"action {name!r} must be an async function")
        try:
            hints = get_type_hints(fn)
        except NameError as e:
            raise ValueError(
                f"action {name!r}: cannot resolve its type hints ({e}); define its input and "
                "output models at module level, not in a local scope"
            ) from None
        params = list(inspect.signature(fn).parameters)
        spec = ActionSpec(
            name=name,
            fn=fn,
            input_model=_model(hints.get(params[0])) if params else None,
            output_model=_model(hints.get("return")),
            takes_context=len(params) >= 2,
        )
        self._specs[name] = spec
        return spec

    def action(self, name: str | None = None) -> Callable[[ActionFn], ActionFn]:
        """Decorator form of ``register`` (the name defaults to the function's)."""

        def decorate(fn: ActionFn) -> ActionFn:
            self.register(name or fn.__name__, fn)
            return fn

        return decorate

    def names(self) -> frozenset[str]:
        """Return the registered names."""
        return frozenset(self._specs)

    def get(self, name: str, *, path: str | None = None) -> ActionSpec:
        """Return the action called ``name``.

        Raises:
            UnknownActionError: nothing is registered under ``name``.
        """
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownActionError(
                f"action {name!r} is not registered (known: {sorted(self._specs)})", path=path
            ) from None

    def check_definition(self, definition: Definition) -> None:
        """Raise ``UnknownActionError`` with the step path of the first unknown action."""
        for path, step in definition.iter_steps():
            if getattr(step, "type", None) == "action":
                self.get(step.action, path=f"{path}.action")

    def merge(self, others: Iterable[ActionRegistry]) -> None:
        """Add every action of ``others`` (names must not clash)."""
        for other in others:
            for spec in other._specs.values():
                self.register(spec.name, spec.fn)

    async def invoke(self, name: str, payload: Any, ctx: ActionContext) -> Any:
        """Validate ``payload``, call the action, and return its output as JSON data.

        Raises:
            UnknownActionError: ``name`` is not registered.
            ActionFailedError: the input or output fails its model (not retryable), or
                the action raised (retryable unless it raised ``ActionFailedError`` with
                ``retryable=False``).
        """
        spec = self.get(name)
        arg: Any = payload
        if spec.input_model is not None:
            try:
                arg = spec.input_model.model_validate(payload)
            except ValidationError as e:
                raise ActionFailedError(
                    f"input of action {name!r} is invalid: {e.errors()[0]['msg']}",
                    code=ErrorCode.ACTION_INPUT_INVALID, retryable=False,
                ) from None
        result = await (spec.fn(arg, ctx) if spec.takes_context else spec.fn(arg))
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json")
        if spec.output_model is not None:
            try:
                return spec.output_model.model_validate(result).model_dump(mode="json")
            except ValidationError as e:
                raise ActionFailedError(
                    f"output of action {name!r} is invalid: {e.errors()[0]['msg']}",
                    code=ErrorCode.ACTION_OUTPUT_INVALID, retryable=False,
                ) from None
        return result
