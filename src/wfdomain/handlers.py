"""What a worker does with each kind of message (``Runtime.process`` calls ``handle``)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from wfdomain import commands as cmd
from wfdomain import keys
from wfdomain.action_calls import report_outcome
from wfdomain.errors import (
    RunAlreadyExistsError,
    RunFinishedError,
    RunNotFoundError,
    WorkflowEngineError,
)
from wfdomain.in_place import report_attempt
from wfdomain.inputs import decode_input, encode_input
from wfdomain.quota_admit import admit_runs
from wfdomain.records import ActionResult, Message

if TYPE_CHECKING:
    from wfdomain.runtime import Runtime

__all__ = ["execute_action", "handle", "route_event", "start_child"]


async def handle(rt: Runtime, message: Message) -> None:
    """Handle one message of any kind; errors are the caller's (``Runtime.process``)."""
    match message.kind:
        case "advance" | "deliver":
            assert message.run_id is not None
            inp = decode_input(message.body["input"])
            await rt._apply(message.tenant, message.run_id, inp, in_place=True)
        case "route_event":
            await route_event(rt, message)
        case "admit_runs":
            await admit_runs(rt, message.tenant)
        case "execute_action":
            await execute_action(rt, message)
        case "start_child":
            assert message.run_id is not None
            await start_child(rt, message.tenant, message.run_id, message.body)
        case "cancel_child":
            with contextlib.suppress(RunFinishedError, RunNotFoundError):
                await rt.cancel_run(message.tenant, message.body["child_run_id"],
                                    reason=message.body["reason"])


async def route_event(rt: Runtime, message: Message) -> None:
    """Deliver an external event to every run whose open wait its correlation matches.

    An event that resolves no correlation, or matches no wait, is audited, not retried.
    """
    body, tenant = message.body, message.tenant
    correlation = rt._resolver.resolve(body["name"], body["payload"], body["correlation_key"])
    if correlation is None:
        await rt._audit(tenant, "correlation.unresolved", message.run_id, body)
        return
    matches = await rt.ports.events.find_waits(tenant, body["name"], correlation)
    if message.run_id is not None:
        matches = [m for m in matches if m[0] == message.run_id]
    delivered = 0
    for run_id, step_key in matches:
        decision = await rt._apply(tenant, run_id, cmd.DeliverEvent(
            key=step_key, event_id=body["event_id"], event_name=body["name"],
            payload=body["payload"],
        ), in_place=True)
        delivered += bool(decision.events)
    if not delivered:
        await rt._audit(tenant, "event.unmatched", message.run_id,
                          {**body, "resolved_correlation_key": correlation,
                           "candidates": len(matches)})


async def execute_action(rt: Runtime, message: Message) -> None:
    """Run a delivered action attempt and report it (a redelivery: the stored outcome)."""
    body, tenant = message.body, message.tenant
    assert message.run_id is not None
    run_id = message.run_id
    idem, attempt = body["idempotency_key"], body["attempt"]
    rkey = keys.result_key(idem, attempt)
    stored = await rt.ports.ledger.get_result(rkey)
    if stored is not None:  # a redelivery: report the outcome, never run it again
        await rt._apply(tenant, run_id, report_outcome(body, stored), in_place=True)
        return
    state = await rt._load(tenant, run_id)
    if state.status == "new" or state.finished:
        # Cancelled (or failed) while the message was queued: no side effect now.
        await rt._audit(tenant, "action.skipped", run_id, {
            "key": body["key"], "attempt": attempt,
            "reason": "run not found" if state.status == "new" else "run finished"})
        return
    result = await rt._invoke(message, rkey, in_place=False)

    async def append(report: cmd.ReportOutcome, recorded: ActionResult | None) -> object:
        # One commit records the outcome and appends the events that report it; the
        # state read above is used first (a conflict reloads it).
        return await rt._apply(tenant, run_id, report, result=recorded,
                               loaded=state if recorded is not None else None, in_place=True)

    await report_attempt(rt, body, rkey, result, append)


async def start_child(rt: Runtime, tenant: str, parent_run_id: str, body: dict[str, Any]) -> None:
    """Handle ``start_child``: recorded with the parent's append, so never lost."""
    try:
        await rt.start_run(
            tenant, body["definition_id"], body["input"],
            version=body["definition_version"], run_id=body["child_run_id"],
            parent=(parent_run_id, body["parent_step_key"]),
        )
    except RunAlreadyExistsError:
        pass  # a redelivered message: the child was started the first time
    except WorkflowEngineError as e:
        if e.retryable:
            raise  # left pending: started when the message comes back
        failed = cmd.ChildFinished(child_run_id=body["child_run_id"], status="failed",
                                   error=e.to_dict())
        await rt._enqueue("deliver", tenant, parent_run_id,
                            {"input": encode_input(failed)})
