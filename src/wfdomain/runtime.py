"""The runtime: the application service that drives runs over the ports.

Producers call ``start_run``, ``submit_event``, ``decide_task`` and ``cancel_run``; workers
call ``work_once`` (or ``run_until_idle``). Processing one message is: lock the run
(to avoid wasted work only), load snapshot + tail, decide, append at the expected version
(the real guard against two writers), then carry out the decision's commands.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from wfdomain import commands as cmd
from wfdomain import handlers, keys, moves, starts
from wfdomain.action_calls import ActionListener, ActionRun, invoke_action
from wfdomain.actions import ActionRegistry
from wfdomain.codec import decode_envelope, decode_state, encode_state, to_envelope
from wfdomain.correlation import CorrelationResolver
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import Definition, parse_definition
from wfdomain.engine import Engine
from wfdomain.errors import (
    ConcurrencyConflictError,
    DefinitionNotFoundError,
    ErrorCode,
    HumanTaskNotFoundError,
    InputValidationError,
    NondeterminismError,
    RunFinishedError,
    RunNotFoundError,
    StorageUnavailableError,
    WorkflowEngineError,
)
from wfdomain.events import (
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
)
from wfdomain.expressions import IN_PROCESS
from wfdomain.in_place import run_in_place, take_in_place
from wfdomain.inputs import encode_input
from wfdomain.known_definitions import KnownDefinitions
from wfdomain.projection import summarize
from wfdomain.quota import QuotaPolicy
from wfdomain.quota_admit import admit_runs
from wfdomain.records import (
    ActionResult,
    AuditRecord,
    Delivery,
    EventEnvelope,
    ExecutedRun,
    HeldMessage,
    Lease,
    Message,
    MessageKind,
    RunSummary,
    ScheduledMessage,
    Snapshot,
    StoredDefinition,
)
from wfdomain.recovery import pending_commands
from wfdomain.runtime_config import Ports, RuntimeSettings
from wfdomain.schema import validate_against_schema
from wfdomain.state import RunState, replay
from wfdomain.stuck import StuckRun, stuck_among
from wfdomain.telemetry import HEADERS_KEY, NO_TELEMETRY, Telemetry

__all__ = ["Ports", "ProcessOutcome", "Runtime", "RuntimeSettings", "StuckRun"]

ProcessOutcome = Literal["acked", "rejected", "retry", "failed"]
"""What ``Runtime.process`` did with a delivery."""

_RELEASE_BATCH = 100
_RELEASE_CHECK_EVERY = timedelta(seconds=1)


class _ForeignRunError(WorkflowEngineError):
    default_code = ErrorCode.RUN_WRONG_QUEUE
    retryable = True


class Runtime:
    """Drives runs of registered definitions over a set of ports."""

    def __init__(
        self,
        ports: Ports,
        actions: ActionRegistry,
        settings: RuntimeSettings | None = None,
        *,
        worker_id: str | None = None,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self.ports = ports
        self.actions = actions
        self.settings = settings or RuntimeSettings()
        self.worker_id = worker_id or f"worker-{ports.ids.new_id()}"
        self.telemetry = telemetry
        self._resolver = CorrelationResolver(self.settings.correlation_paths)
        self._known = KnownDefinitions()
        self._states: OrderedDict[tuple[str, str], RunState] = OrderedDict()
        self._next_release_check: datetime | None = None
        self._handing_over = False
        self.action_listeners: list[ActionListener] = []
        """Told of every action attempt this runtime runs (``ActionRun``)."""
        self._quota = QuotaPolicy(default=self.settings.max_active_runs_per_tenant,
                                  per_tenant=self.settings.tenant_max_active_runs)

    # -- definitions --------------------------------------------------------------------
    async def register_definition(self, tenant: str, definition: Definition) -> StoredDefinition:
        """Check a definition's actions and store it, so runs can start from it.

        Raises:
            UnknownActionError: an action step names an unregistered action.
            DefinitionError: the same id and version is stored with other content.
        """
        self.actions.check_definition(definition)
        stored = StoredDefinition(
            tenant=tenant, definition_id=definition.id, version=definition.version,
            content_hash=definition.content_hash, document=definition.to_document(),
        )
        await self.ports.definitions.put_definition(stored)
        self._known.add(tenant, definition, latest=True)
        return stored

    async def definition(
        self, tenant: str, definition_id: str, version: int | None = None
    ) -> Definition:
        """Return a registered definition (the highest version when ``version`` is None).

        Raises:
            DefinitionNotFoundError: not registered for this tenant.
        """
        known = self._known.get(tenant, definition_id, version) if version else None
        if known is not None:
            return known
        stored = await self.ports.definitions.get_definition(tenant, definition_id, version)
        if stored is None:
            which = f"{definition_id} v{version}" if version else definition_id
            raise DefinitionNotFoundError(f"definition {which} is not registered")
        known = self._known.get(tenant, stored.definition_id, stored.version)
        return self._known.add(tenant, known or parse_definition(stored.document),
                               latest=version is None)

    # -- producer side ------------------------------------------------------------------
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
        """Record a new run and queue it; returns at once (workers execute it).

        Raises:
            DefinitionNotFoundError: no such definition.
            InputValidationError: the input fails the definition's input schema.
            UnknownActionError: the definition calls an action this process lacks.
            RunAlreadyExistsError: ``run_id`` is taken.
        """
        run_id = run_id or self.ports.ids.new_id()
        with self.telemetry.span("wf.start_run", {"wf.tenant": tenant, "wf.run_id": run_id,
                                                  "wf.definition_id": definition_id}):
            return await starts.queue(self, tenant, definition_id, run_input,
                                      version=version, run_id=run_id, parent=parent,
                                      replay_of=replay_of)

    async def execute_run(
        self,
        tenant: str,
        definition_id: str,
        run_input: Any = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
    ) -> ExecutedRun:
        """Start a run and carry it in this process until it finishes or waits.

        The durable form of calling a function: the run is recorded with its first
        decision in one append, and this process runs its actions in place and appends,
        step after step, until the run finishes or waits (for an event, a person, a
        timer, a child run, or the actions of a fan-out it sent to the workers, who then
        carry it on). No message is queued and no worker polls anything in between:
        each action's message is held for this process (``HeldMessage``). Should this
        process die, the held message is published once ``claim_idle`` has passed and a
        worker takes the run over from its last append; an action that was running then
        may run again, as with any worker's death. A run the tenant's limit pauses is
        left to the workers. Returns the run's summary where this process stopped, with
        its output once completed (no read: this process holds the state).

        Raises:
            Whatever ``start_run`` raises.
        """
        run_id = run_id or self.ports.ids.new_id()
        with self.telemetry.span("wf.execute_run", {"wf.tenant": tenant, "wf.run_id": run_id,
                                                    "wf.definition_id": definition_id}):
            return await starts.execute(self, tenant, definition_id, run_input,
                                        version=version, run_id=run_id)

    async def submit_event(
        self,
        tenant: str,
        name: str,
        payload: Any = None,
        *,
        correlation_key: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Persist and publish an external event; return its id at once.

        Workers route it by correlation (explicit key first, then the configured paths).
        When ``run_id`` is given the run must exist and be unfinished.

        Raises:
            RunNotFoundError: ``run_id`` is unknown to this tenant.
            RunFinishedError: ``run_id`` already finished.
        """
        if not name:
            raise InputValidationError("event name must not be empty", code=ErrorCode.EVENT_INVALID)
        if run_id is not None:
            await self._require_open_run(tenant, run_id)
        event_id = self.ports.ids.new_id()
        body = {"event_id": event_id, "name": name, "payload": payload,
                "correlation_key": correlation_key}
        with self.telemetry.span("wf.submit_event", {"wf.tenant": tenant, "wf.event_id": event_id,
                                                     "wf.event_name": name}):
            # The audit record and the message are stored together (the outbox): a crash
            # cannot leave an accepted event unrouted.
            await self.ports.events.record_messages(
                [self._message("route_event", tenant, run_id, body)],
                audit=AuditRecord(tenant=tenant, kind="event.submitted",
                                  at=self.ports.clock.now(), run_id=run_id, data=body),
            )
        return event_id

    async def decide_task(
        self, tenant: str, task_id: str, outcome: str, data: Any = None,
        *, decided_by: str | None = None,
    ) -> str:
        """Validate a decision on an open human task and queue it; return the message id.

        Raises:
            HumanTaskNotFoundError: no open task with this id for the tenant.
            InputValidationError: code ``DECISION_INVALID`` for an unknown outcome or
                data that fails the task's form schema.
        """
        task = await self.ports.events.get_human_task(tenant, task_id)
        if task is None:
            raise HumanTaskNotFoundError(f"no open human task {task_id!r}")
        if outcome not in task.outcomes:
            raise InputValidationError(
                f"outcome {outcome!r} is not one of {list(task.outcomes)}",
                code=ErrorCode.DECISION_INVALID, path="outcome",
            )
        validate_against_schema(data, task.form_schema, what="decision data",
                                code=ErrorCode.DECISION_INVALID)
        decision = cmd.DecideTask(task_id=task_id, outcome=outcome, data=data,
                                  decided_by=decided_by)
        return await self._enqueue("deliver", tenant, task.run_id,
                                   {"input": encode_input(decision)})

    async def cancel_run(
        self, tenant: str, run_id: str, *, reason: str | None = None,
        requested_by: str | None = None,
    ) -> RunSummary:
        """Cancel a run now; the returned summary shows what the engine recorded.

        Raises:
            RunNotFoundError: unknown to this tenant.
            RunFinishedError: the run already finished.
        """
        await self._require_open_run(tenant, run_id)
        await self._apply(tenant, run_id, cmd.Cancel(reason=reason, requested_by=requested_by))
        return await self.get_run(tenant, run_id)

    async def replay_run(
        self, tenant: str, run_id: str, *, run_input: Any = None, use_original_input: bool = True,
    ) -> RunSummary:
        """Start a fresh run of the same definition version from the original input.

        The original input is read from the history, unredacted; pass ``run_input`` with
        ``use_original_input=False`` to start from an edited input instead.
        """
        events = await self.history(tenant, run_id)
        started = decode_envelope(events[0])
        assert isinstance(started, RunStarted)
        return await self.start_run(
            tenant, started.definition_id,
            started.input if use_original_input else run_input,
            version=started.definition_version, replay_of=run_id,
        )

    async def resume_run(self, tenant: str, run_id: str) -> int:
        """Re-issue the work an unfinished run is owed; return how many commands.

        For runs reported by ``stuck_runs``: after a crash between an append and its
        commands, the actions, timers and child runs still owed are derived from the
        state and issued again, and the run is queued to advance. Safe to repeat, but an
        action attempt already executing elsewhere may then run twice: resume only runs
        that are stuck.

        Raises:
            RunNotFoundError: unknown to this tenant.
            RunFinishedError: the run already finished.
        """
        await self._require_open_run(tenant, run_id)
        state = await self.get_state(tenant, run_id)
        commands = pending_commands(await self._definition_of(state), state)
        advance = self._message("advance", tenant, run_id, {"input": encode_input(cmd.Advance())})
        await self.ports.events.record_messages([*self._follow_ups(state, commands), advance])
        await self._carry_out(state, commands)
        await self._audit(tenant, "run.resumed", run_id, {"commands": len(commands)})
        return len(commands)

    async def reschedule_timers(self, tenant: str, run_id: str) -> int:
        """Schedule the run's open timers again; return how many.

        For a scheduler that lost what it held (a Redis restarted without persistence):
        the run's state still lists its timers. Safe to repeat, unlike ``resume_run``: a
        timer is scheduled under its own key (scheduling replaces), and a timer that
        fires after it already fired is ignored by the run. The worker service calls this
        for every run whose timer is overdue past the stuck threshold.

        Raises:
            RunNotFoundError: unknown to this tenant.
        """
        state = await self.get_state(tenant, run_id)
        if state.finished:
            return 0
        timers = [cmd.StartTimer(timer_id=timer_id, fire_at=timer.fire_at)
                  for timer_id, timer in state.timers.items()]
        await self._carry_out(state, timers)
        if timers:
            await self._audit(tenant, "run.timers_rescheduled", run_id,
                              {"timers": sorted(state.timers)})
        return len(timers)

    async def admit_paused_runs(self, tenant: str) -> int:
        """Resume the tenant's oldest ``paused_for_quota`` runs while it has capacity.

        Workers do this on their own whenever a run of the tenant finishes; call it after
        raising a tenant's limit, which by itself resumes nothing. Returns how many.
        """
        return await admit_runs(self, tenant)

    # -- moving runs: the run archive ----------------------------------------------------
    async def export_run(self, tenant: str, run_id: str) -> dict[str, Any]:
        """Return the run's portable archive (``wfdomain.archive``, JSON-ready).

        Holds the definition document, the whole history, every snapshot and the stored
        outcome of every action attempt the history scheduled. Reading only: the run
        keeps executing here; to hand it to another engine use ``move_run``, which
        marks it ``moved`` here first.

        Raises:
            RunNotFoundError: unknown to this tenant.
            DefinitionNotFoundError: the run's definition version is no longer stored.
            NondeterminismError: the stored definition no longer has the run's hash.
        """
        return await moves.export_run(self, tenant, run_id)

    async def import_run(
        self, data: dict[str, Any], *, tenant: str | None = None, resume: bool = True,
    ) -> RunSummary:
        """Store an archived run here so this runtime executes it from where it stopped.

        The history is stored unchanged, followed by a ``RunMoved`` event that re-homes
        the run to ``tenant`` (default: the archive's) and to this runtime's engine and
        queue, so this runtime's workers adopt it. The definition is registered, the
        action outcomes go into the ledger (an attempt that already ran is never run
        again) and the snapshots are kept. An unfinished run is then resumed
        (``resume_run``) unless ``resume`` is False.

        Raises:
            InputValidationError: code ``ARCHIVE_INVALID`` (see ``archive.parse_archive``).
            RunAlreadyExistsError: the run id is taken in ``tenant``.
            UnsupportedOperationError: the run is unfinished and has a parent or open
                child runs (runs are moved one at a time; a tree cannot be split).
            UnknownActionError: the definition calls an action this process lacks.
            DefinitionError: code ``DEFINITION_CONFLICT``: the same definition version is
                registered here with other content.
            NondeterminismError: the ledger holds another outcome for an attempt.
        """
        return await moves.import_run(self, data, tenant=tenant, resume=resume)

    async def move_run(self, tenant: str, run_id: str, target: Engine,
                       where: moves.MoveTarget) -> moves.MoveResult:
        """Move a run to ``target`` (any engine); this runtime never executes it again.

        The run is marked ``moved`` here (``RunMoved`` naming ``where``), then exported
        and imported there; repeating the call finishes an interrupted move. See
        ``wfdomain.moves.move_run`` for the order and the errors.
        """
        return await moves.move_run(self, target, tenant, run_id, where)

    # -- queries ------------------------------------------------------------------------
    async def get_run(self, tenant: str, run_id: str) -> RunSummary:
        """Return a run's projection. Raises ``RunNotFoundError`` (also for other tenants)."""
        summary = await self.ports.events.get_run(tenant, run_id)
        if summary is None:
            raise RunNotFoundError(f"run {run_id} not found")
        return summary

    async def list_runs(
        self, tenant: str, *, statuses: Sequence[str] | None = None, limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Return the tenant's runs, newest first."""
        return await self.ports.events.list_runs(tenant, statuses=statuses, limit=limit,
                                                 offset=offset)

    async def history(self, tenant: str, run_id: str) -> list[EventEnvelope]:
        """Return a run's whole history. Raises ``RunNotFoundError``."""
        events = await self.ports.events.read(tenant, run_id)
        if not events:
            raise RunNotFoundError(f"run {run_id} not found")
        return events

    async def get_state(self, tenant: str, run_id: str) -> RunState:
        """Return a run's current state (snapshot + tail). Raises ``RunNotFoundError``."""
        state = await self._load(tenant, run_id)
        if state.status == "new":
            raise RunNotFoundError(f"run {run_id} not found")
        return state

    async def state_at(self, tenant: str, run_id: str, version: int) -> RunState:
        """Return the state as it was after event ``version`` (time travel)."""
        state = await self._load(tenant, run_id, upto=version)
        if state.status == "new":
            raise RunNotFoundError(f"run {run_id} not found")
        return state

    async def stuck_runs(
        self, tenant: str, *, older_than: timedelta | None = None
    ) -> list[StuckRun]:
        """Return unfinished runs that nothing is driving (see ``wfdomain.stuck``).

        A ``running`` run stuck longer than ``older_than`` made no progress (no worker for
        its queue, or a lost message); a ``waiting`` run whose timer is overdue by that
        much has no scheduler driving it. Waiting on an event or a person is not stuck.
        """
        threshold = self.settings.stuck_after if older_than is None else older_than
        runs = await self.ports.events.list_runs(tenant, statuses=["running", "waiting"],
                                                 limit=10_000)
        return stuck_among(runs, now=self.ports.clock.now(), threshold=threshold)

    # -- worker side --------------------------------------------------------------------
    async def tick(self) -> int:
        """Publish every scheduled message that is due and every overdue held one.

        Held messages (``HeldMessage``: a worker's in-place work) are published once
        their hold has run out, which happens only when that worker died or stalled;
        they are looked for at most once a second of clock time. Returns how many
        messages were published.
        """
        now = self.ports.clock.now()
        released = 0
        if self._next_release_check is None or now >= self._next_release_check:
            found = await self.ports.events.release_overdue(now, limit=_RELEASE_BATCH)
            released = len(found)
            if released < _RELEASE_BATCH:  # a full batch: look again next tick
                self._next_release_check = now + _RELEASE_CHECK_EVERY
        return released + await self._publish_due(now)

    async def _publish_due(self, now: datetime) -> int:
        due = await self.ports.scheduler.take_due(now)
        if due:
            try:
                await self.ports.events.record_messages([item.message for item in due])
            except Exception:
                # Taken but not recorded: put them back, so they fire late, not never.
                for item in due:
                    with contextlib.suppress(WorkflowEngineError):
                        await self.ports.scheduler.schedule(item)
                raise
        return len(due)

    async def work_once(self, consumer: str | None = None, *, count: int = 10,
                        claim: bool = True) -> int:
        """Process new messages and (``claim``) idle pending ones; return how many."""
        consumer = consumer or self.worker_id
        stream, group = self.ports.stream, self.settings.group
        deliveries = (await stream.claim_idle(group, consumer,
                                              min_idle=self.settings.claim_idle, count=count)
                      if claim else [])
        deliveries += await stream.consume(group, consumer, count=count)
        for delivery in deliveries:
            await self.process(delivery)
        return len(deliveries)

    async def run_until_idle(self, *, max_rounds: int = 10_000) -> int:
        """Tick and work until nothing is due or queued now; return messages handled."""
        handled = 0
        for round_ in range(max_rounds):
            published = await self.tick()
            # Idle pending messages are claimed in the first round only: what a round
            # leaves pending is not idle a moment later (claim_idle is seconds).
            done = await self.work_once(claim=round_ == 0)
            handled += done
            if not published and not done:
                return handled
        raise RuntimeError(f"still busy after {max_rounds} rounds")

    async def run_until_finished(
        self, tenant: str, run_id: str, *, timeout_s: float = 60.0
    ) -> RunSummary:
        """Work until the run finishes or nothing but a wait is left; sleeps until timers.

        For the CLI and embedding: drives this process's queue in place of a worker.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            await self.run_until_idle()
            run = await self.get_run(tenant, run_id)
            left = deadline - asyncio.get_running_loop().time()
            if run.finished or left <= 0:
                return run
            if run.status == "waiting" and (
                run.next_due_at is None
                or (run.next_due_at - self.ports.clock.now()).total_seconds() > left
            ):
                return run  # waits on an event, a person, or a timer beyond the deadline
            next_due = await self.ports.scheduler.next_due()
            now = self.ports.clock.now()
            pause = 0.01 if next_due is None else (next_due - now).total_seconds()
            await asyncio.sleep(min(max(pause, 0.0), 1.0))

    async def process(self, delivery: Delivery) -> ProcessOutcome:
        """Handle one delivery and ack it; leave it pending when it may succeed later.

        Returns ``acked`` (handled), ``rejected`` (a non-retryable error, audited and
        acked), ``retry`` (a retryable error: left pending) or ``failed`` (an unexpected
        exception, audited and left pending).
        """
        message = delivery.message
        headers = message.body.get(HEADERS_KEY)
        attributes: dict[str, str | int] = {
            "wf.message_kind": message.kind, "wf.tenant": message.tenant,
            "wf.run_id": message.run_id or "", "wf.message_id": message.id,
            "wf.delivery_count": delivery.delivery_count,
        }
        with self.telemetry.span(f"wf.process {message.kind}", attributes,
                                 headers=headers if isinstance(headers, dict) else None):
            return await self._process(delivery)

    async def _process(self, delivery: Delivery) -> ProcessOutcome:
        message = delivery.message
        outcome: ProcessOutcome = "acked"
        try:
            await handlers.handle(self, message)
        except WorkflowEngineError as e:
            if e.retryable:
                return "retry"  # stays pending: claimed again after claim_idle
            await self._audit(message.tenant, "message.rejected", message.run_id,
                              {"message_id": message.id, "kind": message.kind,
                               "error": e.to_dict()})
            outcome = "rejected"
        except Exception as e:
            # One bad message (a bug, a corrupt record) must not stop the worker.
            await self._audit(message.tenant, "message.failed", message.run_id,
                              {"message_id": message.id, "kind": message.kind,
                               "error": f"{type(e).__name__}: {e}",
                               "delivery_count": delivery.delivery_count})
            return "failed"  # stays pending: retried after claim_idle, dead-lettered later
        await self.ports.stream.ack(self.settings.group, delivery.delivery_id)
        return outcome

    # -- the core loop ------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lease_run(self, tenant: str, run_id: str) -> AsyncIterator[Lease | None]:
        """Hold the run's lease (None when another worker holds it) and release it after.

        The lease only spares duplicate work; the append's expected version is the guard.
        """
        lease = await self.ports.lock.acquire(keys.run_lock_key(tenant, run_id),
                                              self.worker_id, ttl=self.settings.lock_ttl)
        try:
            yield lease
        finally:
            if lease is not None:
                await self.ports.lock.release(lease)

    async def _apply(self, tenant: str, run_id: str, inp: cmd.Input, *,
                     result: ActionResult | None = None,
                     loaded: RunState | None = None, in_place: bool = False) -> cmd.Decision:
        """Decide on ``inp`` and append the decision, reloading after each conflict.

        ``result``, when given, is the action outcome ``inp`` reports: recorded with the
        append (or alone, when the decision has no events). ``loaded`` is a state read
        earlier, tried first: the append's expected version catches it being stale.
        ``in_place`` (a worker handling a message): an action the decision schedules
        runs right here under the same lease, and so on for what its outcome decides
        (see ``RuntimeSettings.run_actions_in_place``). Returns the first decision.
        """
        async with self.lease_run(tenant, run_id) as lease:
            # In place only under the lease: another worker holding it is likely on this
            # run already, and the work goes to whichever of them the stream hands it.
            decision, state, held = await self._decide_and_append(
                tenant, run_id, inp, lease, result=result, loaded=loaded,
                in_place=in_place and lease is not None)
            # run_in_place extends the lease as it goes: an extended lease keeps its key,
            # owner and token, which is all lease_run's release needs.
            current = lease
            while held is not None:
                state, held, current = await run_in_place(self, state, held, current)
            return decision

    async def _decide_and_append(
        self, tenant: str, run_id: str, inp: cmd.Input, lease: Lease | None, *,
        result: ActionResult | None = None, loaded: RunState | None = None,
        in_place: bool = False, release: Sequence[str] = (),
    ) -> tuple[cmd.Decision, RunState, Message | None]:
        """One decision, appended; the new state and the message held for in place.

        ``release`` names the held message whose outcome ``inp`` reports: dropped by
        the append, so it is never published.
        """
        for _ in range(self.settings.max_conflict_retries):
            # Not the cached state as it is: a decision on a state other writers have
            # moved past can re-derive events they already stored (at a frozen clock,
            # identical ones), which the store would take for a retry of that batch and
            # accept without this input. _load reads what was appended since.
            state = loaded if loaded is not None else await self._load(tenant, run_id)
            loaded = None
            if state.status == "new":
                raise RunNotFoundError(f"run {run_id} not found")
            if state.status == "moved":  # not retryable: the target has the run now
                raise await moves.moved_error(self, summarize(state))
            if state.queue != self.settings.queue or state.engine != self.settings.engine:
                await self._refuse_foreign(state)
            definition = await self._definition_of(state)
            now = self.ports.clock.now()
            decision = await self._decide(definition, state, inp, now)
            if not decision.events:
                if result is not None:
                    await self.ports.ledger.record_result(result)
                return decision, state, None
            messages, held, holding = self._outgoing(state, decision, now, in_place=in_place)
            try:
                new_state = await self._append(state, decision, lease, messages, result,
                                               held=holding, release=release)
            except ConcurrencyConflictError:
                continue  # another writer won: reload and decide again
            self._remember(new_state)
            await self._carry_out(state, decision.commands)
            return decision, new_state, held
        raise StorageUnavailableError(
            f"run {run_id}: gave up after {self.settings.max_conflict_retries} conflicts"
        )

    def _outgoing(
        self, state: RunState, decision: cmd.Decision, now: datetime, *, in_place: bool,
    ) -> tuple[list[Message], Message | None, tuple[HeldMessage, ...]]:
        """What a decision's append records besides its events.

        Returns the messages to queue, the ``execute_action`` message this worker keeps
        to run in place (``in_place``), and that message held until ``claim_idle``.
        """
        messages = self._follow_ups(state, decision.commands)
        if self._frees_capacity(state, decision):
            messages.append(self._message("admit_runs", state.tenant, None, {}))
        held = take_in_place(self, messages) if in_place else None
        if held is None:
            return messages, None, ()
        return messages, held, (HeldMessage(message=held, until=now + self.settings.claim_idle),)

    async def _decide(self, definition: Definition, state: RunState, inp: cmd.Input,
                      now: datetime) -> cmd.Decision:
        evaluator = self.settings.expression_evaluator or IN_PROCESS
        ctx = DecisionContext(now=now, limits=self.settings.expression_limits,
                              evaluator=evaluator)
        if evaluator.blocking:  # decide is pure, so a thread is safe
            return await asyncio.to_thread(decide, definition, state, inp, ctx)
        return decide(definition, state, inp, ctx)

    def hand_over(self) -> None:
        """Run no more actions in place: send them as messages from now on.

        For a worker shutting down: the action it is running finishes and is reported,
        and what that decides next goes to the stream for the other workers, instead
        of keeping this worker busy until the run waits or ends.
        """
        self._handing_over = True

    async def _invoke(self, message: Message, rkey: str, *, in_place: bool) -> ActionResult:
        """Run an ``execute_action`` message's action and tell the listeners."""
        started_at = self.ports.clock.now()
        result = await invoke_action(self.actions, self.telemetry, message, rkey)
        if self.action_listeners:
            run = ActionRun(message=message, result=result, in_place=in_place,
                            started_at=started_at, finished_at=self.ports.clock.now())
            for listener in self.action_listeners:
                listener(run)
        return result

    async def _refuse_foreign(self, state: RunState) -> None:
        data = {"run_engine": state.engine, "run_queue": state.queue,
                "worker_engine": self.settings.engine, "worker_queue": self.settings.queue}
        await self._audit(state.tenant, "run.foreign_queue", state.run_id, data)
        # Retryable: the message stays pending, so a worker of the right queue can claim
        # it; acking here would strand the run.
        raise _ForeignRunError(
            f"run {state.run_id} executes on engine {state.engine!r} queue {state.queue!r}, "
            f"not on this worker's {self.settings.engine!r}/{self.settings.queue!r}",
            details=data,
        )

    async def _append(
        self, state: RunState, decision: cmd.Decision, lease: Lease | None,
        messages: Sequence[Message] = (), result: ActionResult | None = None, *,
        held: Sequence[HeldMessage] = (), release: Sequence[str] = (),
    ) -> RunState:
        new_state = replay(decision.events, state)
        envelopes = [
            to_envelope(state.tenant, state.run_id, state.version + i, event)
            for i, event in enumerate(decision.events, start=1)
        ]
        await self.ports.events.append(
            envelopes, expected_version=state.version, summary=summarize(new_state),
            fencing_token=lease.token if lease else None, messages=messages, result=result,
            held=held, release=release,
        )
        await self._snapshot_if_due(state, new_state)
        return new_state

    async def _snapshot_if_due(self, state: RunState, new_state: RunState) -> None:
        """Save a snapshot when the append from ``state`` crossed a multiple."""
        every = self.settings.snapshot_every
        if every > 0 and new_state.version // every > state.version // every:
            await self.ports.events.save_snapshot(Snapshot(
                tenant=state.tenant, run_id=state.run_id, version=new_state.version,
                state=encode_state(new_state),
            ))

    def _frees_capacity(self, state: RunState, decision: cmd.Decision) -> bool:
        """Whether the decision finishes a run whose tenant has a limit (see ``quota``).

        Its append then records an ``admit_runs`` message in the same transaction, so the
        freed slot is handed on even when this process dies right after the commit.
        """
        return self._quota.limit_for(state.tenant) is not None and any(
            isinstance(e, RunCompleted | RunFailed | RunCancelled) for e in decision.events)

    def _follow_ups(self, state: RunState, commands: Sequence[cmd.Command]) -> list[Message]:
        """The messages a decision's commands send: recorded with its append (the outbox)."""
        tenant, run_id = state.tenant, state.run_id
        messages: list[Message] = []
        for command in commands:
            match command:
                case cmd.ExecuteAction():
                    messages.append(self._message("execute_action", tenant, run_id, {
                        "key": command.key, "action": command.action, "input": command.input,
                        "idempotency_key": command.idempotency_key, "attempt": command.attempt,
                        "timeout_s": command.timeout_s,
                    }))
                case cmd.NotifyParent():
                    finished = cmd.ChildFinished(child_run_id=command.child_run_id,
                                                 status=command.status, output=command.output,
                                                 error=command.error)
                    messages.append(self._message("deliver", tenant, command.parent_run_id,
                                                  {"input": encode_input(finished)}))
                case cmd.StartChildRun():
                    messages.append(self._message("start_child", tenant, run_id, {
                        "child_run_id": command.child_run_id,
                        "parent_step_key": command.parent_step_key,
                        "definition_id": command.definition_id,
                        "definition_version": command.definition_version,
                        "input": command.input,
                    }))
                case cmd.CancelChildRun():
                    messages.append(self._message("cancel_child", tenant, run_id, {
                        "child_run_id": command.child_run_id,
                        "reason": f"parent run {run_id} finished",
                    }))
        return messages

    async def _carry_out(self, state: RunState, commands: Sequence[cmd.Command]) -> None:
        """Carry out the commands that are not messages (timers; see ``_follow_ups``)."""
        tenant, run_id = state.tenant, state.run_id
        for command in commands:
            match command:
                case cmd.StartTimer():
                    fire = cmd.FireTimer(timer_id=command.timer_id)
                    await self.ports.scheduler.schedule(ScheduledMessage(
                        key=keys.timer_schedule_key(tenant, run_id, command.timer_id),
                        due_at=command.fire_at,
                        message=self._message("deliver", tenant, run_id,
                                              {"input": encode_input(fire)}),
                    ))
                case cmd.CancelTimer():
                    await self.ports.scheduler.cancel(
                        keys.timer_schedule_key(tenant, run_id, command.timer_id))

    # -- helpers ------------------------------------------------------------------------
    async def _load(self, tenant: str, run_id: str, *, upto: int | None = None) -> RunState:
        cached = self._states.get((tenant, run_id)) if upto is None else None
        if cached is not None:
            # Never stale: whatever was appended since (by any process) is read and folded.
            # Stored versions never change, so the cached prefix is still the history's.
            _, tail = await self.ports.events.load_run(tenant, run_id, after=cached.version)
            if not tail:
                self._states.move_to_end((tenant, run_id))
                return cached
            state = replay(tail, cached)
            self._remember(state)
            return state
        snapshot, tail = await self.ports.events.load_run(tenant, run_id, upto=upto)
        state = replay(tail, decode_state(snapshot.state) if snapshot else RunState())
        if upto is None:
            self._remember(state)
        return state

    def _remember(self, state: RunState) -> None:
        """Cache a run's state (least recently used runs leave first; finished runs too)."""
        key = (state.tenant, state.run_id)
        if state.status == "new" or state.finished or self.settings.state_cache_size <= 0:
            self._states.pop(key, None)
            return
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > self.settings.state_cache_size:
            self._states.popitem(last=False)

    async def _definition_of(self, state: RunState) -> Definition:
        definition = await self.definition(state.tenant, state.definition_id,
                                           state.definition_version)
        if definition.content_hash != state.definition_hash:
            raise NondeterminismError(
                f"run {state.run_id} started with {state.definition_id} "
                f"v{state.definition_version} hash {state.definition_hash[:12]}, "
                f"but the stored version hashes to {definition.content_hash[:12]}"
            )
        return definition

    async def _require_open_run(self, tenant: str, run_id: str) -> RunSummary:
        run = await self.get_run(tenant, run_id)
        if run.status == "moved":
            raise await moves.moved_error(self, run)
        if run.finished:
            raise RunFinishedError(f"run {run_id} is already {run.status}")
        return run

    def _message(self, kind: MessageKind, tenant: str, run_id: str | None,
                 body: dict[str, Any]) -> Message:
        headers = self.telemetry.headers()
        if headers:
            body = {**body, HEADERS_KEY: headers}
        return Message(id=self.ports.ids.new_id(), kind=kind, tenant=tenant, run_id=run_id,
                       body=body)

    async def _enqueue(self, kind: MessageKind, tenant: str, run_id: str | None,
                       body: dict[str, Any]) -> str:
        """Record one message in the outbox (no events); return its id."""
        message = self._message(kind, tenant, run_id, body)
        await self.ports.events.record_messages([message])
        return message.id

    async def _audit(
        self, tenant: str, kind: str, run_id: str | None, data: dict[str, Any]
    ) -> None:
        await self.ports.audit.append_audit(AuditRecord(
            tenant=tenant, kind=kind, at=self.ports.clock.now(), run_id=run_id, data=data,
        ))

