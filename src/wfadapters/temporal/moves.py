"""Moving runs to and from Temporal with the portable run archive (``wfdomain.archive``).

Export reads the run's history and action outcomes by query; import starts the run's
workflow from the archived history plus ``RunMoved`` and the archived outcomes.

``move_run`` hands a run from Temporal to any engine in the order of
``wfdomain.moves.move_run``: the workflow is marked first (the ``move`` update records
``RunMoved`` and the workflow completes, ``moved``), then the archive is taken and
imported. Temporal confirms the mark twice before anything is exported: the update's
result, and the workflow's close.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from wfadapters.temporal import wire
from wfadapters.temporal.errors import unavailable
from wfdomain import archive
from wfdomain.codec import decode_envelope, to_envelope
from wfdomain.errors import (
    ErrorCode,
    NondeterminismError,
    RunAlreadyExistsError,
    RunMovedError,
    RunNotFoundError,
    StorageUnavailableError,
    UnsupportedOperationError,
)
from wfdomain.events import RunMoved, RunStarted
from wfdomain.moves import MoveResult, MoveTarget, refuse_run_tree
from wfdomain.projection import summarize
from wfdomain.records import ActionResult, RunSummary
from wfdomain.state import replay

if TYPE_CHECKING:
    from wfadapters.temporal.engine import TemporalEngine
    from wfdomain.engine import Engine

__all__ = ["export_run", "import_run", "mark_moved", "move_run", "moved_error"]


async def export_run(engine: TemporalEngine, tenant: str, run_id: str) -> dict[str, Any]:
    """Return the run's portable archive (history and every attempt's outcome)."""
    history = await engine.history(tenant, run_id)
    started = decode_envelope(history[0])
    assert isinstance(started, RunStarted)
    stored = await engine._stored(tenant, started.definition_id, started.definition_version)
    if stored.content_hash != started.definition_hash:
        raise NondeterminismError(
            f"run {run_id} started with hash {started.definition_hash[:12]}, but the "
            f"stored definition hashes to {stored.content_hash[:12]}")
    outcomes: dict[str, dict[str, Any]] = await engine._query(tenant, run_id, "results")
    results = [ActionResult(result_key=k, idempotency_key=k.rpartition("#")[0], ok=v["ok"],
                            output=v.get("output"), error=v.get("error"))
               for k, v in outcomes.items()]
    return archive.build_archive(tenant=tenant, definition=stored, history=history,
                                 snapshots=[], action_results=results,
                                 exported_at=datetime.now(UTC))


async def import_run(
    engine: TemporalEngine, data: dict[str, Any], *, tenant: str | None, resume: bool,
) -> RunSummary:
    """Start a workflow that continues an archived run from where it stopped.

    The workflow starts from the archived history plus a ``RunMoved`` event, with the
    archived action outcomes: an attempt that already ran is never run again.

    Raises:
        InputValidationError: code ``ARCHIVE_INVALID``.
        RunAlreadyExistsError: the run id is taken in ``tenant``.
        UnsupportedOperationError: the run is unfinished and part of a run tree, or
            ``resume=False`` for an unfinished run (a Temporal workflow runs at once).
    """
    parsed = archive.parse_archive(data)
    tenant = parsed.tenant if tenant is None else tenant
    run_id = parsed.run_id
    moved = RunMoved(at=datetime.now(UTC), tenant=tenant, engine=engine.engine_name,
                     queue=engine.settings.task_queue)
    # Folded with the RunMoved: the archive of a run `wf move` marked ends ``moved``.
    state = replay([moved], replay(decode_envelope(e) for e in parsed.history))
    try:
        await engine._describe(tenant, run_id)
    except RunNotFoundError:
        pass
    else:
        raise RunAlreadyExistsError(f"run {run_id} already exists")
    refuse_run_tree(state)
    if not resume and not state.finished:
        raise UnsupportedOperationError(
            "an unfinished run imported into Temporal resumes at once (resume=False "
            "has no Temporal equivalent)", details={"run_id": run_id})
    await engine.register_definition(tenant, parsed.definition)
    envelopes = [replace(e, tenant=tenant) for e in parsed.history]
    envelopes.append(to_envelope(tenant, run_id, len(envelopes) + 1, moved))
    results = {r.result_key: {"ok": r.ok, "output": r.output, "error": r.error}
               for r in parsed.action_results}
    summary = summarize(state)
    await engine._start(engine._params(tenant, run_id, parsed.definition, state.input,
                                   history=wire.encode_envelopes(envelopes),
                                   results=results), summary)
    await engine._audit(tenant, "run.imported", run_id, {
        "from_tenant": parsed.tenant, "from_engine": parsed.engine,
        "from_queue": parsed.queue, "archive_version": parsed.version,
        "exported_at": parsed.exported_at.isoformat(), "events": len(parsed.history),
        "action_results": len(parsed.action_results),
    })
    return summary


# -- moving a run out of Temporal --------------------------------------------------------


async def _moved_to(engine: TemporalEngine, tenant: str, run_id: str) -> dict[str, Any]:
    """Where a ``moved`` run went (``url``, ``tenant``), from its memo; {} when not moved."""
    moved: dict[str, Any] | None = (await engine._memo(tenant, run_id)).get("moved_to")
    return moved or {}


async def moved_error(engine: TemporalEngine, run: RunSummary) -> RunMovedError:
    """The ``RUN_MOVED`` error for a call on a moved run: where to send it instead."""
    moved = await _moved_to(engine, run.tenant, run.run_id)
    details = {"run_id": run.run_id, "engine": run.engine, "queue": run.queue,
               "moved_to": moved.get("url"), "tenant": moved.get("tenant")}
    return RunMovedError(
        f"run {run.run_id} was moved to {details['moved_to'] or run.engine} (engine "
        f"{run.engine!r}, queue {run.queue!r}); send this there", details=details)


async def _closed(engine: TemporalEngine, tenant: str, run_id: str) -> RunSummary:
    """Wait (a long poll on the result) until the workflow has closed; its summary."""
    try:
        await asyncio.wait_for(engine._handle(tenant, run_id).result(),
                               engine.settings.move_timeout_s)
    except (TimeoutError, RPCTimeoutOrCancelledError):
        raise StorageUnavailableError(
            f"run {run_id} is marked moved but its workflow had not closed after "
            f"{engine.settings.move_timeout_s}s; repeat the move", details={"run_id": run_id},
        ) from None
    except WorkflowFailureError:
        pass  # failed or cancelled before the move: the summary says which
    except RPCError as e:
        raise unavailable(e) from e
    return await engine.get_run(tenant, run_id)


async def mark_moved(engine: TemporalEngine, tenant: str, run_id: str,
                     target: MoveTarget) -> RunSummary:
    """Have the run's workflow record ``RunMoved`` for ``target`` and close; its summary.

    The ``move`` update is queued behind the inputs the workflow already holds, records
    ``RunMoved`` (status ``moved``), cancels the attempts and timers in flight and
    completes the workflow; this returns once Temporal has confirmed the update and the
    workflow's close. A run that finished first is returned as it finished. Idempotent
    for the same target (the update id is the target's URL).

    Raises:
        RunNotFoundError: no such run.
        RunMovedError: the run was moved to another target before.
        StorageUnavailableError: Temporal did not confirm within ``move_timeout_s`` (no
            worker polling the queue?); repeating the move is safe.
    """
    body = {"tenant": target.tenant or tenant, "engine": target.engine,
            "queue": target.queue, "moved_to": target.url}
    handle = engine._handle(tenant, run_id)
    try:
        await asyncio.wait_for(handle.execute_update("move", body, id=f"move:{target.url}"),
                               engine.settings.move_timeout_s)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        # The SDK reports the wait_for cancellation as its own error.
        raise StorageUnavailableError(
            f"Temporal did not confirm the move of run {run_id} within "
            f"{engine.settings.move_timeout_s}s (is a worker polling "
            f"{engine.settings.task_queue!r}?); repeat the move",
            details={"run_id": run_id}) from None
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        if isinstance(cause, ApplicationError) and cause.type == ErrorCode.RUN_MOVED:
            raise await moved_error(engine, await engine.get_run(tenant, run_id)) from None
        raise unavailable(e) from e
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise unavailable(e) from e
        # Closed already (or never there: get_run below says so).
    run = await engine.get_run(tenant, run_id)
    if run.status == "moved":
        if (await _moved_to(engine, tenant, run_id)).get("url") != target.url:
            raise await moved_error(engine, run)
        return await _closed(engine, tenant, run_id)
    return run


async def move_run(engine: TemporalEngine, target: Engine, tenant: str, run_id: str,
                   where: MoveTarget) -> MoveResult:
    """Move a run from Temporal to ``target`` (any engine); see ``wfdomain.moves.move_run``.

    The same order: everything that can refuse is checked, the workflow is marked
    (``mark_moved``: Temporal confirms it recorded ``RunMoved`` and closed), then the
    archive is exported and imported. A crash in between leaves the run ``moved`` here
    and absent there; the same call again finishes the move. A finished run is copied.

    Raises:
        RunMovedError: the run was moved to another target before.
        RunAlreadyExistsError: the target already holds a run with this id.
        UnsupportedOperationError: an unfinished run with a parent or open children, or
            a move to the same Temporal namespace under the same tenant (the run's
            workflow id is taken there by the moved workflow itself).
        UnknownActionError, DefinitionError: the target cannot run its definition.
    """
    to_tenant = where.tenant or tenant
    run = await engine.get_run(tenant, run_id)
    resumed = run.status == "moved"
    if resumed:
        if (await _moved_to(engine, tenant, run_id)).get("url") != where.url:
            raise await moved_error(engine, run)
        run = await _closed(engine, tenant, run_id)
        try:
            return MoveResult(source=run, target=await target.get_run(to_tenant, run_id),
                              resumed=True)
        except RunNotFoundError:
            pass  # marked, never imported: finish the move
    else:
        await _preflight(engine, target, tenant, run_id, to_tenant)
        if not run.finished:
            run = await mark_moved(engine, tenant, run_id, where)
    imported = await target.import_run(await export_run(engine, tenant, run_id),
                                       tenant=to_tenant, resume=True)
    return MoveResult(source=run, target=imported, resumed=resumed)


async def _preflight(engine: TemporalEngine, target: Engine, tenant: str, run_id: str,
                     to_tenant: str) -> None:
    # Imported here: the engine module imports this one.
    from wfadapters.temporal.engine import TemporalEngine

    state = await engine.get_state(tenant, run_id)
    refuse_run_tree(state)
    if (isinstance(target, TemporalEngine) and to_tenant == tenant
            and (target.settings.target, target.settings.namespace)
            == (engine.settings.target, engine.settings.namespace)):
        raise UnsupportedOperationError(
            f"run {run_id} cannot move between task queues of one Temporal namespace: "
            f"its workflow id {wire.run_workflow_id(tenant, run_id)!r} stays taken by the "
            "moved workflow; move it to another namespace or cluster, or another tenant",
            details={"run_id": run_id, "namespace": engine.settings.namespace,
                     "queue": engine.settings.task_queue,
                     "to_queue": target.settings.task_queue})
    try:
        await target.get_run(to_tenant, run_id)
    except RunNotFoundError:
        pass
    else:
        raise RunAlreadyExistsError(f"run {run_id} already exists on the target",
                                    details={"run_id": run_id})
    definition = await engine.definition(tenant, state.definition_id, state.definition_version)
    await target.register_definition(to_tenant, definition)
