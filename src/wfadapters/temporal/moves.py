"""Moving runs to and from Temporal with the portable run archive (``wfdomain.archive``).

Export reads the run's history and action outcomes by query; import starts the run's
workflow from the archived history plus ``RunMoved`` and the archived outcomes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from wfadapters.temporal import wire
from wfdomain import archive
from wfdomain.codec import decode_envelope, to_envelope
from wfdomain.errors import (
    NondeterminismError,
    RunAlreadyExistsError,
    RunNotFoundError,
    UnsupportedOperationError,
)
from wfdomain.events import RunMoved, RunStarted
from wfdomain.projection import summarize
from wfdomain.records import ActionResult, RunSummary
from wfdomain.state import replay

if TYPE_CHECKING:
    from wfadapters.temporal.engine import TemporalEngine

__all__ = ["export_run", "import_run"]


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
    if not state.finished and (state.parent_run_id is not None or state.children):
        raise UnsupportedOperationError(
            f"run {run_id} is unfinished and part of a run tree (parent "
            f"{state.parent_run_id!r}, {len(state.children)} open children); only "
            "single runs, or finished ones, can be moved",
            details={"run_id": run_id, "parent_run_id": state.parent_run_id,
                     "children": sorted(state.children)})
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
