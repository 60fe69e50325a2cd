"""Actions of the onboarding example (stand-ins for identity and messaging systems)."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

from wfdomain import ActionContext, ActionRegistry

actions = ActionRegistry()


class NewAccount(BaseModel):
    system: str
    email: str


class Account(BaseModel):
    account_id: str


@actions.action()
async def create_account(inp: NewAccount, ctx: ActionContext) -> Account:
    digest = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:8]
    return Account(account_id=f"{inp.system}-{digest}")


class Grant(BaseModel):
    system: str
    account_id: str
    role: str


class Granted(BaseModel):
    role: str


@actions.action()
async def grant_role(inp: Grant) -> Granted:
    return Granted(role=inp.role)


class Welcome(BaseModel):
    email: str
    name: str
    accounts: list[str]


class Sent(BaseModel):
    message_id: str


@actions.action()
async def send_welcome_pack(inp: Welcome, ctx: ActionContext) -> Sent:
    return Sent(message_id=f"welcome-{len(inp.accounts)}-{ctx.run_id[:8]}")


class Survey(BaseModel):
    email: str


@actions.action()
async def send_survey(inp: Survey) -> Sent:
    return Sent(message_id="survey-1")
