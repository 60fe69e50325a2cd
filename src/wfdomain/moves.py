"""Moving runs between engines: export a run's archive, import one and take the run over.

The archive format itself is ``wfdomain.archive`` (pure); these are the two operations over
a runtime's ports, kept out of ``runtime.py`` so it stays one concern per module.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from wfdomain import archive
from wfdomain.codec import decode_envelope, to_envelope
from wfdomain.errors import (
    ConcurrencyConflictError,
    DefinitionNotFoundError,
    NondeterminismError,
    RunAlreadyExistsError,
    UnsupportedOperationError,
)
from wfdomain.events import RunMoved, RunStarted
from wfdomain.projection import summarize
from wfdomain.records import AuditRecord, RunSummary, Snapshot
from wfdomain.state import replay

if TYPE_CHECKING:
    from wfdomain.runtime import Runtime

__all__ = ["export_run", "import_run"]


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
    state = replay(decode_envelope(e) for e in parsed.history)
    if not state.finished and (state.parent_run_id is not None or state.children):
        raise UnsupportedOperationError(
            f"run {run_id} is unfinished and part of a run tree (parent "
            f"{state.parent_run_id!r}, {len(state.children)} open children); only "
            "single runs, or finished ones, can be moved",
            details={"run_id": run_id, "parent_run_id": state.parent_run_id,
                     "children": sorted(state.children)},
        )
    await runtime.register_definition(tenant, parsed.definition)
    for result in parsed.action_results:
        await runtime.ports.ledger.record_result(result)
    moved = RunMoved(at=runtime.ports.clock.now(), tenant=tenant,
                     engine=runtime.settings.engine, queue=runtime.settings.queue)
    envelopes = [replace(e, tenant=tenant) for e in parsed.history]
    envelopes.append(to_envelope(tenant, run_id, len(envelopes) + 1, moved))
    try:
        await runtime.ports.events.append(envelopes, expected_version=0,
                                       summary=summarize(replay([moved], state)))
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
