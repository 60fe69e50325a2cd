"""Embedding the workflow engine in an existing asyncio service.

The "service" here is a tiny billing service. It owns its event loop and its own tasks;
the engine is one more component of it:

1. actions are plain async functions registered on an ``ActionRegistry``;
2. the engine is opened from the same configuration the rest of the service reads
   (``WF_ENGINE_URL``, ``WF_TENANT``), with ``wfapps.open_runtime``;
3. a definition built in Python is validated with ``parse_definition`` and registered;
4. a background worker task drives runs (``tick`` + ``work_once``) until the service stops;
5. request handlers start runs and submit external events (a payment webhook here); both
   return at once, the worker does the work.

Run it with ``python examples/embedding/service.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
from collections.abc import Callable

from pydantic import BaseModel

from wfapps import Settings, open_runtime
from wfdomain import (
    ActionContext,
    ActionRegistry,
    Definition,
    RunSummary,
    Runtime,
    WorkflowEngineError,
    parse_definition,
)

# -- 1. actions ---------------------------------------------------------------------------

actions = ActionRegistry()


class NewInvoice(BaseModel):
    order_id: str
    customer: str
    amount: float


class Invoice(BaseModel):
    invoice_id: str
    amount: float


@actions.action()
async def create_invoice(inp: NewInvoice, ctx: ActionContext) -> Invoice:
    # A real integration passes ctx.idempotency_key to the billing system, so a
    # redelivered message or a retried attempt never creates a second invoice.
    digest = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:8]
    return Invoice(invoice_id=f"inv_{digest}", amount=inp.amount)


class Receipt(BaseModel):
    to: str
    invoice_id: str
    paid: float


class ReceiptSent(BaseModel):
    message_id: str


@actions.action()
async def send_receipt(inp: Receipt) -> ReceiptSent:
    return ReceiptSent(message_id=f"rcpt-{inp.invoice_id}")


# -- 2. a definition, built in Python ------------------------------------------------------

DEFINITION: Definition = parse_definition({
    "id": "invoice_collection",
    "version": 1,
    "input_schema": {
        "type": "object",
        "required": ["order_id", "customer", "amount"],
        "properties": {
            "order_id": {"type": "string", "minLength": 1},
            "customer": {"type": "string"},
            "amount": {"type": "number", "exclusiveMinimum": 0},
        },
    },
    "steps": [
        {
            "id": "invoice",
            "type": "action",
            "action": "create_invoice",
            "input": {"order_id": "input.order_id", "customer": "input.customer",
                      "amount": "input.amount"},
            "retry": {"max_attempts": 3, "initial_interval_s": 0.1},
        },
        {
            # Resumed by a `payment.received` event whose correlation key is the order id
            # and whose payload covers the amount; after an hour the run fails instead.
            "id": "payment",
            "type": "wait_event",
            "event": "payment.received",
            "correlation": "input.order_id",
            "filter": "event.amount >= input.amount",
            "timeout_s": 3600,
            "on_timeout": [
                {"type": "fail", "code": "PAYMENT_OVERDUE",
                 "message": "'no payment for ' & input.order_id"},
            ],
        },
        {
            "id": "receipt",
            "type": "action",
            "action": "send_receipt",
            "input": {"to": "input.customer", "invoice_id": "steps.invoice.invoice_id",
                      "paid": "steps.payment.payload.amount"},
        },
    ],
    "output": "{'invoice_id': steps.invoice.invoice_id, "
              "'paid': steps.payment.payload.amount, "
              "'receipt': steps.receipt.message_id, 'paid_at': $nowIso()}",
})


# -- 3. the worker: one more background task of the service --------------------------------


async def run_worker(runtime: Runtime, stop: asyncio.Event, *, idle_pause: float = 0.05) -> None:
    """Drive runs until ``stop`` is set: publish due timers, process queued messages.

    When there was nothing to do, pause briefly (waking at once when asked to stop).
    """
    while not stop.is_set():
        try:
            handled = await runtime.tick() + await runtime.work_once()
        except WorkflowEngineError as e:  # e.g. a backend briefly unavailable
            print(f"worker: {e}", file=sys.stderr)
            handled = 0
        if handled == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle_pause)


async def wait_for_run(
    runtime: Runtime, tenant: str, run_id: str, until: Callable[[RunSummary], bool],
    *, timeout_s: float = 10.0, poll_s: float = 0.02,
) -> RunSummary:
    """Poll a run's summary until ``until`` holds or the deadline passes (then raise)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        run = await runtime.get_run(tenant, run_id)
        if until(run) or run.finished:
            return run
        if loop.time() > deadline:
            raise TimeoutError(f"run {run_id} is still {run.status} after {timeout_s}s")
        await asyncio.sleep(poll_s)


# -- 4. the service ------------------------------------------------------------------------


async def main() -> int:
    settings = Settings.from_env(os.environ)
    tenant = settings.tenant
    async with open_runtime(settings, actions) as runtime:
        await runtime.register_definition(tenant, DEFINITION)
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(runtime, stop), name="wf-worker")
        try:
            # A request handler starts a run: it returns as soon as the run is recorded.
            started = await runtime.start_run(
                tenant, DEFINITION.id,
                {"order_id": "ord-7", "customer": "ada@example.com", "amount": 120.0},
            )
            print(f"started run {started.run_id} ({started.status}) on {settings.engine_url}")

            # Events are not buffered: one that arrives before the wait is open routes
            # nothing (it is audited as unmatched). Here we wait until the run listens.
            run = await wait_for_run(runtime, tenant, started.run_id, lambda r: bool(r.waits))
            for wait in run.waits:
                print(f"waiting for {wait.event_name!r} with correlation key "
                      f"{wait.correlation_key!r}")

            # The payment provider's webhook arrives: submit it and return at once (HTTP 202).
            event_id = await runtime.submit_event(
                tenant, "payment.received", {"amount": 120.0, "provider_ref": "pay_123"},
                correlation_key="ord-7",
            )
            print(f"submitted event {event_id}")

            run = await wait_for_run(runtime, tenant, started.run_id, lambda r: r.finished)
            state = await runtime.get_state(tenant, run.run_id)
            print(f"status: {run.status}")
            print(f"result: {state.output if run.status == 'completed' else state.error}")
        finally:
            stop.set()
            await worker
    return 0 if run.status == "completed" else 1


def cli() -> int:
    """Run the service; an engine error (e.g. an unsupported WF_ENGINE_URL) exits 3."""
    try:
        return asyncio.run(main())
    except WorkflowEngineError as e:
        print(f"error [{e.code}]: {e.message}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(cli())
