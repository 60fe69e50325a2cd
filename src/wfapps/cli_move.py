"""``wf move``: hand a run over to another engine, so that only that engine executes it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from wfapps.bootstrap import open_engine
from wfapps.cli_common import (
    EngineOption,
    JsonOption,
    TenantOption,
    emit_json,
    out,
    run_command,
    settings_for,
)
from wfapps.loading import load_package
from wfapps.moving import move_out
from wfapps.settings import Settings
from wfapps.views import public_url, run_json, target_of
from wfdomain.actions import ActionRegistry
from wfdomain.moves import MoveResult

__all__ = ["move", "move_between"]


async def move_between(source: Settings, target: Settings, run_id: str,
                       actions: ActionRegistry, to_tenant: str | None = None) -> MoveResult:
    """Open both engines and move ``run_id`` from ``source`` to ``target``.

    ``actions`` must hold the run's actions: the target checks its definition before the
    source gives the run up. A ``temporal://`` source needs a worker polling its queue
    (``wf temporal-worker``): the run's workflow records the move itself.

    Raises:
        UnsupportedOperationError: the run is part of an unfinished run tree, or it would
            move between task queues of one Temporal namespace.
    """
    async with (open_engine(source, ActionRegistry()) as from_engine,
                open_engine(target, actions) as to_engine):
        return await move_out(from_engine, source.tenant, run_id, to_engine,
                              target_of(target, to_tenant))


def move(
    run_id: Annotated[str, typer.Argument(help="The run to move.")],
    to: Annotated[str, typer.Option("--to", help="The target engine's URL.")],
    actions: Annotated[Path | None, typer.Option(
        help="Workflow folder whose actions.py holds the run's actions (the target "
             "checks the definition against them before the run leaves).")] = None,
    to_tenant: Annotated[str | None, typer.Option(
        help="The run's tenant on the target (default: the same).")] = None,
    engine: EngineOption = None, tenant: TenantOption = None, as_json: JsonOption = False,
) -> None:
    """Move a run to another engine; this engine then refuses it with RUN_MOVED.

    Safe to repeat: a move cut off midway is finished by running it again.
    """
    source = settings_for(engine, tenant)
    target = settings_for(to, tenant)

    async def go() -> dict[str, Any]:
        registry = load_package(actions).actions if actions else ActionRegistry()
        result = await move_between(source, target, run_id, registry, to_tenant)
        now = datetime.now(UTC)
        return {"source": run_json(result.source, now), "target": run_json(result.target, now),
                "resumed": result.resumed, "to": public_url(target.engine_url)}

    data = run_command(go())
    if as_json:
        emit_json(data)
        return
    verb = "finished moving" if data["resumed"] else "moved"
    out.print(f"{verb} run {run_id} to {data['to']}: {data['target']['status']} there, "
              f"{data['source']['status']} here", markup=False)
