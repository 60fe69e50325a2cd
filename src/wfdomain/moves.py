"""Moving runs between engines: export a run's archive, import one, move a run.

The archive format itself is ``wfdomain.archive`` (pure); these are the operations over a
runtime's ports, kept out of ``runtime.py`` so it stays one concern per module.
``move_run`` hands an unfinished run from a local runtime to any ``Engine`` so that there
is never more than one execution authority for it (DESIGN section 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from wfdomain import archive
from wfdomain.codec import decode_envelope, to_envelope
from wfdomain.errors import (
    ConcurrencyConflictError,
    DefinitionNotFoundError,
    NondeterminismError,
    RunAlreadyExistsError,
    RunFinishedError,
    RunMovedError,
    RunNotFoundError,
    StorageUnavailableError,
    UnsupportedOperationError,
)
from wfdomain.events import RunMoved, RunStarted
from wfdomain.keys import timer_schedule_key
from wfdomain.projection import summarize
from wfdomain.records import AuditRecord, RunSummary, Snapshot
from wfdomain.state import RunState, replay

if TYPE_CHECKING:
    from wfdomain.definition import Definition
    from wfdomain.engine import Engine
    from wfdomain.runtime import Runtime

__all__ = ["MoveResult", "MoveTarget", "export_run", "import_run", "mark_moved", "move_run",
           "moved_error", "refuse_run_tree"]


def refuse_run_tree(state: RunState) -> None:
    """Refuse to move an unfinished run that has a parent or open children.

    A tree moves only whole, and only single runs or finished ones can be moved today.

    Raises:
        UnsupportedOperationError: the run is unfinished and part of a run tree.
    """
    if not state.finished and (state.parent_run_id is not None or state.children):
        raise UnsupportedOperationError(
            f"run {state.run_id} is unfinished and part of a run tree (parent "
            f"{state.parent_run_id!r}, {len(state.children)} open children); only "
            "single runs, or finished ones, can be moved",
            details={"run_id": state.run_id, "parent_run_id": state.parent_run_id,
                     "children": sorted(state.children)})

async def _audit(runtime: Runtime, tenant: str, kind: str, run_id: str,
                 data: dict[str, Any]) -> None:
    await runtime.ports.audit.append_audit(AuditRecord(
        tenant=tenant, kind=kind, at=runtime.ports.clock.now(), run_id=run_id, data=data,
    ))


async def export_run(runtime: Runtime, tenant: str, run_id: str) -> dict[str, Any]:
    """Return the run's portable archive; see ``Runtime.export_run``."""
    history = await runtime.history(tenant, run_id)
    started = decode_envelope(history[0])
    assert isinstance(started, RunStarted)
    stored = await runtime.ports.definitions.get_definition(
        tenant, started.definition_id, started.definition_version)
    if stored is None:
        raise DefinitionNotFoundError(
            f"definition {started.definition_id} v{started.definition_version} of run "
            f"{run_id} is not registered")
    if stored.content_hash != started.definition_hash:
        raise NondeterminismError(
            f"run {run_id} started with hash {started.definition_hash[:12]}, but the "
            f"stored definition hashes to {stored.content_hash[:12]}")
    snapshots: list[Snapshot] = []
    upto: int | None = len(history)
    while upto is not None and upto > 0:
        snapshot = await runtime.ports.events.load_snapshot(tenant, run_id, at_or_before=upto)
        if snapshot is None:
            break
        snapshots.append(snapshot)
        upto = snapshot.version - 1
    results = [r for k in archive.result_keys(history)
               if (r := await runtime.ports.ledger.get_result(k)) is not None]
    return archive.build_archive(
        tenant=tenant, definition=stored, history=history, snapshots=snapshots,
        action_results=results, exported_at=runtime.ports.clock.now(),
    )



async def import_run(
    runtime: Runtime, data: dict[str, Any], *, tenant: str | None, resume: bool,
) -> RunSummary:
    """Store an archived run on ``runtime`` and take it over; see ``Runtime.import_run``."""
    parsed = archive.parse_archive(data)
    tenant = parsed.tenant if tenant is None else tenant
    run_id = parsed.run_id
    if await runtime.ports.events.get_run(tenant, run_id) is not None:
        raise RunAlreadyExistsError(f"run {run_id} already exists")
    moved = RunMoved(at=runtime.ports.clock.now(), tenant=tenant,
                     engine=runtime.settings.engine, queue=runtime.settings.queue)
    # Folded with the RunMoved: the archive of a run `wf move` marked ends ``moved``.
    state = replay([moved], replay(decode_envelope(e) for e in parsed.history))
    refuse_run_tree(state)
    await runtime.register_definition(tenant, parsed.definition)
    for result in parsed.action_results:
        await runtime.ports.ledger.record_result(result)
    envelopes = [replace(e, tenant=tenant) for e in parsed.history]
    envelopes.append(to_envelope(tenant, run_id, len(envelopes) + 1, moved))
    try:
        await runtime.ports.events.append(envelopes, expected_version=0,
                                       summary=summarize(state))
    except ConcurrencyConflictError:
        raise RunAlreadyExistsError(f"run {run_id} already exists") from None
    for snapshot in parsed.snapshots:
        await runtime.ports.events.save_snapshot(replace(snapshot, tenant=tenant))
    await _audit(runtime, tenant, "run.imported", run_id, {
        "from_tenant": parsed.tenant, "from_engine": parsed.engine,
        "from_queue": parsed.queue, "archive_version": parsed.version,
        "exported_at": parsed.exported_at.isoformat(), "events": len(parsed.history),
        "action_results": len(parsed.action_results),
    })
    if resume and not state.finished:
        await runtime.resume_run(tenant, run_id)
    return await runtime.get_run(tenant, run_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveTarget:
    """Where ``move_run`` takes a run.

    Attributes:
        engine: The target engine (its runtime's ``engine``: ``postgres``, ``temporal``...).
        queue: The queue the run executes on there.
        url: The target's engine URL without credentials, recorded on the source.
        tenant: The run's tenant there (None: the same as here).
    """

    engine: str
    queue: str
    url: str
    tenant: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveResult:
    """What ``move_run`` did.

    Attributes:
        source: The run here: ``moved``, or finished (then it was copied).
        target: The run on the target.
        resumed: An earlier, interrupted move of the run was finished.
    """

    source: RunSummary
    target: RunSummary
    resumed: bool


def _url(event: RunMoved | None) -> str | None:
    return None if event is None else event.moved_to


async def _last_move(runtime: Runtime, tenant: str, run_id: str) -> RunMoved | None:
    for envelope in reversed(await runtime.history(tenant, run_id)):
        event = decode_envelope(envelope)
        if isinstance(event, RunMoved) and event.moved_to is not None:
            return event
    return None


async def moved_error(runtime: Runtime, run: RunSummary) -> RunMovedError:
    """The ``RUN_MOVED`` error for a call on a moved run: where to send it instead."""
    last = await _last_move(runtime, run.tenant, run.run_id)
    details = {"run_id": run.run_id, "engine": run.engine, "queue": run.queue,
               "moved_to": _url(last),
               "tenant": None if last is None else last.tenant}
    return RunMovedError(
        f"run {run.run_id} was moved to {details['moved_to'] or run.engine} (engine "
        f"{run.engine!r}, queue {run.queue!r}); send this there", details=details)


async def mark_moved(runtime: Runtime, tenant: str, run_id: str, target: MoveTarget) -> RunSummary:
    """Record on ``runtime`` that the unfinished run left for ``target``: it is ``moved``.

    Appended at the run's current version under its lock, so it is ordered against every
    worker's append: nothing is recorded here after it, and every later delivery,
    cancel or event for the run is refused with ``RUN_MOVED``. Its scheduled timers are
    dropped (they would only be refused). Idempotent for the same target.

    Raises:
        RunMovedError: the run was already moved to another target.
        RunFinishedError: the run already finished.
    """
    async with runtime.lease_run(tenant, run_id) as lease:
        for _ in range(runtime.settings.max_conflict_retries):
            run = await runtime.get_run(tenant, run_id)
            if run.status == "moved":
                last = await _last_move(runtime, tenant, run_id)
                if _url(last) == target.url:
                    return run
                raise await moved_error(runtime, run)
            if run.finished:
                raise RunFinishedError(f"run {run_id} is already {run.status}")
            state = await runtime.get_state(tenant, run_id)
            event = RunMoved(at=runtime.ports.clock.now(), tenant=target.tenant or tenant,
                             engine=target.engine, queue=target.queue, moved_to=target.url)
            try:
                await runtime.ports.events.append(
                    [to_envelope(tenant, run_id, state.version + 1, event)],
                    expected_version=state.version, summary=summarize(replay([event], state)),
                    fencing_token=lease.token if lease else None)
            except ConcurrencyConflictError:
                continue  # a worker appended first: mark the newer version
            for timer_id in state.timers:
                await runtime.ports.scheduler.cancel(timer_schedule_key(tenant, run_id, timer_id))
            await _audit(runtime, tenant, "run.moved", run_id, {
                "moved_to": target.url, "engine": target.engine, "queue": target.queue,
                "to_tenant": target.tenant or tenant, "version": state.version + 1})
            return await runtime.get_run(tenant, run_id)
        raise StorageUnavailableError(f"run {run_id}: gave up marking it moved")


async def move_run(source: Runtime, target: Engine, tenant: str, run_id: str,
                   where: MoveTarget) -> MoveResult:
    """Move a run from the local ``source`` to ``target`` (any engine); see ``wf move``.

    Why mark first, then export, then import: marking the source ``moved`` is one append
    ordered against every worker's, so the archive taken after it is the run's last word
    here, and at no instant do two engines drive the run. A crash between the mark and
    the import leaves no live authority (the run waits, shown ``moved`` here, absent
    there); calling ``move_run`` again with the same target finishes the move. Importing
    first instead would leave two live copies if the mark then failed.

    Everything that can refuse the move (a run tree, an action the target lacks, a
    definition conflict, the id taken there) is checked before the mark. A finished run
    is copied and left as it is here: it has no authority left to hand over.

    Raises:
        RunMovedError: the run was moved to another target before.
        RunAlreadyExistsError: the target already holds a run with this id.
        UnsupportedOperationError: an unfinished run with a parent or open children.
        UnknownActionError, DefinitionError: the target cannot run its definition.
    """
    to_tenant = where.tenant or tenant
    run = await source.get_run(tenant, run_id)
    resumed = run.status == "moved"
    if resumed:
        last = await _last_move(source, tenant, run_id)
        if _url(last) != where.url:
            raise await moved_error(source, run)
        try:
            return MoveResult(source=run, target=await target.get_run(to_tenant, run_id),
                              resumed=True)
        except RunNotFoundError:
            pass  # marked, never imported: finish the move
    else:
        await _preflight(source, target, tenant, run_id, to_tenant)
        if not run.finished:
            run = await mark_moved(source, tenant, run_id, where)
    imported = await target.import_run(await export_run(source, tenant, run_id),
                                       tenant=to_tenant, resume=True)
    return MoveResult(source=run, target=imported, resumed=resumed)


async def _preflight(source: Runtime, target: Engine, tenant: str, run_id: str,
                     to_tenant: str) -> None:
    state = await source.get_state(tenant, run_id)
    refuse_run_tree(state)
    try:
        await target.get_run(to_tenant, run_id)
    except RunNotFoundError:
        pass
    else:
        raise RunAlreadyExistsError(f"run {run_id} already exists on the target",
                                    details={"run_id": run_id})
    definition: Definition = await source.definition(tenant, state.definition_id,
                                                     state.definition_version)
    await target.register_definition(to_tenant, definition)
