"""Actions of the app tests' vault workflow."""

from __future__ import annotations

from pydantic import BaseModel

from wfdomain import ActionRegistry

actions = ActionRegistry()


class Check(BaseModel):
    user: str
    token: str


@actions.action()
async def check_token(inp: Check) -> dict[str, object]:
    # Echoes the token: views must mask it here too (masking is by value).
    return {"valid": True, "seen_token": inp.token}


class Grant(BaseModel):
    user: str
    days: int


@actions.action()
async def grant_access(inp: Grant) -> dict[str, object]:
    return {"granted": True, "days": inp.days}
