"""Helpers for the run archive scenarios of the engine contract."""

from __future__ import annotations

from wfdomain import keys
from wfdomain.actions import ActionContext
from wfdomain.records import ActionResult, Message
from wfdomain.runtime import Runtime


async def run_without_reporting(rt: Runtime, message: Message) -> None:
    """Do what a worker does with an ``execute_action`` message, then die before reporting.

    The action runs and its outcome is recorded in the ledger, but the run's history never
    hears of it: the state a crash between the two leaves behind.
    """
    body = message.body
    assert message.run_id is not None
    ctx = ActionContext(tenant=message.tenant, run_id=message.run_id, step_key=body["key"],
                        idempotency_key=body["idempotency_key"], attempt=body["attempt"])
    output = await rt.actions.invoke(body["action"], body["input"], ctx)
    await rt.ports.ledger.record_result(ActionResult(
        result_key=keys.result_key(ctx.idempotency_key, ctx.attempt),
        idempotency_key=ctx.idempotency_key, ok=True, output=output,
    ))
