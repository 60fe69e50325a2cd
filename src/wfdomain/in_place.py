"""Actions run in place by the worker whose decision scheduled them.

See ``RuntimeSettings.run_actions_in_place``: the action's message is held by the store
until the append that reports the outcome releases it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from wfdomain import keys
from wfdomain.action_calls import report_outcome
from wfdomain.errors import LeaseLostError, NondeterminismError, WorkflowEngineError
from wfdomain.records import Lease, Message
from wfdomain.state import RunState

if TYPE_CHECKING:
    from wfdomain.runtime import Runtime

__all__ = ["renewed", "run_in_place", "take_in_place"]


def take_in_place(rt: Runtime, messages: list[Message]) -> Message | None:
    """Remove and return the first ``execute_action`` message this worker can run."""
    if not rt.settings.run_actions_in_place or rt._handing_over:
        return None
    names = rt.actions.names()
    for i, message in enumerate(messages):
        if message.kind == "execute_action" and message.body["action"] in names:
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
    body, tenant, run_id = message.body, state.tenant, state.run_id
    rkey = keys.result_key(body["idempotency_key"], body["attempt"])
    result = await rt._invoke(message, rkey, in_place=True)
    lease = await renewed(rt, lease)
    try:
        _, state, held = await rt._decide_and_append(
            tenant, run_id, report_outcome(body, result), lease, result=result,
            loaded=state, in_place=True, release=(message.id,))
    except NondeterminismError:
        stored = await rt.ports.ledger.get_result(rkey)
        if stored is None:
            raise  # not the ledger's: the definition changed under the run
        # The hold ran out and another worker ran the attempt too: its outcome wins.
        _, state, held = await rt._decide_and_append(
            tenant, run_id, report_outcome(body, stored), lease, in_place=True,
            release=(message.id,))
    except WorkflowEngineError:
        # Not reported now: keep the outcome for whoever handles the held message
        # once it is published, so the action does not run again.
        with contextlib.suppress(NondeterminismError):
            await rt.ports.ledger.record_result(result)
        raise
    return state, held, lease


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
