"""The definition language: pydantic models for a versioned workflow definition.

A definition is data (JSON or YAML parsed by the caller into a mapping). ``parse_definition``
validates the whole document up front: its shape, unique step ids, and every expression
against the expression contract, with the step path of the first error.

Expressions: every field documented as an expression holds JSONata source. In ``input``
templates, string values are expressions and other JSON values are constants.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from wfdomain.errors import DefinitionError, ErrorCode
from wfdomain.expressions import check_expression
from wfdomain.schema import check_schema

__all__ = [
    "ActionStep",
    "AssignStep",
    "Branch",
    "ChildRunStep",
    "Definition",
    "FailStep",
    "ForEachStep",
    "HumanTaskStep",
    "IfStep",
    "ParallelStep",
    "RetryPolicy",
    "ReturnStep",
    "SleepStep",
    "Step",
    "SwitchCase",
    "SwitchStep",
    "WaitEventStep",
    "definition_path",
    "parse_definition",
]

_ID = r"^[A-Za-z_][A-Za-z0-9_\-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetryPolicy(_Model):
    """How a failed action is retried: exponential backoff, capped.

    The delay before attempt ``n + 1`` is ``min(initial_interval_s * backoff ** (n - 1),
    max_interval_s)``. Errors whose code is in ``non_retryable_codes``, and errors raised
    with ``retryable=False``, are never retried.
    """

    max_attempts: int = Field(default=1, ge=1, le=100)
    initial_interval_s: float = Field(default=1.0, ge=0)
    backoff: float = Field(default=2.0, ge=1)
    max_interval_s: float = Field(default=300.0, ge=0)
    non_retryable_codes: tuple[str, ...] = ()

    def delay_s(self, failed_attempt: int) -> float:
        """Return the delay after ``failed_attempt`` (1-based) before the next attempt."""
        delay = self.initial_interval_s * self.backoff ** (failed_attempt - 1)
        return float(min(delay, self.max_interval_s))


class _StepBase(_Model):
    id: str | None = Field(default=None, pattern=_ID)
    title: str | None = None


class ActionStep(_StepBase):
    """Call a registered action with an input built from expressions.

    The output is available to later expressions as ``steps.<id>``; ``save_as`` also
    stores it in ``state.<save_as>``. When every attempt failed, ``on_error`` steps run
    instead of failing the run: they see the failure as ``error``, and the step's output
    is then ``{"error": ...}``.
    """

    type: Literal["action"] = "action"
    action: str = Field(min_length=1)
    input: Any = None
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float | None = Field(default=None, gt=0)
    save_as: str | None = Field(default=None, pattern=_ID)
    on_error: list[Step] | None = None


class AssignStep(_StepBase):
    """Set ``state`` fields to the values of expressions (``type: assign`` or ``set_state``)."""

    type: Literal["assign", "set_state"] = "assign"
    values: dict[str, str] = Field(min_length=1)


class IfStep(_StepBase):
    """Run ``then`` when ``condition`` is truthy, else ``else``."""

    type: Literal["if"] = "if"
    condition: str
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


class SwitchCase(_Model):
    """One case of a ``switch``: the first case whose ``when`` is truthy runs."""

    when: str
    steps: list[Step] = Field(default_factory=list)


class SwitchStep(_StepBase):
    """Run the first case whose ``when`` is truthy, else ``default``."""

    type: Literal["switch"] = "switch"
    cases: list[SwitchCase] = Field(min_length=1)
    default: list[Step] = Field(default_factory=list)


class ForEachStep(_StepBase):
    """Run ``do`` once per element of ``items`` (``item`` and ``index`` in scope).

    Iterations run concurrently, at most ``max_concurrency`` at once (all when None).
    The output is the list of each iteration's last step output, in item order.
    """

    type: Literal["for_each"] = "for_each"
    items: str
    do: list[Step] = Field(default_factory=list)
    max_concurrency: int | None = Field(default=None, ge=1)


class Branch(_Model):
    """A named branch of a ``parallel`` step."""

    name: str = Field(pattern=_ID)
    steps: list[Step] = Field(default_factory=list)


class ParallelStep(_StepBase):
    """Run every branch at once; continue when all have finished (fan-out, fan-in).

    The output maps each branch name to its last step output.
    """

    type: Literal["parallel"] = "parallel"
    branches: list[Branch] = Field(min_length=1)


class WaitEventStep(_StepBase):
    """Wait for an external event named ``event`` whose correlation key matches.

    ``correlation`` is evaluated when the wait starts; an event routes here when its
    resolved correlation key equals it and ``filter`` (evaluated with ``event`` bound to
    the payload) is truthy. After ``timeout_s`` the ``on_timeout`` steps run instead.
    """

    type: Literal["wait_event"] = "wait_event"
    event: str = Field(min_length=1)
    correlation: str
    filter: str | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    on_timeout: list[Step] = Field(default_factory=list)


class HumanTaskStep(_StepBase):
    """Wait for a person's decision: one of ``outcomes`` plus form data.

    ``assignee`` is an expression. Past ``deadline_s`` the task is marked overdue and,
    when ``on_deadline`` is given, those steps run and the task closes.
    """

    type: Literal["human_task"] = "human_task"
    task: str = Field(min_length=1, description="Title shown in the inbox.")
    assignee: str | None = None
    form: dict[str, Any] | None = None
    outcomes: list[str] = Field(min_length=1)
    deadline_s: float | None = Field(default=None, gt=0)
    on_deadline: list[Step] | None = None


class SleepStep(_StepBase):
    """Wait ``seconds`` of time (a durable timer)."""

    type: Literal["sleep"] = "sleep"
    seconds: float = Field(gt=0)


class ChildRunStep(_StepBase):
    """Start a run of another definition and wait for its result."""

    type: Literal["child_run"] = "child_run"
    definition: str = Field(pattern=_ID)
    version: int | None = Field(default=None, ge=1)
    input: Any = None


class ReturnStep(_StepBase):
    """Finish the run now with ``output`` (an expression; the state when omitted)."""

    type: Literal["return"] = "return"
    output: str | None = None


class FailStep(_StepBase):
    """Fail the run with ``code`` and ``message`` (an expression)."""

    type: Literal["fail"] = "fail"
    code: str = Field(default=ErrorCode.STEP_FAILED, pattern=r"^[A-Z][A-Z0-9_]*$")
    message: str


Step = Annotated[
    ActionStep
    | AssignStep
    | IfStep
    | SwitchStep
    | ForEachStep
    | ParallelStep
    | WaitEventStep
    | HumanTaskStep
    | SleepStep
    | ChildRunStep
    | ReturnStep
    | FailStep,
    Field(discriminator="type"),
]

for _model in (ActionStep, IfStep, SwitchCase, SwitchStep, ForEachStep, Branch, ParallelStep,
               WaitEventStep, HumanTaskStep):
    _model.model_rebuild()

_STEP_TYPES = frozenset(
    {"action", "assign", "set_state", "if", "switch", "for_each", "parallel", "wait_event",
     "human_task", "sleep", "child_run", "return", "fail"}
)


class Definition(_Model):
    """A versioned workflow definition.

    Attributes:
        id: Stable name of the workflow.
        version: Positive version; a run records the version (and hash) it started with.
        input_schema: Optional JSON Schema that a run's input must satisfy.
        secret_fields: Dotted paths (``input.card.number``, ``state.token``) that views
            redact; the stored history keeps the real values for replay.
        output: Expression for the run's result; the state when omitted.
    """

    id: str = Field(pattern=_ID)
    version: int = Field(ge=1)
    title: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    secret_fields: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    output: str | None = None

    _blocks: dict[str, tuple[Any, ...]] = PrivateAttr(default_factory=dict)
    _hash: str = PrivateAttr(default="")

    def model_post_init(self, context: Any, /) -> None:
        """Index every step list by its definition path, and hash the content."""
        self._blocks = dict(_index_blocks("steps", self.steps))
        canonical = json.dumps(
            self.model_dump(mode="json", by_alias=True, exclude_none=True),
            sort_keys=True,
            separators=(",", ":"),
        )
        self._hash = hashlib.sha256(canonical.encode()).hexdigest()

    # The two readers on every decision read the private attributes from pydantic's
    # private dict directly: through ``self._hash`` each read is a BaseModel.__getattr__.
    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON document: equal content, equal hash."""
        private: dict[str, Any] = self.__pydantic_private__  # type: ignore[assignment]
        return str(private["_hash"])

    def block(self, path: str) -> tuple[Any, ...]:
        """Return the steps of the block at a definition path such as ``steps[2].then``."""
        private: dict[str, Any] = self.__pydantic_private__  # type: ignore[assignment]
        blocks: dict[str, tuple[Any, ...]] = private["_blocks"]
        return blocks[path]

    def iter_steps(self) -> Iterator[tuple[str, Any]]:
        """Yield ``(path, step)`` for every step, depth first in document order."""
        for block_path, steps in self._blocks.items():
            for i, step in enumerate(steps):
                yield f"{block_path}[{i}]", step

    def action_names(self) -> frozenset[str]:
        """Return the names of every action the definition calls."""
        return frozenset(s.action for _, s in self.iter_steps() if isinstance(s, ActionStep))

    def to_document(self) -> dict[str, Any]:
        """Return the definition as a JSON-ready document (round-trips through parse)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _index_blocks(path: str, steps: list[Any]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    yield path, tuple(steps)
    for i, step in enumerate(steps):
        for child_path, child_steps in _child_blocks(f"{path}[{i}]", step):
            yield from _index_blocks(child_path, child_steps)


def _child_blocks(step_path: str, step: Any) -> Iterator[tuple[str, list[Any]]]:
    match step:
        case IfStep():
            yield f"{step_path}.then", step.then
            yield f"{step_path}.else", step.else_
        case SwitchStep():
            for j, case in enumerate(step.cases):
                yield f"{step_path}.cases[{j}].steps", case.steps
            yield f"{step_path}.default", step.default
        case ForEachStep():
            yield f"{step_path}.do", step.do
        case ParallelStep():
            for j, branch in enumerate(step.branches):
                yield f"{step_path}.branches[{j}].steps", branch.steps
        case WaitEventStep():
            yield f"{step_path}.on_timeout", step.on_timeout
        case HumanTaskStep() if step.on_deadline is not None:
            yield f"{step_path}.on_deadline", step.on_deadline
        case ActionStep() if step.on_error is not None:
            yield f"{step_path}.on_error", step.on_error
        case _:
            return


_ITERATION = re.compile(r"@\d+")


def definition_path(instance_key: str) -> str:
    """Map a step instance key (``steps[3]@2.do[0]``) to its definition path."""
    return _ITERATION.sub("", instance_key)


def parse_definition(document: Mapping[str, Any]) -> Definition:
    """Validate a definition document and every expression in it.

    Raises:
        DefinitionError: the document is malformed (``path`` names the field, e.g.
            ``steps[2].then[0].retry.max_attempts``) or two steps share an id.
        ExpressionError: an expression is outside the contract (``path`` names it, e.g.
            ``steps[2].then[0].input.amount``).
    """
    try:
        definition = Definition.model_validate(document)
    except ValidationError as e:
        first = e.errors()[0]
        raise DefinitionError(
            first["msg"],
            path=_loc_to_path(first["loc"]) or None,
            details={"errors": len(e.errors())},
        ) from None
    _check_unique_ids(definition)
    check_schema(definition.input_schema, "input_schema")
    for path, step in definition.iter_steps():
        if isinstance(step, HumanTaskStep):
            check_schema(step.form, f"{path}.form")
    for path, source in iter_expressions(definition):
        check_expression(source, path=path)
    return definition


def iter_expressions(definition: Definition) -> Iterator[tuple[str, str]]:
    """Yield ``(path, source)`` for every expression in the definition."""
    if definition.output is not None:
        yield "output", definition.output
    for path, step in definition.iter_steps():
        yield from _step_expressions(path, step)


def _step_expressions(path: str, step: Any) -> Iterator[tuple[str, str]]:
    match step:
        case ActionStep() | ChildRunStep():
            yield from _template_expressions(f"{path}.input", step.input)
        case AssignStep():
            for name, source in step.values.items():
                yield f"{path}.values.{name}", source
        case IfStep():
            yield f"{path}.condition", step.condition
        case SwitchStep():
            for j, case in enumerate(step.cases):
                yield f"{path}.cases[{j}].when", case.when
        case ForEachStep():
            yield f"{path}.items", step.items
        case WaitEventStep():
            yield f"{path}.correlation", step.correlation
            if step.filter is not None:
                yield f"{path}.filter", step.filter
        case HumanTaskStep() if step.assignee is not None:
            yield f"{path}.assignee", step.assignee
        case ReturnStep() if step.output is not None:
            yield f"{path}.output", step.output
        case FailStep():
            yield f"{path}.message", step.message
        case _:
            return


def _template_expressions(path: str, template: Any) -> Iterator[tuple[str, str]]:
    if isinstance(template, str):
        yield path, template
    elif isinstance(template, dict):
        for key, value in template.items():
            yield from _template_expressions(f"{path}.{key}", value)
    elif isinstance(template, list):
        for i, value in enumerate(template):
            yield from _template_expressions(f"{path}[{i}]", value)


def _check_unique_ids(definition: Definition) -> None:
    seen: dict[str, str] = {}
    for path, step in definition.iter_steps():
        if step.id is None:
            continue
        if step.id in seen:
            raise DefinitionError(
                f"step id {step.id!r} is already used at {seen[step.id]}",
                code=ErrorCode.DEFINITION_DUPLICATE_STEP_ID,
                path=path,
            )
        seen[step.id] = path


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    after_index = False
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            after_index = True
            continue
        if after_index and item in _STEP_TYPES:
            after_index = False
            continue
        after_index = False
        parts.append(f".{item}" if parts else item)
    return "".join(parts)

