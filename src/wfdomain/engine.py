"""The ``Engine`` protocol: what an application talks to, whatever executes its runs.

The local ``Runtime`` (over the memory, SQLite or Postgres ports) and the Temporal engine
(``wfadapters.temporal.TemporalEngine``) both satisfy it, so an application written
against ``Engine`` moves between them by configuration alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from wfdomain.definition import Definition
from wfdomain.records import EventEnvelope, ExecutedRun, RunSummary, StoredDefinition
from wfdomain.state import RunState

__all__ = ["Engine"]


@runtime_checkable
class Engine(Protocol):
    """The application-facing operations every engine offers.

    Errors are the domain's (``wfdomain.errors``) with the same codes on every engine; an
    operation an engine cannot offer raises ``UnsupportedOperationError``.
    """

    async def register_definition(self, tenant: str, definition: Definition) -> StoredDefinition:
        """Check a definition's actions and store it, so runs can start from it."""
        ...

    async def definition(
        self, tenant: str, definition_id: str, version: int | None = None
    ) -> Definition:
        """Return a registered definition (the highest version when ``version`` is None)."""
        ...

    async def start_run(
        self,
        tenant: str,
        definition_id: str,
        run_input: Any = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
        parent: tuple[str, str] | None = None,
        replay_of: str | None = None,
    ) -> RunSummary:
        """Start a run; returns at once (workers execute it)."""
        ...

    async def execute_run(
        self,
        tenant: str,
        definition_id: str,
        run_input: Any = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
    ) -> ExecutedRun:
        """Start a run; return once it finished or waits, with its output once completed.

        The durable function call.
        """
        ...

    async def submit_event(
        self,
        tenant: str,
        name: str,
        payload: Any = None,
        *,
        correlation_key: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Submit an external event routed by correlation; return its id at once."""
        ...

    async def decide_task(
        self, tenant: str, task_id: str, outcome: str, data: Any = None,
        *, decided_by: str | None = None,
    ) -> str:
        """Validate a decision on an open human task and deliver it; return an id."""
        ...

    async def cancel_run(
        self, tenant: str, run_id: str, *, reason: str | None = None,
        requested_by: str | None = None,
    ) -> RunSummary:
        """Cancel a run; returns only once the engine has cancelled it."""
        ...

    async def replay_run(
        self, tenant: str, run_id: str, *, run_input: Any = None, use_original_input: bool = True,
    ) -> RunSummary:
        """Start a fresh run of the same definition version from the original input."""
        ...

    async def get_run(self, tenant: str, run_id: str) -> RunSummary:
        """Return a run's projection (``RunNotFoundError`` also for other tenants)."""
        ...

    async def list_runs(
        self, tenant: str, *, statuses: Sequence[str] | None = None, limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Return the tenant's runs, newest first."""
        ...

    async def history(self, tenant: str, run_id: str) -> list[EventEnvelope]:
        """Return a run's whole history."""
        ...

    async def get_state(self, tenant: str, run_id: str) -> RunState:
        """Return a run's current state."""
        ...

    async def state_at(self, tenant: str, run_id: str, version: int) -> RunState:
        """Return the state as it was after event ``version`` (time travel)."""
        ...

    async def export_run(self, tenant: str, run_id: str) -> dict[str, Any]:
        """Return the run's portable archive (``wfdomain.archive``)."""
        ...

    async def import_run(
        self, data: dict[str, Any], *, tenant: str | None = None, resume: bool = True,
    ) -> RunSummary:
        """Take over an archived run so this engine continues it."""
        ...

    async def run_until_idle(self, *, max_rounds: int = 10_000) -> int:
        """Let this engine's work settle: nothing it can do now is left undone."""
        ...

    async def run_until_finished(
        self, tenant: str, run_id: str, *, timeout_s: float = 60.0
    ) -> RunSummary:
        """Wait until the run finishes or nothing but a wait is left."""
        ...
