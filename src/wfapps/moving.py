"""Moving a run out of whichever engine holds it (``wf move``, ``POST /v1/runs/{id}/move``).

Local runtimes (``wfdomain.moves.move_run``) and the Temporal engine
(``wfadapters.temporal.moves.move_run``) both hand a run over in the same order: mark it
``moved`` on the source, then export and import it. This picks the source's own.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from wfapps.views import placement
from wfdomain.engine import Engine
from wfdomain.errors import UnsupportedOperationError
from wfdomain.moves import MoveResult, MoveTarget

__all__ = ["move_out"]


@runtime_checkable
class _Movable(Protocol):
    async def move_run(self, tenant: str, run_id: str, target: Engine,
                       where: MoveTarget) -> MoveResult: ...


async def move_out(source: Engine, tenant: str, run_id: str, target: Engine,
                   where: MoveTarget) -> MoveResult:
    """Move ``run_id`` from ``source`` to ``target``; see ``Runtime.move_run``.

    Raises:
        UnsupportedOperationError: ``source`` cannot hand runs over (an engine without
            ``move_run``), besides the errors of the source's ``move_run``.
    """
    if not isinstance(source, _Movable):
        raise UnsupportedOperationError(
            f"runs cannot be moved out of {placement(source)[0]}",
            details={"engine": placement(source)[0]})
    return await source.move_run(tenant, run_id, target, where)
