"""Actions of the ticket approval example (stand-ins for a ticketing system and a vendor)."""

from __future__ import annotations

from pydantic import BaseModel

from wfdomain import ActionContext, ActionRegistry

actions = ActionRegistry()


class Ticket(BaseModel):
    summary: str
    amount: float


class Triage(BaseModel):
    priority: str
    queue: str


@actions.action()
async def classify_ticket(inp: Ticket) -> Triage:
    priority = "low" if inp.amount < 200 else "high" if inp.amount > 5_000 else "normal"
    return Triage(priority=priority, queue="procurement")


class VendorOrder(BaseModel):
    ticket_id: str
    amount: float


class Placed(BaseModel):
    vendor_order_id: str


@actions.action()
async def place_vendor_order(inp: VendorOrder, ctx: ActionContext) -> Placed:
    return Placed(vendor_order_id=f"PO-{inp.ticket_id}-{ctx.attempt}")


class Notice(BaseModel):
    to: str
    message: str


@actions.action()
async def notify(inp: Notice) -> dict[str, str]:
    return {"sent_to": inp.to}


class Close(BaseModel):
    ticket_id: str
    approved_by: str
    confirmed: bool


class Closed(BaseModel):
    closed: bool


@actions.action()
async def close_ticket(inp: Close) -> Closed:
    return Closed(closed=True)
