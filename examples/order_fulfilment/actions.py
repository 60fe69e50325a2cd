"""Actions of the order fulfilment example: stand-ins for a payment gateway, a stock
service, a carrier and a mailer. Each uses the idempotency key it is given, as a real
integration would pass it to the remote system."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

from wfdomain import ActionContext, ActionRegistry

actions = ActionRegistry()


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class FraudCheck(BaseModel):
    customer_id: str
    amount: float


class FraudScore(BaseModel):
    score: float


@actions.action()
async def check_fraud(inp: FraudCheck) -> FraudScore:
    return FraudScore(score=0.1 if inp.amount < 5_000 else 0.95)


class Charge(BaseModel):
    order_id: str
    amount: float
    card_token: str


class Charged(BaseModel):
    charge_id: str
    amount: float


class GatewayTimeoutError(Exception):
    """The demo gateway's transient failure."""


@actions.action()
async def charge_payment(inp: Charge, ctx: ActionContext) -> Charged:
    if ctx.attempt == 1:
        raise GatewayTimeoutError("payment gateway timed out (demo: first attempt)")
    return Charged(charge_id=f"ch_{_short(ctx.idempotency_key)}", amount=inp.amount)


class Reserve(BaseModel):
    order_id: str
    sku: str
    qty: int


class Reservation(BaseModel):
    reservation_id: str
    sku: str


@actions.action()
async def reserve_stock(inp: Reserve, ctx: ActionContext) -> Reservation:
    return Reservation(reservation_id=f"rs_{_short(ctx.idempotency_key)}", sku=inp.sku)


class Shipment(BaseModel):
    order_id: str
    skus: list[str]
    express: bool


class Shipped(BaseModel):
    tracking_number: str
    carrier: str


@actions.action()
async def create_shipment(inp: Shipment, ctx: ActionContext) -> Shipped:
    carrier = "DHL Express" if inp.express else "Royal Mail"
    return Shipped(tracking_number=f"TRK{_short(ctx.idempotency_key).upper()}", carrier=carrier)


class Email(BaseModel):
    to: str
    template: str
    tracking_number: str


class Sent(BaseModel):
    message_id: str


@actions.action()
async def send_email(inp: Email, ctx: ActionContext) -> Sent:
    return Sent(message_id=f"msg_{_short(ctx.idempotency_key)}")
