"""Definitions, actions and drivers shared by the engine-level contract suite.

Definitions are plain documents (what a workflow author writes) parsed on registration.
``RecordingActions`` is an ``ActionRegistry`` whose actions record every call, so tests can
count executions and read the idempotency key each attempt received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import pytest
from pydantic import BaseModel

from wfadapters.memory import ManualClock
from wfdomain.actions import ActionContext, ActionRegistry
from wfdomain.codec import decode_envelope
from wfdomain.definition import parse_definition
from wfdomain.engine import Engine
from wfdomain.errors import ActionFailedError, WorkflowEngineError
from wfdomain.records import AuditRecord, EventEnvelope, HumanTaskRecord, Message, RunSummary
from wfdomain.runtime import Runtime, RuntimeSettings
from wfdomain.state import RunState, replay

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TENANT = "acme"
OTHER_TENANT = "globex"

Doc = dict[str, Any]


class RuntimeFactory(Protocol):
    """Builds a runtime over the backend under test; every runtime shares that backend."""

    def __call__(
        self, actions: ActionRegistry, settings: RuntimeSettings | None = None
    ) -> Runtime: ...


class EngineFactory(Protocol):
    """Builds an engine (a local runtime or another engine) over the backend under test.

    ``settings`` carries the options the scenarios vary (correlation paths, snapshots);
    an engine that is not a ``Runtime`` maps what applies to it.
    """

    def __call__(
        self, actions: ActionRegistry, settings: RuntimeSettings | None = None
    ) -> Engine: ...


class _Inspectable(Protocol):
    """What a non-local engine offers tests in place of a runtime's ports."""

    async def list_audit(self, tenant: str) -> list[AuditRecord]: ...

    async def list_human_tasks(self, tenant: str) -> list[HumanTaskRecord]: ...

    async def run_until_timers_fire(self, seconds: float) -> None: ...


# -- actions ------------------------------------------------------------------------------


class Number(BaseModel):
    n: int


@dataclass(frozen=True, slots=True)
class Call:
    """One action invocation as the action saw it."""

    action: str
    input: Any
    ctx: ActionContext


@dataclass(slots=True)
class RecordingActions:
    """The suite's actions, recording each call in order.

    - ``double``: ``{"n": k}`` -> ``{"n": 2k}`` (pydantic input and output).
    - ``echo``: returns its input.
    - ``flaky``: raises (retryable) until attempt ``input.succeed_on``, then returns the attempt.
    - ``decline``: raises ``ActionFailedError`` code ``CARD_DECLINED`` (retryable).
    - ``decline_final``: the same with ``retryable=False``.
    - ``hang``: waits forever (for action timeouts).
    """

    registry: ActionRegistry = field(default_factory=ActionRegistry)
    calls: list[Call] = field(default_factory=list)
    never: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        reg = self.registry

        async def double(inp: Number, ctx: ActionContext) -> Number:
            self.calls.append(Call("double", inp.n, ctx))
            return Number(n=inp.n * 2)

        async def echo(inp: Any, ctx: ActionContext) -> Any:
            self.calls.append(Call("echo", inp, ctx))
            return inp

        async def flaky(inp: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
            self.calls.append(Call("flaky", inp, ctx))
            if ctx.attempt < inp["succeed_on"]:
                raise RuntimeError(f"flaky attempt {ctx.attempt}")
            return {"attempt": ctx.attempt}

        async def decline(inp: Any, ctx: ActionContext) -> Any:
            self.calls.append(Call("decline", inp, ctx))
            raise ActionFailedError("card declined", code="CARD_DECLINED")

        async def decline_final(inp: Any, ctx: ActionContext) -> Any:
            self.calls.append(Call("decline_final", inp, ctx))
            raise ActionFailedError("card declined", code="CARD_DECLINED", retryable=False)

        async def hang(inp: Any, ctx: ActionContext) -> Any:
            self.calls.append(Call("hang", inp, ctx))
            await self.never.wait()
            return None

        for name, fn in [("double", double), ("echo", echo), ("flaky", flaky),
                         ("decline", decline), ("decline_final", decline_final),
                         ("hang", hang)]:
            reg.register(name, fn)

    def count(self, action: str | None = None) -> int:
        """How many times ``action`` (any action when None) was invoked."""
        return sum(1 for c in self.calls if action is None or c.action == action)

    def keys(self, action: str | None = None) -> list[str]:
        """The idempotency keys the calls received, in call order."""
        return [c.ctx.idempotency_key for c in self.calls if action is None or c.action == action]


# -- definitions --------------------------------------------------------------------------


def doc(definition_id: str, steps: Sequence[Doc], **extra: Any) -> Doc:
    """A definition document at version 1."""
    return {"id": definition_id, "version": 1, "steps": list(steps), **extra}


def action(name: str, input_: Any = None, **extra: Any) -> Doc:
    return {"type": "action", "action": name, "input": input_, **extra}


def assign(**values: str) -> Doc:
    return {"type": "assign", "values": values}


def ret(output: str) -> Doc:
    return {"type": "return", "output": output}


def wait_event(event: str, correlation: str, **extra: Any) -> Doc:
    return {"type": "wait_event", "id": "w", "event": event, "correlation": correlation,
            **extra}


def human_task(**extra: Any) -> Doc:
    return {"type": "human_task", "id": "approval", "task": "Approve order",
            "outcomes": ["approve", "reject"], **extra}


WAIT_PAID = doc("wait_paid", [
    wait_event("paid", "input.order"),
    ret("steps.w.payload"),
])
"""Waits for ``paid`` correlated on ``input.order``; returns the event payload."""

SLEEPER = doc("sleeper", [{"type": "sleep", "id": "nap", "seconds": 60}, ret("'woke'")])
"""Sleeps 60 s, then returns ``"woke"``."""

CHILD_ECHO = doc("child_echo", [ret("{'child_got': input.x}")])
"""Returns ``{"child_got": input.x}``."""

CHILD_FAILS = doc("child_fails", [{"type": "fail", "code": "CHILD_SAID_NO", "message": "'no'"}])
"""Fails at once with ``CHILD_SAID_NO``."""


def child_parent(child_definition: str) -> Doc:
    """A parent that runs ``child_definition`` with ``{"x": input.x}`` and returns its output."""
    return doc("parent", [
        {"type": "child_run", "id": "c", "definition": child_definition,
         "input": {"x": "input.x"}},
        ret("steps.c"),
    ])


# -- drivers and views --------------------------------------------------------------------


async def register(rt: Engine, *docs: Mapping[str, Any], tenant: str = TENANT) -> None:
    for document in docs:
        await rt.register_definition(tenant, parse_definition(document))


async def run_doc(
    rt: Engine, document: Mapping[str, Any], run_input: Any = None, *, tenant: str = TENANT
) -> RunSummary:
    """Register ``document``, start a run of it and work until idle; return the summary."""
    await register(rt, document, tenant=tenant)
    run = await rt.start_run(tenant, document["id"], run_input)
    await rt.run_until_idle()
    return await rt.get_run(tenant, run.run_id)


async def advance(rt: Runtime, clock: ManualClock, seconds: float) -> None:
    """Move the clock on and let due timers fire."""
    clock.advance(timedelta(seconds=seconds))
    await rt.run_until_idle()


def summary_of(run: RunSummary) -> RunSummary:
    """A summary's own fields (an ``ExecutedRun`` without its output)."""
    return RunSummary(**{f.name: getattr(run, f.name) for f in fields(RunSummary)})


async def output_of(rt: Engine, run_id: str, *, tenant: str = TENANT) -> Any:
    return (await rt.get_state(tenant, run_id)).output


async def children_of(rt: Engine, parent_id: str, *, count: int = 1,
                      tenant: str = TENANT, within_s: float = 15.0) -> list[RunSummary]:
    """The parent's child runs, polled until ``count`` are listed: Temporal lists runs
    through its visibility store, which catches up with a started workflow a moment later."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        children = [r for r in await rt.list_runs(tenant) if r.parent_run_id == parent_id]
        if len(children) >= count or loop.time() > deadline:
            return children
        await asyncio.sleep(0.1)


async def status_within(rt: Engine, run_id: str, wanted: str, *, tenant: str = TENANT,
                        within_s: float = 15.0) -> str:
    """The run's status, polled until it is ``wanted`` or ``within_s`` passed: Temporal's
    visibility store reports a child's status a moment after the child reached it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        status = (await rt.get_run(tenant, run_id)).status
        if status == wanted or loop.time() > deadline:
            return status
        await asyncio.sleep(0.1)


async def event_types(rt: Engine, run_id: str, *, tenant: str = TENANT) -> list[str]:
    return [e.type for e in await rt.history(tenant, run_id)]


async def audit_kinds(rt: Engine, *, tenant: str = TENANT) -> list[str]:
    if isinstance(rt, Runtime):
        return [r.kind for r in await rt.ports.audit.list_audit(tenant, limit=1000)]
    return [r.kind for r in await cast(_Inspectable, rt).list_audit(tenant)]


async def human_tasks(rt: Engine, *, tenant: str = TENANT) -> list[HumanTaskRecord]:
    """The tenant's open human tasks (the inbox)."""
    if isinstance(rt, Runtime):
        return await rt.ports.events.list_human_tasks(tenant)
    return await cast(_Inspectable, rt).list_human_tasks(tenant)


async def pass_time(rt: Engine, clock: ManualClock, seconds: float) -> None:
    """Let ``seconds`` pass and the timers due by then fire.

    A local runtime's clock is moved on; an engine on real time waits for its timers.
    """
    if isinstance(rt, Runtime):
        await advance(rt, clock, seconds)
    else:
        await cast(_Inspectable, rt).run_until_timers_fire(seconds)


def replayed(history: Sequence[EventEnvelope]) -> RunState:
    """The state a pure fold of ``history`` gives."""
    return replay(decode_envelope(e) for e in history)


def max_actions_in_flight(history: Sequence[EventEnvelope]) -> int:
    """The most action attempts scheduled and not yet finished at any point of a history."""
    open_keys: set[str] = set()
    most = 0
    for e in history:
        if e.type == "ActionScheduled":
            open_keys.add(e.data["key"])
            most = max(most, len(open_keys))
        elif e.type in ("ActionCompleted", "ActionFailed"):
            open_keys.discard(e.data["key"])
    return most


async def drain_recording(rt: Runtime, consumer: str = "recorder") -> list[Message]:
    """Work like ``run_until_idle`` but return every message that was processed."""
    seen: list[Message] = []
    while True:
        published = await rt.tick()
        deliveries = await rt.ports.stream.consume(rt.settings.group, consumer)
        for delivery in deliveries:
            seen.append(delivery.message)
            await rt.process(delivery)
        if not published and not deliveries:
            return seen


async def engine_error(awaitable: Awaitable[object]) -> WorkflowEngineError:
    """Await ``awaitable`` and return the engine error it raised (fail when none)."""
    with pytest.raises(WorkflowEngineError) as info:
        await awaitable
    return info.value


async def step_output(rt: Engine, run_id: str, key: str, *, tenant: str = TENANT) -> Any:
    """The output recorded when the step instance ``key`` completed."""
    for e in await rt.history(tenant, run_id):
        if e.type == "StepCompleted" and e.data["key"] == key:
            return e.data["output"]
    raise AssertionError(f"step {key} never completed")
