"""The first event of a run, built from its definition the same way on every engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from wfdomain.definition import Definition
from wfdomain.events import RunStarted

__all__ = ["run_started"]


def run_started(
    definition: Definition,
    run_input: Any,
    *,
    at: datetime,
    tenant: str,
    run_id: str,
    engine: str,
    queue: str,
    parent: Sequence[str] | None = None,
    replay_of: str | None = None,
) -> RunStarted:
    """Return the ``RunStarted`` of a new run of ``definition``.

    Args:
        definition: The definition version the run executes (its id, version and hash are
            recorded).
        run_input: The run's input, already validated against the definition's schema.
        at: The logical time of the start.
        tenant: The owning tenant.
        run_id: The new run's id.
        engine: Where the run executes.
        queue: The task queue it executes on.
        parent: ``(parent run id, parent step key)`` of a child run.
        replay_of: The run this one replays.
    """
    return RunStarted(
        at=at, run_id=run_id, tenant=tenant, definition_id=definition.id,
        definition_version=definition.version, definition_hash=definition.content_hash,
        input=run_input, engine=engine, queue=queue,
        parent_run_id=parent[0] if parent else None,
        parent_step_key=parent[1] if parent else None, replay_of=replay_of,
    )
