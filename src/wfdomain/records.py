"""Values that cross the ports: stored events, run summaries, messages, leases.

They are plain frozen dataclasses holding JSON-ready data, so every adapter can persist
them without knowing the domain's event classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Protocol, TypeAlias

from wfdomain._slots import constructor

__all__ = [
    "ActionResult",
    "AuditRecord",
    "Delivery",
    "ExecutedRun",
    "EventEnvelope",
    "HeldMessage",
    "HumanTaskRecord",
    "JSONValue",
    "Lease",
    "Message",
    "MessageKind",
    "RunStatus",
    "RunSummary",
    "ScheduledMessage",
    "Snapshot",
    "StoredDefinition",
    "WaitRegistration",
    "new_envelope",
]

JSONValue: TypeAlias = Any
"""A JSON document: None, bool, int, float, str, list or dict of str keys."""

RunStatus = Literal[
    "running", "waiting", "paused_for_quota", "completed", "failed", "cancelled", "moved",
]
# ``paused_for_quota``: started while its tenant was at its active-run limit (wfdomain.quota);
# it executes nothing until capacity frees. Not final: it resumes, or it is cancelled.
# ``moved``: the run left this engine (``wf move``); it is final here, live on the target.
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "moved"})


@dataclass(frozen=True, slots=True, kw_only=True)
class EventEnvelope:
    """One stored history event.

    Attributes:
        tenant: Owning tenant.
        run_id: The run the event belongs to.
        version: 1-based position in the run's history; unique per run.
        type: Event type name (see ``wfdomain.events``).
        at: Logical time at which the event was recorded (timezone-aware UTC).
        data: The event's fields, JSON-ready.
        position: Global position assigned by the store on append (0 before).
    """

    tenant: str
    run_id: str
    version: int
    type: str
    at: datetime
    data: dict[str, JSONValue]
    position: int = 0


class _NewEnvelope(Protocol):
    def __call__(
        self, *, tenant: str, run_id: str, version: int, type: str, at: datetime,
        data: dict[str, JSONValue], position: int = 0,
    ) -> EventEnvelope: ...


new_envelope: _NewEnvelope = constructor(EventEnvelope)
"""``EventEnvelope(...)`` for stores that build one per row read: the same result and
keywords, built without the frozen dataclass's ``__init__`` (a class call with keywords),
at about a quarter of its cost (see ``wfdomain._slots``). Replay of a long history reads
one per event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A run's state encoded at ``version`` (``state`` is ``codec.encode_state`` output)."""

    tenant: str
    run_id: str
    version: int
    state: dict[str, JSONValue]


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitRegistration:
    """An open ``wait_event`` of a run: what the correlation resolver looks up."""

    event_name: str
    correlation_key: str
    step_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HumanTaskRecord:
    """An open human task, listed in the inbox until decided."""

    task_id: str
    tenant: str
    run_id: str
    step_key: str
    title: str
    assignee: str | None
    outcomes: tuple[str, ...]
    form_schema: dict[str, JSONValue] | None
    deadline: datetime | None
    created_at: datetime
    overdue: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """The run projection, updated atomically with each append.

    Attributes:
        status: ``running`` (work to do), ``waiting`` (only waits, timers or tasks open),
            ``paused_for_quota`` (held by the tenant's active-run limit), or a terminal
            status.
        engine: Where the run executes (``memory``, ``sqlite``, ``temporal``...).
        queue: The task queue the run was started on.
        last_progress_at: Logical time of the newest event.
        waits: Open event waits (replaced wholesale on each append).
        human_tasks: Open human tasks (replaced wholesale on each append).
        next_due_at: Earliest open timer (sleep, retry, timeout, deadline), for stuck-run
            detection: a run whose timer is long overdue is not being driven.
    """

    tenant: str
    run_id: str
    definition_id: str
    definition_version: int
    definition_hash: str
    status: RunStatus
    engine: str
    queue: str
    version: int
    created_at: datetime
    last_progress_at: datetime
    parent_run_id: str | None = None
    replay_of: str | None = None
    error: dict[str, JSONValue] | None = None
    waits: tuple[WaitRegistration, ...] = ()
    human_tasks: tuple[HumanTaskRecord, ...] = ()
    next_due_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """Whether the run reached a terminal status."""
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutedRun(RunSummary):
    """What ``execute_run`` returns: the run's summary where the call stopped, and its output.

    Attributes:
        output: The run's result once ``completed`` (what ``get_state(...).output`` would
            read); None otherwise.
    """

    output: JSONValue = None

    @classmethod
    def of(cls, summary: RunSummary, output: JSONValue) -> ExecutedRun:
        """``summary``'s fields with ``output``."""
        return cls(**{name: getattr(summary, name) for name in _SUMMARY_FIELDS},
                   output=output if summary.status == "completed" else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredDefinition:
    """A registered definition version, kept so any run can be replayed with its own."""

    tenant: str
    definition_id: str
    version: int
    content_hash: str
    document: dict[str, JSONValue]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionResult:
    """The stored outcome of one action attempt, keyed by ``result_key``.

    ``result_key`` is the idempotency key plus the attempt number, so a retry is a new
    attempt while a redelivered message finds the attempt's stored outcome.
    """

    result_key: str
    idempotency_key: str
    ok: bool
    output: JSONValue = None
    error: dict[str, JSONValue] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """A runtime event worth an operator's attention (unmatched event, refused work...)."""

    tenant: str
    kind: str
    at: datetime
    run_id: str | None = None
    data: dict[str, JSONValue] = field(default_factory=dict)
    position: int = 0


MessageKind = Literal["advance", "deliver", "route_event", "execute_action", "admit_runs",
                      "start_child", "cancel_child"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A unit of work on the stream.

    Attributes:
        id: Unique message id (set by the producer; used for de-duplication).
        kind: ``advance`` a run, ``deliver`` an input to a run, ``route_event`` (resolve
            an external event's correlation), ``execute_action``, ``admit_runs``
            (resume the tenant's oldest runs paused for quota while it has capacity),
            ``start_child`` or ``cancel_child`` (a parent run's child, by its derived id).
        tenant: Owning tenant.
        run_id: Target run, when known.
        body: Kind-specific JSON payload.
    """

    id: str
    kind: MessageKind
    tenant: str
    run_id: str | None
    body: dict[str, JSONValue]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldMessage:
    """A message its writer handles itself, published only if the writer fails to.

    A worker that appends a decision scheduling an action for its own run runs that
    action at once instead of publishing the message and polling it back. The message is
    still recorded with the append (``EventStore.append(held=...)``), but held: no
    consumer sees it until ``until`` has passed (``EventStore.release_overdue``). The
    worker's next append releases it (``release=``) when the work is done, so it is never
    published; a worker that dies or stalls leaves it to be published and handled by
    another, exactly as if it had been a pending delivery of a dead consumer.
    """

    message: Message
    until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """A message handed to a consumer; ack it by ``delivery_id`` once handled."""

    delivery_id: str
    message: Message
    delivery_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledMessage:
    """A message to publish at ``due_at``; ``key`` makes scheduling idempotent."""

    key: str
    due_at: datetime
    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A granted lock. ``token`` increases with every grant of the same key (fencing)."""

    key: str
    owner: str
    token: int
    expires_at: datetime


_SUMMARY_FIELDS = tuple(f.name for f in fields(RunSummary))
