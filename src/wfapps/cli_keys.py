"""``wf keys create|revoke|list``: the HTTP API's per-tenant keys (stored hashed)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from wfadapters.system import SystemClock
from wfapps.bootstrap import open_api_keys
from wfapps.cli_common import (
    EXIT_NEGATIVE,
    EngineOption,
    JsonOption,
    emit_json,
    err,
    out,
    run_command,
    settings_for,
)
from wfapps.keys import create_api_key
from wfapps.settings import Settings
from wfdomain.api_keys import ApiKeyRecord

__all__ = ["keys_app"]

keys_app = typer.Typer(no_args_is_help=True, help="Create, revoke and list HTTP API keys.")


def _json(record: ApiKeyRecord) -> dict[str, Any]:
    return {"key_id": record.key_id, "tenant": record.tenant, "name": record.name,
            "created_at": record.created_at.isoformat(),
            "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None}


async def _create(settings: Settings, tenant: str, name: str) -> tuple[ApiKeyRecord, str]:
    async with open_api_keys(settings) as store:
        return await create_api_key(store, tenant, name, SystemClock().now())


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts as.")],
    name: Annotated[str, typer.Option(help="A label: who or what uses the key.")] = "",
    engine: EngineOption = None, as_json: JsonOption = False,
) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    if not tenant:
        raise typer.BadParameter("--tenant must not be empty")
    record, key = run_command(_create(settings_for(engine, None), tenant, name))
    if as_json:
        emit_json({**_json(record), "key": key})
    else:
        out.print(key, markup=False)
        err.print(f"key {record.key_id} for tenant {tenant!r} (shown once; store it now)")


async def _revoke(settings: Settings, key_id: str) -> bool:
    async with open_api_keys(settings) as store:
        return await store.revoke_key(key_id, at=SystemClock().now())


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id (see `wf keys list`).")],
           engine: EngineOption = None) -> None:
    """Revoke a key: requests made with it get 401 from now on (exit 1 if unknown)."""
    if run_command(_revoke(settings_for(engine, None), key_id)):
        out.print(f"revoked {key_id}", markup=False)
        return
    err.print(f"no active key {key_id}", markup=False)
    raise typer.Exit(EXIT_NEGATIVE)


async def _list(settings: Settings, tenant: str | None) -> list[ApiKeyRecord]:
    async with open_api_keys(settings) as store:
        return await store.list_keys(tenant=tenant)


@keys_app.command("list")
def list_keys(tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
              engine: EngineOption = None, as_json: JsonOption = False) -> None:
    """List keys (never the keys themselves, which are not stored)."""
    records = run_command(_list(settings_for(engine, None), tenant))
    if as_json:
        emit_json([_json(r) for r in records])
        return
    table = Table()
    for column in ("key id", "tenant", "name", "created", "revoked"):
        table.add_column(column)
    for r in records:
        row = _json(r)
        table.add_row(r.key_id, r.tenant, r.name, row["created_at"], row["revoked_at"] or "")
    out.print(table)
