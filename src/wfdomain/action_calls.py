"""Running one ``execute_action`` message's action, and reporting its outcome to the run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wfdomain import commands as cmd
from wfdomain.actions import ActionContext, ActionRegistry
from wfdomain.errors import ActionFailedError, ErrorCode, WorkflowEngineError
from wfdomain.records import ActionResult, Message
from wfdomain.telemetry import Telemetry

__all__ = ["ActionListener", "ActionRun", "invoke_action", "report_outcome"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRun:
    """One action attempt a runtime ran, as its ``action_listeners`` are told of it.

    Attributes:
        message: The attempt's ``execute_action`` message: delivered from the stream, or
            held by the worker that ran it in place.
        result: The outcome, as the runtime records it.
        in_place: Run by the worker whose own decision scheduled it (see
            ``RuntimeSettings.run_actions_in_place``), not delivered as a message.
        started_at: When the action was called, by the runtime's clock.
        finished_at: When its outcome was known, by the runtime's clock.
    """

    message: Message
    result: ActionResult
    in_place: bool
    started_at: datetime
    finished_at: datetime


ActionListener = Callable[[ActionRun], None]
"""Told of every action attempt a runtime ran (the worker service logs and counts them).

Called on the runtime's task after the attempt, before its outcome is appended; it must
be quick and must not raise.
"""


async def invoke_action(actions: ActionRegistry, telemetry: Telemetry, message: Message,
                        rkey: str) -> ActionResult:
    """Run the action an ``execute_action`` message names; its outcome, never a raise.

    The outcome is stored under ``rkey`` (the attempt's result key): a timeout, a failure
    the action raised or any other exception of the action's is a failed outcome (with
    its code and whether it may be retried), not a crash of the worker.
    """
    body = message.body
    ctx = ActionContext(tenant=message.tenant, run_id=message.run_id or "",
                        step_key=body["key"], idempotency_key=body["idempotency_key"],
                        attempt=body["attempt"])
    call = actions.invoke(body["action"], body["input"], ctx)
    error: dict[str, Any]
    span = telemetry.span(f"wf.action {body['action']}", {
        "wf.action": body["action"], "wf.run_id": ctx.run_id, "wf.step_key": ctx.step_key,
        "wf.idempotency_key": ctx.idempotency_key, "wf.attempt": ctx.attempt,
    })
    try:
        with span:
            output = await asyncio.wait_for(call, body["timeout_s"])
        return ActionResult(result_key=rkey, idempotency_key=ctx.idempotency_key, ok=True,
                            output=output)
    except TimeoutError:
        error = {"code": ErrorCode.ACTION_TIMEOUT, "retryable": True,
                 "message": f"action {body['action']!r} exceeded {body['timeout_s']}s"}
    except ActionFailedError as e:
        error = {**e.to_dict(), "retryable": e.retryable}
    except WorkflowEngineError as e:
        error = {**e.to_dict(), "retryable": e.retryable}
    except Exception as e:  # an action's own exception is its outcome, not a crash
        error = {"code": ErrorCode.ACTION_FAILED, "retryable": True,
                 "message": f"{type(e).__name__}: {e}"}
    return ActionResult(result_key=rkey, idempotency_key=ctx.idempotency_key, ok=False,
                        error=error)


def report_outcome(body: dict[str, Any], result: ActionResult) -> cmd.ReportOutcome:
    """The input that reports an ``execute_action`` message's outcome to its run."""
    return cmd.ReportOutcome(key=body["key"], attempt=body["attempt"], ok=result.ok,
                             output=result.output, error=result.error)
