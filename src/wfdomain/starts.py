"""How the runtime starts a run: queued for the workers, or carried in the caller.

``Runtime.start_run`` records a run with an ``advance`` message for the workers;
``Runtime.execute_run`` records it with its first decision and carries it through in
place. Both start from the definition version ``KnownDefinitions`` holds as the latest
when none is named, and both record the start under the tenant's limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from wfdomain import commands as cmd
from wfdomain.codec import to_envelope
from wfdomain.definition import Definition
from wfdomain.errors import (
    ConcurrencyConflictError,
    DefinitionSupersededError,
    QuotaFullError,
    RunAlreadyExistsError,
)
from wfdomain.events import RunPaused, RunStarted, WorkflowEvent
from wfdomain.in_place import run_in_place
from wfdomain.inputs import encode_input
from wfdomain.projection import summarize
from wfdomain.quota import Admission
from wfdomain.records import ExecutedRun, HeldMessage, Message, RunSummary
from wfdomain.schema import validate_against_schema
from wfdomain.starting import run_started
from wfdomain.state import RunState, replay

if TYPE_CHECKING:
    from wfdomain.runtime import Runtime

__all__ = ["execute", "queue"]

_T = TypeVar("_T")

SUPERSEDED_TRIES = 3
"""Starts of one run from a stale latest version before reading the latest every time."""


async def queue(
    rt: Runtime, tenant: str, definition_id: str, run_input: Any, *, version: int | None,
    run_id: str, parent: tuple[str, str] | None, replay_of: str | None,
) -> RunSummary:
    """``Runtime.start_run``: the run recorded with its ``advance`` message."""

    async def start(definition: Definition, latest: bool) -> RunSummary:
        started = _first_event(rt, definition, tenant, run_input, run_id=run_id,
                               parent=parent, replay_of=replay_of)
        advance = rt._message("advance", tenant, run_id,
                              {"input": encode_input(cmd.Advance())})
        state, _ = await _record(rt, [started], replay([started]), parent=parent,
                                 messages=[advance], latest_definition=latest)
        return summarize(state)

    return await _from_definition(rt, tenant, definition_id, version, start)


async def execute(
    rt: Runtime, tenant: str, definition_id: str, run_input: Any, *, version: int | None,
    run_id: str,
) -> ExecutedRun:
    """``Runtime.execute_run``: recorded with its first decision, carried in place."""

    async def start(definition: Definition, latest: bool) -> _Begun:
        started = _first_event(rt, definition, tenant, run_input, run_id=run_id,
                               parent=None, replay_of=None)
        state = replay([started])
        decision = await rt._decide(definition, state, cmd.Advance(), started.at)
        messages, held, holding = rt._outgoing(state, decision, started.at, in_place=True)
        decided = replay(decision.events, state)
        stored, admitted = await _record(
            rt, [started, *decision.events], decided, parent=None, messages=messages,
            held=holding, latest_definition=latest)
        return state, decision, stored, admitted, held

    state, decision, decided, admitted, held = await _from_definition(
        rt, tenant, definition_id, version, start)
    if not admitted:  # paused for quota: the workers resume it
        return ExecutedRun.of(summarize(decided), None)
    await rt._snapshot_if_due(state, decided)
    await rt._carry_out(state, decision.commands)
    # No lease: nobody else sees this run's work while its messages are held, and the
    # expected version of every append still guards it should one be released.
    while held is not None:
        decided, held, _ = await run_in_place(rt, decided, held, None)
    return ExecutedRun.of(summarize(decided), decided.output)


_Begun = tuple[RunState, cmd.Decision, RunState, bool, Message | None]
"""What ``execute``'s start leaves: the first state, the first decision, the state
stored, whether the tenant's limit admitted it (else it is stored paused), the message of
the action to run in place."""


async def _from_definition(
    rt: Runtime, tenant: str, definition_id: str, version: int | None,
    start: Callable[[Definition, bool], Awaitable[_T]],
) -> _T:
    """``start(definition, latest)`` with the run's definition version.

    Without ``version``: the latest version the runtime knows, which the start's append
    checks (``latest``); should a newer one be registered, it is read and the run started
    again from it (``KnownDefinitions``).
    """
    for _ in range(SUPERSEDED_TRIES - 1):
        known = rt._known.latest(tenant, definition_id) if version is None else None
        try:
            return await start(known or await rt.definition(tenant, definition_id, version),
                               version is None)
        except DefinitionSupersededError:
            rt._known.forget_latest(tenant, definition_id)
    return await start(await rt.definition(tenant, definition_id, version), version is None)


def _first_event(
    rt: Runtime, definition: Definition, tenant: str, run_input: Any, *, run_id: str,
    parent: tuple[str, str] | None, replay_of: str | None,
) -> RunStarted:
    """Check a new run's actions and input; its first event."""
    rt.actions.check_definition(definition)
    validate_against_schema(run_input, definition.input_schema, what="run input")
    return run_started(
        definition, run_input, at=rt.ports.clock.now(), tenant=tenant, run_id=run_id,
        engine=rt.settings.engine, queue=rt.settings.queue, parent=parent,
        replay_of=replay_of,
    )


async def _record(
    rt: Runtime, events: Sequence[WorkflowEvent], state: RunState, *,
    parent: tuple[str, str] | None, messages: Sequence[Message] = (),
    held: Sequence[HeldMessage] = (), latest_definition: bool = False,
) -> tuple[RunState, bool]:
    """Append a new run's first events (``state`` folds them).

    Returns the stored state and whether the tenant's limit admitted the run; a run it
    refuses is stored paused instead (its ``RunStarted`` and ``RunPaused``).
    ``latest_definition``: see ``EventStore.append``.
    """
    started = events[0]
    assert isinstance(started, RunStarted)
    tenant, run_id = state.tenant, state.run_id
    envelopes = [to_envelope(tenant, run_id, v, e) for v, e in enumerate(events, start=1)]
    # Child runs are part of their root run's work and hold its slot: limiting them could
    # leave every slot to a parent waiting on its own paused child (a deadlock).
    limit = rt._quota.limit_for(tenant) if parent is None else None
    admitted = True
    try:
        try:
            # behind_paused: a new run queues behind the tenant's paused ones (FIFO).
            await rt.ports.events.append(
                envelopes, expected_version=0, summary=summarize(state),
                messages=messages, held=held,
                admission=None if limit is None else Admission(limit=limit, behind_paused=True),
                latest_definition=latest_definition,
            )
        except QuotaFullError:
            paused = RunPaused(at=started.at)
            state, admitted = replay([started, paused]), False
            # The admit message: a run that finished after the store counted may have
            # looked for paused runs before this one was stored; whoever handles this
            # message looks again once it is.
            await rt.ports.events.append(
                [envelopes[0], to_envelope(tenant, run_id, 2, paused)],
                expected_version=0, summary=summarize(state),
                messages=[rt._message("admit_runs", tenant, None, {})],
                latest_definition=latest_definition,
            )
    except ConcurrencyConflictError:
        raise RunAlreadyExistsError(f"run {run_id} already exists") from None
    rt._remember(state)  # a worker of this process starts from it without a read
    return state, admitted
