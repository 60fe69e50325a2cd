"""Actions run in place by the worker whose decision scheduled them.

See ``RuntimeSettings.run_actions_in_place``: the action's message is held by the store
until the append that reports the outcome releases it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from wfdomain import commands as cmd
from wfdomain import keys
from wfdomain.action_calls import report_outcome
from wfdomain.errors import LeaseLostError, NondeterminismError, WorkflowEngineError
from wfdomain.records import ActionResult, Lease, Message
from wfdomain.state import RunState

if TYPE_CHECKING:
    from wfdomain.runtime import Runtime

__all__ = ["renewed", "report_attempt", "run_in_place", "take_in_place"]

_T = TypeVar("_T")


def take_in_place(rt: Runtime, messages: list[Message]) -> Message | None:
    """Remove and return the first ``execute_action`` message this worker can run."""
    if not rt.settings.run_actions_in_place or rt._handing_over:
        return None
    for i, message in enumerate(messages):
        if message.kind == "execute_action" and message.body["action"] in rt.actions.names():
            return messages.pop(i)
    return None


async def run_in_place(
    rt: Runtime, state: RunState, message: Message, lease: Lease | None,
) -> tuple[RunState, Message | None, Lease | None]:
    """Run a held ``execute_action`` message's action and append its report.

    What ``handlers.execute_action`` does for a consumed message, minus the reads: the
    attempt was scheduled by this worker's own append a moment ago, and ``state``
    is what that append stored. The report's append releases the held message.
    Returns the state after it, the next held message and the lease (renewed).
    """
    body, loaded = message.body, state
    rkey = keys.result_key(body["idempotency_key"], body["attempt"])
    result = await rt._invoke(message, rkey, in_place=True)
    lease = await renewed(rt, lease)

    async def append(report: cmd.ReportOutcome, recorded: ActionResult | None,
                     ) -> tuple[cmd.Decision, RunState, Message | None]:
        return await rt._decide_and_append(
            loaded.tenant, loaded.run_id, report, lease, result=recorded,
            loaded=loaded if recorded is not None else None, in_place=True,
            release=(message.id,))

    _, state, held = await report_attempt(rt, body, rkey, result, append)
    return state, held, lease


async def report_attempt(
    rt: Runtime, body: dict[str, Any], rkey: str, result: ActionResult,
    append: Callable[[cmd.ReportOutcome, ActionResult | None], Awaitable[_T]],
) -> _T:
    """Report an action attempt's outcome to its run through ``append``.

    ``append(report, result)`` decides on the report and appends it, recording
    ``result`` in the ledger in the same step. When the ledger already holds another
    outcome for the attempt (two workers ran it: a redelivery, or a hold that ran
    out), that stored outcome is reported instead (``result`` None: nothing to record).
    When the report cannot be appended now, the outcome is still recorded, so
    whoever handles the attempt's message again reports it without running it again.
    """
    try:
        return await append(report_outcome(body, result), result)
    except NondeterminismError:
        stored = await rt.ports.ledger.get_result(rkey)
        if stored is None:
            raise  # not the ledger's: the definition changed under the run
        return await append(report_outcome(body, stored), None)
    except WorkflowEngineError:
        with contextlib.suppress(NondeterminismError):
            await rt.ports.ledger.record_result(result)
        raise


async def renewed(rt: Runtime, lease: Lease | None) -> Lease | None:
    """``lease``, extended once less than half its time is left; None once lost.

    An action run in place may outlast the lease: extended, the append that
    reports it still carries the newest fencing token. A lease another worker took
    meanwhile is given up (the expected version still guards the append).
    """
    if lease is None:
        return None
    if (lease.expires_at - rt.ports.clock.now()) * 2 > rt.settings.lock_ttl:
        return lease
    try:
        return await rt.ports.lock.extend(lease, ttl=rt.settings.lock_ttl)
    except LeaseLostError:
        return None
