"""What a runtime is built from: its settings and the adapters of its ports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from wfdomain.expressions import ExpressionEvaluator, ExpressionLimits
from wfdomain.ports import (
    ActionLedger,
    AuditLog,
    Clock,
    DefinitionStore,
    EventStore,
    IdGenerator,
    Lock,
    Scheduler,
    Stream,
)

__all__ = ["Ports", "RuntimeSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSettings:
    """How a runtime behaves. Producer and worker must share ``engine`` and ``queue``.

    Attributes:
        engine: Name recorded on every run this runtime starts (``memory``, ``sqlite``...).
        queue: Task queue recorded on runs; a worker refuses (and audits) other queues.
        group: Consumer group of the workers.
        snapshot_every: Save a snapshot each time a run's version crosses a multiple.
        lock_ttl: Lease length while processing one message.
        claim_idle: Pending messages idle this long are taken over from dead consumers.
        stuck_after: A run without progress for this long is reported as stuck.
        max_conflict_retries: Reload-and-redecide attempts after a version conflict.
        correlation_paths: Payload paths per event name for deriving correlation keys.
        expression_limits: Guardrails for every expression evaluation.
        expression_evaluator: Where expressions run (None: in the worker's own thread). A
            blocking evaluator (the isolated process pool) makes ``decide`` run in a
            thread, so waiting on a worker process never stalls the event loop.
        state_cache_size: Runs whose derived state this runtime keeps in memory (0: none).
            A cached state is used only after reading the events stored since it, so it
            is never stale; it spares the snapshot load and the replay of a hot run.
        max_active_runs_per_tenant: Runs of one tenant that may be active (``running`` or
            ``waiting``) at once; a run started beyond it is ``paused_for_quota`` until
            one finishes (None: unlimited). Every process of a deployment must share it.
        tenant_max_active_runs: Per-tenant overrides of that limit (None: unlimited).
        run_actions_in_place: A worker runs an action that its own decision schedules
            at once, under the run's lease, and goes on with what that decides, instead
            of publishing the action's message and polling it back. The message is
            still recorded with the append, held (``HeldMessage``) for ``claim_idle``:
            should the worker die, it is published then and another worker runs it.
            Only the first action of a decision runs in place; the others of a
            ``parallel`` or ``for_each`` fan-out go out as messages, so other workers
            run them at once. False: every action travels as a message.
    """

    engine: str = "memory"
    queue: str = "default"
    group: str = "workers"
    snapshot_every: int = 100
    lock_ttl: timedelta = timedelta(seconds=30)
    claim_idle: timedelta = timedelta(seconds=60)
    stuck_after: timedelta = timedelta(minutes=5)
    max_conflict_retries: int = 8
    correlation_paths: Mapping[str, Sequence[str]] = field(default_factory=dict)
    expression_limits: ExpressionLimits | None = None
    expression_evaluator: ExpressionEvaluator | None = None
    state_cache_size: int = 1024
    max_active_runs_per_tenant: int | None = None
    tenant_max_active_runs: Mapping[str, int | None] = field(default_factory=dict)
    run_actions_in_place: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Ports:
    """The adapters a runtime runs on (one object may fill several roles)."""

    events: EventStore
    definitions: DefinitionStore
    ledger: ActionLedger
    audit: AuditLog
    stream: Stream
    lock: Lock
    scheduler: Scheduler
    clock: Clock
    ids: IdGenerator
