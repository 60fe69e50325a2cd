"""Temporal activities: one action attempt, and reading a definition for a child run.

An action attempt runs through the same ``ActionRegistry`` the local engines use, with the
same ``ActionContext`` (the idempotency key is the activity id's prefix and the same on
every attempt). A failure is raised as a non-retryable ``ApplicationError`` whose details
carry the error exactly as the local runtime records it: retries are the interpreter's
(so histories are the same on every engine), each attempt is one Temporal activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from wfadapters.temporal import wire
from wfdomain.actions import ActionContext, ActionRegistry
from wfdomain.errors import ActionFailedError, ErrorCode, WorkflowEngineError

__all__ = ["Activities"]


def _raise(error: dict[str, Any]) -> ApplicationError:
    return ApplicationError(str(error.get("message")), error, type=str(error.get("code")),
                            non_retryable=True)


class Activities:
    """The activities a worker registers; bound to its action registry and client."""

    def __init__(self, actions: ActionRegistry, client: Client) -> None:
        self.actions = actions
        self.client = client

    @activity.defn(dynamic=True)
    async def execute_action(self, args: Sequence[RawValue]) -> Any:
        """Run one action attempt; return its output or raise its error.

        Dynamic: the activity type is the action's name, so Temporal's tools show
        ``double`` or ``charge_card``, not one opaque type for every action.
        """
        body: dict[str, Any] = activity.payload_converter().from_payload(args[0].payload, dict)
        ctx = ActionContext(tenant=body["tenant"], run_id=body["run_id"], step_key=body["key"],
                            idempotency_key=body["idempotency_key"], attempt=body["attempt"])
        timeout = body.get("timeout_s")
        try:
            return await asyncio.wait_for(
                self.actions.invoke(body["action"], body["input"], ctx), timeout)
        except TimeoutError:
            raise _raise({"code": ErrorCode.ACTION_TIMEOUT, "retryable": True,
                          "message": f"action {body['action']!r} exceeded {timeout}s"}) from None
        except asyncio.CancelledError:
            raise
        except (ActionFailedError, WorkflowEngineError) as e:
            raise _raise({**e.to_dict(), "retryable": e.retryable}) from e
        except Exception as e:  # an action's own exception is its outcome, not a crash
            raise _raise({"code": ErrorCode.ACTION_FAILED, "retryable": True,
                          "message": f"{type(e).__name__}: {e}"}) from e

    @activity.defn(name=wire.DEFINITION_ACTIVITY)
    async def load_definition(self, body: dict[str, Any]) -> dict[str, Any]:
        """Return a registered definition document (for starting a child run)."""
        handle = self.client.get_workflow_handle(
            wire.tenant_workflow_id(body["queue"], body["tenant"]))
        try:
            stored = await handle.query("definition", args=[body["definition_id"],
                                                            body["version"]])
        except Exception as e:
            raise _raise({"code": ErrorCode.DEFINITION_NOT_FOUND, "retryable": False,
                          "message": f"definition {body['definition_id']} is not registered "
                                     f"({type(e).__name__})"}) from e
        if stored is None:
            which = body["definition_id"] + (f" v{body['version']}" if body["version"] else "")
            raise _raise({"code": ErrorCode.DEFINITION_NOT_FOUND, "retryable": False,
                          "message": f"definition {which} is not registered", "path": None,
                          "details": {}})
        document: dict[str, Any] = stored["document"]
        return document
