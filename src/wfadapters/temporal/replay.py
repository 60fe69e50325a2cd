"""Replay runs' Temporal histories with Temporal's own ``Replayer``.

``replay_run`` fetches a run's workflow history from the server and replays it through
``temporalio.worker.Replayer`` with the same workflow code and sandbox as the worker.
Given a (changed) definition, the history is replayed as if that definition had been
deployed for the run: the run's start input is rewritten to carry it. A replay failure
is reported as ``NondeterminismError`` with the step path found by
``wfdomain.replay_check`` over the run's own history, so an operator learns which step
of the definition no longer reproduces what the run did.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError
from temporalio.worker import Replayer

from wfadapters.temporal import wire
from wfadapters.temporal.converter import DATA_CONVERTER
from wfadapters.temporal.worker import WORKFLOWS, sandbox_runner
from wfdomain.codec import decode_envelope
from wfdomain.definition import Definition, parse_definition
from wfdomain.errors import NondeterminismError, RunNotFoundError, StorageUnavailableError
from wfdomain.replay_check import ReplayReport, check_replay

__all__ = ["TemporalReplay", "fetch_history", "replay_run", "with_definition"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TemporalReplay:
    """What replaying one run showed.

    Attributes:
        workflow_id: The run's workflow id.
        events: Temporal history events replayed.
        domain: The domain check of the run's own history under the definition.
    """

    workflow_id: str
    events: int
    domain: ReplayReport


async def fetch_history(client: Client, tenant: str, run_id: str) -> WorkflowHistory:
    """Fetch a run's Temporal history (of its latest workflow run).

    Raises:
        RunNotFoundError: no such run.
    """
    try:
        return await client.get_workflow_handle(wire.run_workflow_id(tenant, run_id)) \
            .fetch_history()
    except RPCError as e:
        if "not found" in str(e).lower():
            raise RunNotFoundError(f"run {run_id} not found") from None
        raise StorageUnavailableError(f"Temporal: {e}") from e


def _start_params(history: WorkflowHistory) -> dict[str, Any]:
    data = history.to_json_dict()
    payload = data["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    params: dict[str, Any] = json.loads(base64.b64decode(payload["data"]))
    return params


def with_definition(history: WorkflowHistory, definition: Definition) -> WorkflowHistory:
    """Return ``history`` with the run's start input carrying ``definition`` instead."""
    data = history.to_json_dict()
    payload = data["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    params = json.loads(base64.b64decode(payload["data"]))
    params["definition"] = definition.to_document()
    payload["data"] = base64.b64encode(json.dumps(params).encode()).decode()
    return WorkflowHistory.from_json(history.workflow_id, data)


async def replay_run(client: Client, tenant: str, run_id: str,
                     definition: Definition | None = None) -> TemporalReplay:
    """Replay a run's history through ``Replayer``, under ``definition`` when given.

    Raises:
        NondeterminismError: the replay failed; ``path`` is the step where the
            definition stops reproducing the run (when the domain check finds one) and
            ``details["temporal"]`` is Temporal's own message.
        RunNotFoundError: no such run.
    """
    history = await fetch_history(client, tenant, run_id)
    params = _start_params(history)
    recorded = parse_definition(params["definition"])
    target = definition or recorded
    if definition is not None:
        history = with_definition(history, definition)
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=sandbox_runner(),
                        data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    domain_history = params.get("history") or []
    own = await _own_history(client, tenant, run_id) if not domain_history else None
    events = [decode_envelope(e) for e in (own if own is not None else wire.decode_envelopes(
        tenant, run_id, domain_history))]
    report = check_replay(target, events)
    failure = result.replay_failure
    if failure is not None or not report.ok:
        divergence = report.divergence
        where = f" at {divergence.step_path}" if divergence and divergence.step_path else ""
        raise NondeterminismError(
            f"run {run_id} does not replay under {target.id} v{target.version}{where}: "
            f"{divergence.message if divergence else failure}",
            path=divergence.step_path if divergence else None,
            details={"temporal": None if failure is None else f"{type(failure).__name__}: "
                     f"{failure}", "version": divergence.version if divergence else None},
        )
    return TemporalReplay(workflow_id=history.workflow_id, events=len(history.events),
                          domain=report)


async def _own_history(client: Client, tenant: str, run_id: str) -> list[Any]:
    handle = client.get_workflow_handle(wire.run_workflow_id(tenant, run_id))
    try:
        data = await handle.query("history")
    except RPCError as e:
        raise StorageUnavailableError(f"Temporal: {e}") from e
    return wire.decode_envelopes(tenant, run_id, data)
