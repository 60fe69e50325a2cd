"""What the routes share: the engine, the key store, the served definitions, the options."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from wfapps.keys import authenticate
from wfdomain.actions import ActionRegistry
from wfdomain.definition import Definition
from wfdomain.engine import Engine
from wfdomain.errors import ErrorCode, WorkflowEngineError
from wfdomain.ports import ApiKeyStore

__all__ = ["ApiOptions", "Services", "TenantDep", "ServicesDep", "services", "tenant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiOptions:
    """How the API behaves.

    Attributes:
        max_body_bytes: Larger request bodies are refused with 413 ``REQUEST_TOO_LARGE``.
        max_list: The most runs one list request returns.
        console: Serve the operator console at ``/console/``.
        move_targets: Engines runs may be moved to, by name (``POST /v1/runs/{id}/move``
            names one; a client never sends a URL, so it cannot point the server at an
            engine the operator did not list).
        stuck_after: How long without progress makes a run stuck in the API's reports
            and the console's banners (``WF_STUCK_AFTER_S`` under ``wf serve``); None
            takes the engine's own (a local runtime's ``stuck_after``, 5 minutes on
            Temporal).
    """

    max_body_bytes: int = 1_048_576
    max_list: int = 500
    console: bool = True
    move_targets: Mapping[str, str] = field(default_factory=dict)
    stuck_after: timedelta | None = None


@dataclass(slots=True, kw_only=True)
class Services:
    """The engine and what else the routes use; one per app."""

    engine: Engine
    actions: ActionRegistry
    keys: ApiKeyStore
    catalog: Sequence[Definition]
    options: ApiOptions
    registered: set[str] = field(default_factory=set)

    async def ensure_catalog(self, tenant: str) -> None:
        """Register the served definitions for ``tenant`` (once per process)."""
        if tenant in self.registered:
            return
        for definition in self.catalog:
            await self.engine.register_definition(tenant, definition)
        self.registered.add(tenant)


class _KeyError(WorkflowEngineError):
    default_code = ErrorCode.API_KEY_INVALID


def services(request: Request) -> Services:
    """The app's services."""
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]

_bearer = HTTPBearer(auto_error=False, description="An API key made by `wf keys create`.")


async def tenant(
    svc: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The tenant of the request's API key (``Authorization: Bearer wf_...``)."""
    if credentials is None:
        raise _KeyError("missing API key: send 'Authorization: Bearer <key>'")
    record = await authenticate(svc.keys, credentials.credentials)
    if record is None:
        raise _KeyError("unknown or revoked API key")
    return record.tenant


TenantDep = Annotated[str, Depends(tenant)]
