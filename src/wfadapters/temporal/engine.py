"""``TemporalEngine``: the application-facing engine API over a Temporal cluster.

Each run is a ``wf.run`` workflow (``workflows.RunWorkflow``) whose id is
``<tenant>/<run id>``; Temporal is the only authority that executes and resumes it. The
engine starts workflows, routes events to them by signal, cancels through Temporal
cancellation, and reads: the run projection from the workflow's memo, the history and
action outcomes by query, listings from visibility (search attributes ``WfTenant``,
``WfStatus``, ``WfWaits``, ``WfParent``). Definitions and the audit log of a tenant live
in a ``wf.tenant`` workflow on the same task queue.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from wfadapters.temporal import moves, waiting, wire
from wfadapters.temporal.converter import DATA_CONVERTER
from wfadapters.temporal.errors import quote as _q
from wfadapters.temporal.errors import unavailable as _unavailable
from wfadapters.temporal.pollers import QueuePollers, served
from wfdomain.actions import ActionRegistry
from wfdomain.codec import decode_envelope
from wfdomain.commands import DecideTask
from wfdomain.correlation import CorrelationResolver
from wfdomain.definition import Definition, parse_definition
from wfdomain.engine import Engine
from wfdomain.errors import (
    DefinitionError,
    DefinitionNotFoundError,
    ErrorCode,
    HumanTaskNotFoundError,
    InputValidationError,
    RunAlreadyExistsError,
    RunFinishedError,
    RunNotFoundError,
    UnsupportedOperationError,
    WorkflowEngineError,
)
from wfdomain.events import RunStarted
from wfdomain.expressions import ExpressionLimits
from wfdomain.inputs import encode_input
from wfdomain.moves import MoveResult, MoveTarget
from wfdomain.projection import summarize
from wfdomain.records import (
    AuditRecord,
    EventEnvelope,
    ExecutedRun,
    HumanTaskRecord,
    RunSummary,
    StoredDefinition,
)
from wfdomain.schema import validate_against_schema
from wfdomain.starting import run_started
from wfdomain.state import RunState, replay

__all__ = ["CancelNotConfirmedError", "TemporalEngine", "TemporalSettings"]

_KEYWORDS = (wire.SA_TENANT, wire.SA_STATUS, wire.SA_PARENT)
# Finished runs are found by Temporal's own status (WfStatus is kept for open runs only);
# a moved run's workflow completed (its summary, filtered below, says ``moved``).
_CLOSED = {"completed": "Completed", "failed": "Failed", "cancelled": "Canceled",
           "moved": "Completed"}
T = TypeVar("T")


class CancelNotConfirmedError(WorkflowEngineError):
    """Temporal accepted the cancel request but had not cancelled the run in time."""

    default_code = ErrorCode.CANCEL_NOT_CONFIRMED
    retryable = True


@dataclass(frozen=True, slots=True, kw_only=True)
class TemporalSettings:
    """Where and how the Temporal engine runs. Producer and worker share all of it.

    Attributes:
        target: ``host:port`` of the Temporal frontend.
        namespace: Temporal namespace.
        task_queue: The one task queue runs are started on and workers poll.
        correlation_paths: Payload paths per event name for deriving correlation keys.
        history_limit: Continue-as-new (carrying the run's history and a snapshot) once a
            run's Temporal history is longer than this many events; 0 never.
        cancel_timeout_s: How long ``cancel_run`` waits for Temporal to confirm.
        move_timeout_s: How long ``move_run`` waits for Temporal to confirm that the
            run's workflow recorded the move, and again that it closed.
        settle_timeout_s: Longest ``run_until_idle`` waits for work to settle.
        expression_limits: Guardrails of every expression evaluation, carried to the
            workflow with each run (the defaults when None).
    """

    target: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "default"
    correlation_paths: Mapping[str, Sequence[str]] = field(default_factory=dict)
    history_limit: int = 2000
    cancel_timeout_s: float = 10.0
    move_timeout_s: float = 30.0
    settle_timeout_s: float = 60.0
    expression_limits: ExpressionLimits | None = None


class TemporalEngine:
    """The engine API (``wfdomain.engine.Engine``) with Temporal as the executor."""

    engine_name = "temporal"

    def __init__(self, client: Client, actions: ActionRegistry,
                 settings: TemporalSettings | None = None) -> None:
        """Wrap a connected client; see ``connect``."""
        self.client = client
        self.actions = actions
        self.settings = settings or TemporalSettings()
        self._resolver = CorrelationResolver(self.settings.correlation_paths)
        self._definitions: dict[tuple[str, str, int], Definition] = {}
        self._watch: set[str] = set()
        self._pollers = QueuePollers(client, self.settings.namespace)

    async def _served(self, call: Awaitable[T]) -> T:
        """Await a query or update, failing fast when no worker serves the queue."""
        return await served(self._pollers, self.settings.task_queue, self.settings.namespace,
                            call)

    @classmethod
    async def connect(cls, settings: TemporalSettings, actions: ActionRegistry) -> TemporalEngine:
        """Connect to the cluster and make sure the search attributes exist.

        Raises:
            StorageUnavailableError: the frontend cannot be reached.
        """
        try:
            client = await Client.connect(settings.target, namespace=settings.namespace,
                                          data_converter=DATA_CONVERTER)
        except (RPCError, RuntimeError, OSError) as e:
            raise _unavailable(e) from e
        engine = cls(client, actions, settings)
        await engine.ensure_search_attributes()
        return engine

    async def ensure_search_attributes(self) -> None:
        """Register the engine's custom search attributes (once per namespace)."""
        kinds = {name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in _KEYWORDS}
        kinds[wire.SA_WAITS] = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
        try:
            await self.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
                namespace=self.settings.namespace, search_attributes=kinds))
        except RPCError as e:
            if e.status != RPCStatusCode.ALREADY_EXISTS:
                raise _unavailable(e) from e

    # -- definitions ---------------------------------------------------------------------
    async def _tenant_handle(self, tenant: str) -> WorkflowHandle[Any, Any]:
        try:
            return await self.client.start_workflow(
                wire.TENANT_WORKFLOW, None, id=wire.tenant_workflow_id(self.settings.task_queue,
                                                                      tenant),
                task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except RPCError as e:
            raise _unavailable(e) from e

    async def _put_definition(self, stored: StoredDefinition) -> Any:
        handle = await self._tenant_handle(stored.tenant)
        return await handle.execute_update("put_definition", {
            "definition_id": stored.definition_id, "version": stored.version,
            "content_hash": stored.content_hash, "document": stored.document})

    async def register_definition(self, tenant: str, definition: Definition) -> StoredDefinition:
        """Check a definition's actions and store it in the tenant's catalogue.

        The catalogue is a workflow, so a worker must serve the task queue.

        Raises:
            UnknownActionError: an action step names an unregistered action.
            DefinitionError: code ``DEFINITION_CONFLICT`` when the version is stored with
                other content.
            StorageUnavailableError: no worker serves the task queue (at once, details:
                ``task_queue``), or the server cannot be reached.
        """
        self.actions.check_definition(definition)
        stored = StoredDefinition(
            tenant=tenant, definition_id=definition.id, version=definition.version,
            content_hash=definition.content_hash, document=definition.to_document(),
        )
        conflict = await self._served(self._put_definition(stored))
        if conflict is not None:
            raise DefinitionError(
                f"definition {definition.id} v{definition.version} is registered with other "
                f"content (hash {str(conflict['content_hash'])[:12]})",
                code=ErrorCode.DEFINITION_CONFLICT)
        self._definitions[(tenant, definition.id, definition.version)] = definition
        return stored

    async def _stored(self, tenant: str, definition_id: str, version: int | None
                      ) -> StoredDefinition:
        handle = self.client.get_workflow_handle(
            wire.tenant_workflow_id(self.settings.task_queue, tenant))
        try:
            memo = await (await handle.describe()).memo()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise _unavailable(e) from e
            memo = {}
        catalogue: dict[str, dict[str, Any]] = memo.get("definitions") or {}
        if version is not None:
            found = catalogue.get(f"{definition_id}@{version}")
        else:
            versions = [d for d in catalogue.values() if d["definition_id"] == definition_id]
            found = max(versions, key=lambda d: int(d["version"])) if versions else None
        if found is None:
            which = f"{definition_id} v{version}" if version else definition_id
            raise DefinitionNotFoundError(f"definition {which} is not registered")
        return StoredDefinition(tenant=tenant, definition_id=found["definition_id"],
                                version=found["version"], content_hash=found["content_hash"],
                                document=found["document"])

    async def definition(
        self, tenant: str, definition_id: str, version: int | None = None
    ) -> Definition:
        """Return a registered definition (the highest version when ``version`` is None)."""
        cached = self._definitions.get((tenant, definition_id, version or 0))
        if cached is not None:
            return cached
        stored = await self._stored(tenant, definition_id, version)
        key = (tenant, stored.definition_id, stored.version)
        if key not in self._definitions:
            self._definitions[key] = parse_definition(stored.document)
        return self._definitions[key]

    # -- producer side -------------------------------------------------------------------
    def _params(self, tenant: str, run_id: str, definition: Definition, run_input: Any,
                **extra: Any) -> dict[str, Any]:
        limits = self.settings.expression_limits
        return {"tenant": tenant, "run_id": run_id, "definition": definition.to_document(),
                "input": run_input, "engine": self.engine_name,
                "queue": self.settings.task_queue, "parent": None, "replay_of": None,
                "history": None, "results": None, "snapshot": None,
                "history_limit": self.settings.history_limit,
                "expression_limits": None if limits is None else asdict(limits), **extra}

    async def _start(self, params: dict[str, Any], summary: RunSummary) -> None:
        tenant, run_id = params["tenant"], params["run_id"]
        attributes = TypedSearchAttributes([
            SearchAttributePair(SearchAttributeKey.for_keyword(wire.SA_TENANT), tenant),
            SearchAttributePair(SearchAttributeKey.for_keyword(wire.SA_STATUS), summary.status),
        ])
        workflow_id = wire.run_workflow_id(tenant, run_id)
        try:
            await self.client.start_workflow(
                wire.RUN_WORKFLOW, params, id=workflow_id, task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                memo={"summary": wire.encode_summary(summary)},
                search_attributes=attributes,
                static_summary=f"{summary.definition_id} v{summary.definition_version}",
            )
        except WorkflowAlreadyStartedError:
            raise RunAlreadyExistsError(f"run {run_id} already exists") from None
        except RPCError as e:
            raise _unavailable(e) from e
        self._watch.add(workflow_id)

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
        """Start the run's workflow; returns at once (the worker executes it).

        Raises:
            DefinitionNotFoundError, InputValidationError, UnknownActionError,
            RunAlreadyExistsError: as ``Runtime.start_run``.
        """
        definition = await self.definition(tenant, definition_id, version)
        self.actions.check_definition(definition)
        validate_against_schema(run_input, definition.input_schema, what="run input")
        run_id = run_id or str(uuid.uuid4())
        started = run_started(
            definition, run_input, at=datetime.now(UTC), tenant=tenant, run_id=run_id,
            engine=self.engine_name, queue=self.settings.task_queue, parent=parent,
            replay_of=replay_of,
        )
        summary = summarize(replay([started]))
        await self._start(self._params(tenant, run_id, definition, run_input,
                                       parent=list(parent) if parent else None,
                                       replay_of=replay_of), summary)
        return summary

    async def submit_event(
        self,
        tenant: str,
        name: str,
        payload: Any = None,
        *,
        correlation_key: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Audit the event, resolve its correlation, signal the runs whose waits match.

        The ``WfWaits`` index only narrows the candidates: each run decides, with its
        own state and the wait's payload filter, whether the event resolves a wait, and
        audits ``event.unmatched`` when it does not.

        Raises:
            RunNotFoundError, RunFinishedError: ``run_id`` is unknown or finished.
        """
        if not name:
            raise InputValidationError("event name must not be empty", code=ErrorCode.EVENT_INVALID)
        if run_id is not None:
            await self._require_open_run(tenant, run_id)
        event_id = str(uuid.uuid4())
        body = {"event_id": event_id, "name": name, "payload": payload,
                "correlation_key": correlation_key}
        await self._audit(tenant, "event.submitted", run_id, body)
        correlation = self._resolver.resolve(name, payload, correlation_key)
        if correlation is None:
            await self._audit(tenant, "correlation.unresolved", run_id, body)
            return event_id
        query = (f"{self._base_query(tenant)} AND ExecutionStatus = 'Running' AND "
                 f"{wire.SA_WAITS} = {_q(wire.wait_token(name, correlation))}")
        if run_id is not None:
            query += f" AND WorkflowId = {_q(wire.run_workflow_id(tenant, run_id))}"
        try:
            workflow_ids = [wf.id async for wf in self.client.list_workflows(query)]
        except RPCError as e:
            raise _unavailable(e) from e
        if not workflow_ids:
            await self._audit(tenant, "event.unmatched", run_id, {
                **body, "resolved_correlation_key": correlation, "candidates": 0})
            return event_id
        for workflow_id in workflow_ids:
            try:
                await self.client.get_workflow_handle(workflow_id).signal(
                    "event", {**body, "correlation_key": correlation})
            except RPCError as e:
                if e.status != RPCStatusCode.NOT_FOUND:  # finished meanwhile: not a candidate
                    raise _unavailable(e) from e
            self._watch.add(workflow_id)
        return event_id

    async def decide_task(
        self, tenant: str, task_id: str, outcome: str, data: Any = None,
        *, decided_by: str | None = None,
    ) -> str:
        """Validate a decision on an open human task and signal it to the run.

        Raises:
            HumanTaskNotFoundError: no open task with this id for the tenant.
            InputValidationError: code ``DECISION_INVALID``.
        """
        run_id, sep, _ = task_id.rpartition(":steps[")
        task: HumanTaskRecord | None = None
        if sep:
            try:
                run = await self.get_run(tenant, run_id)
                task = next((t for t in run.human_tasks if t.task_id == task_id), None)
            except RunNotFoundError:
                task = None
        if task is None:
            raise HumanTaskNotFoundError(f"no open human task {task_id!r}")
        if outcome not in task.outcomes:
            raise InputValidationError(
                f"outcome {outcome!r} is not one of {list(task.outcomes)}",
                code=ErrorCode.DECISION_INVALID, path="outcome",
            )
        validate_against_schema(data, task.form_schema, what="decision data",
                                code=ErrorCode.DECISION_INVALID)
        decision = DecideTask(task_id=task_id, outcome=outcome, data=data, decided_by=decided_by)
        await self._signal(tenant, run_id, "deliver", encode_input(decision))
        return str(uuid.uuid4())

    async def cancel_run(
        self, tenant: str, run_id: str, *, reason: str | None = None,
        requested_by: str | None = None,
    ) -> RunSummary:
        """Cancel the run's workflow; return once Temporal reports it cancelled.

        Raises:
            RunNotFoundError, RunFinishedError: as ``Runtime.cancel_run``.
            CancelNotConfirmedError: Temporal had not cancelled it within
                ``cancel_timeout_s`` (the projection is left as the run reports it).
        """
        await self._require_open_run(tenant, run_id)
        await self._signal(tenant, run_id, "cancel_request",
                           {"reason": reason, "requested_by": requested_by})
        handle = self._handle(tenant, run_id)
        try:
            await handle.cancel()
        except RPCError as e:
            raise _unavailable(e) from e
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.cancel_timeout_s
        while loop.time() < deadline:
            status = (await self._describe(tenant, run_id)).status
            if status == WorkflowExecutionStatus.CANCELED:
                return await self.get_run(tenant, run_id)
            if status != WorkflowExecutionStatus.RUNNING:
                raise RunFinishedError(f"run {run_id} finished ({status}) before the cancel")
            await asyncio.sleep(0.02)
        raise CancelNotConfirmedError(
            f"Temporal accepted the cancel of run {run_id} but had not cancelled it after "
            f"{self.settings.cancel_timeout_s}s (is a worker polling "
            f"{self.settings.task_queue!r}?)", details={"run_id": run_id})

    async def replay_run(
        self, tenant: str, run_id: str, *, run_input: Any = None, use_original_input: bool = True,
    ) -> RunSummary:
        """Start a new workflow of the same definition version from the original input."""
        started = decode_envelope((await self.history(tenant, run_id))[0])
        assert isinstance(started, RunStarted)
        return await self.start_run(
            tenant, started.definition_id,
            started.input if use_original_input else run_input,
            version=started.definition_version, replay_of=run_id,
        )

    async def resume_run(self, tenant: str, run_id: str) -> int:
        """Refused: Temporal re-drives its workflows itself."""
        raise UnsupportedOperationError(
            "resume_run is not needed on Temporal: the server re-drives every open workflow")

    async def stuck_runs(self, tenant: str, *, older_than: Any = None) -> list[Any]:
        """Open runs not progressing past ``older_than`` (5 min when None), with the reason.

        Returns ``TemporalStuckRun`` items (a ``StuckRun`` with ``kind`` and ``details``),
        found from task queue pollers and each workflow's pending work (``temporal/stuck.py``).
        """
        from wfadapters.temporal import stuck  # its service requests load on first use

        return list(await stuck.find_stuck(self, tenant, older_than=older_than))

    # -- moving runs (temporal/moves.py) ---------------------------------------------------
    async def export_run(self, tenant: str, run_id: str) -> dict[str, Any]:
        """Return the run's portable archive (history and every attempt's outcome)."""
        return await moves.export_run(self, tenant, run_id)

    async def import_run(
        self, data: dict[str, Any], *, tenant: str | None = None, resume: bool = True,
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
        return await moves.import_run(self, data, tenant=tenant, resume=resume)

    async def move_run(self, tenant: str, run_id: str, target: Engine,
                       where: MoveTarget) -> MoveResult:
        """Move a run to ``target`` (any engine); its workflow here closes ``moved``.

        The workflow records ``RunMoved`` (the ``move`` update) and completes; only once
        Temporal confirms both is the run exported and imported there. Repeating the call
        finishes an interrupted move. See ``moves.move_run`` for the errors.
        """
        return await moves.move_run(self, target, tenant, run_id, where)

    async def mark_moved(self, tenant: str, run_id: str, where: MoveTarget) -> RunSummary:
        """Only mark the run ``moved`` for ``where`` (the first half of ``move_run``)."""
        return await moves.mark_moved(self, tenant, run_id, where)

    # -- queries -------------------------------------------------------------------------
    def _handle(self, tenant: str, run_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(wire.run_workflow_id(tenant, run_id))

    async def _describe(self, tenant: str, run_id: str) -> Any:
        try:
            return await self._handle(tenant, run_id).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise RunNotFoundError(f"run {run_id} not found") from None
            raise _unavailable(e) from e

    async def _query(self, tenant: str, run_id: str, name: str) -> Any:
        try:
            return await self._served(self._handle(tenant, run_id).query(name))
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise RunNotFoundError(f"run {run_id} not found") from None
            raise _unavailable(e) from e

    async def _signal(self, tenant: str, run_id: str, name: str, body: dict[str, Any]) -> None:
        try:
            await self._handle(tenant, run_id).signal(name, body)
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                await self._require_open_run(tenant, run_id)  # RUN_MOVED when it moved
                raise RunFinishedError(f"run {run_id} is no longer open") from None
            raise _unavailable(e) from e
        self._watch.add(wire.run_workflow_id(tenant, run_id))

    async def _memo(self, tenant: str, run_id: str) -> dict[str, Any]:
        memo: dict[str, Any] = await (await self._describe(tenant, run_id)).memo()
        return memo

    async def get_run(self, tenant: str, run_id: str) -> RunSummary:
        """Return a run's projection (the workflow's memo)."""
        return wire.decode_summary((await self._memo(tenant, run_id))["summary"])

    async def _require_open_run(self, tenant: str, run_id: str) -> RunSummary:
        run = await self.get_run(tenant, run_id)
        if run.status == "moved":
            raise await moves.moved_error(self, run)
        if run.finished:
            raise RunFinishedError(f"run {run_id} is already {run.status}")
        return run

    def _base_query(self, tenant: str) -> str:
        return (f"WorkflowType = {_q(wire.RUN_WORKFLOW)} AND "
                f"TaskQueue = {_q(self.settings.task_queue)} AND {wire.SA_TENANT} = {_q(tenant)}")

    async def list_runs(
        self, tenant: str, *, statuses: Sequence[str] | None = None, limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Return the tenant's runs on this task queue, newest first (from visibility)."""
        query = self._base_query(tenant)
        if statuses is not None:
            opened = [s for s in statuses if s in ("running", "waiting")]
            closed = [_CLOSED[s] for s in statuses if s in _CLOSED]
            parts = ([f"(ExecutionStatus = 'Running' AND {wire.SA_STATUS} IN "
                      f"({', '.join(_q(s) for s in opened)}))"] if opened else [])
            parts += ([f"ExecutionStatus IN ({', '.join(_q(s) for s in closed)})"]
                      if closed else [])
            if not parts:
                return []
            query += f" AND ({' OR '.join(parts)})"
        runs: list[RunSummary] = []
        try:
            async for execution in self.client.list_workflows(query):
                memo = await execution.memo()
                if "summary" in memo:
                    runs.append(wire.decode_summary(memo["summary"]))
        except RPCError as e:
            raise _unavailable(e) from e
        if statuses is not None:  # a run finishing right now may still be listed as open
            runs = [r for r in runs if r.status in statuses]
        runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return runs[offset:offset + limit]

    async def list_human_tasks(self, tenant: str) -> list[HumanTaskRecord]:
        """Open human tasks of the tenant's waiting runs."""
        runs = await self.list_runs(tenant, statuses=["waiting"], limit=10_000)
        return [task for run in reversed(runs) for task in run.human_tasks]

    async def list_audit(self, tenant: str) -> list[AuditRecord]:
        """The tenant's audit log on this task queue, oldest first."""
        handle = self.client.get_workflow_handle(
            wire.tenant_workflow_id(self.settings.task_queue, tenant))
        try:
            records = await handle.query("audit_log")
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return []
            raise _unavailable(e) from e
        return [AuditRecord(tenant=tenant, kind=r["kind"], at=datetime.fromisoformat(r["at"]),
                            run_id=r.get("run_id"), data=r["data"], position=r["position"])
                for r in records]

    async def history(self, tenant: str, run_id: str) -> list[EventEnvelope]:
        """Return the run's history (queried from the workflow)."""
        data = await self._query(tenant, run_id, "history")
        return wire.decode_envelopes(tenant, run_id, data)

    async def get_state(self, tenant: str, run_id: str) -> RunState:
        """Return the run's current state, folded from its history."""
        return replay(decode_envelope(e) for e in await self.history(tenant, run_id))

    async def state_at(self, tenant: str, run_id: str, version: int) -> RunState:
        """Return the state after event ``version``."""
        history = await self.history(tenant, run_id)
        return replay(decode_envelope(e) for e in history[:version])

    async def _audit(self, tenant: str, kind: str, run_id: str | None,
                     data: dict[str, Any]) -> None:
        record = {"kind": kind, "at": datetime.now(UTC).isoformat(), "run_id": run_id,
                  "data": data}
        try:
            await self.client.start_workflow(
                wire.TENANT_WORKFLOW, None,
                id=wire.tenant_workflow_id(self.settings.task_queue, tenant),
                task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal="audit", start_signal_args=[record],
            )
        except RPCError as e:
            raise _unavailable(e) from e

    # -- waiting for work (temporal/waiting.py) --------------------------------------------
    async def run_until_idle(self, *, max_rounds: int = 10_000) -> int:
        """Wait until no run on this queue has work in progress; return runs watched.

        The worker (not this object) executes: this only waits for it, and for
        visibility to show the latest state of each run, so listings are current.

        Raises:
            StorageUnavailableError: still busy after ``settle_timeout_s``.
        """
        return len(await waiting.settle(self, lambda summaries: True))

    async def run_until_timers_fire(self, seconds: float) -> None:
        """Wait until every timer due within ``seconds`` from now has fired and settled."""
        await waiting.timers_fired(self, seconds)

    async def await_run(self, tenant: str, run_id: str, *, timeout_s: float = 60.0
                        ) -> RunSummary:
        """Wait (a long poll on the workflow's result, not polling) until the run finishes.

        Raises:
            RunNotFoundError: no such run.
            StorageUnavailableError: not finished within ``timeout_s``.
        """
        return await waiting.await_run(self, tenant, run_id, timeout_s=timeout_s)

    async def run_until_finished(
        self, tenant: str, run_id: str, *, timeout_s: float = 60.0
    ) -> RunSummary:
        """Wait until the run finishes or nothing but a wait is left."""
        return await waiting.run_until_finished(self, tenant, run_id, timeout_s=timeout_s)

    async def execute_run(
        self,
        tenant: str,
        definition_id: str,
        run_input: Any = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
    ) -> ExecutedRun:
        """Start the run's workflow and wait until it finishes or waits.

        Temporal's workers execute it (this process waits as ``run_until_finished``
        does, up to 60 s); what ``Runtime.execute_run`` does in place is the workflow's
        own job here. A completed run's output is then read with a query.
        """
        run = await self.start_run(tenant, definition_id, run_input, version=version,
                                   run_id=run_id)
        summary = await self.run_until_finished(tenant, run.run_id)
        output = None
        if summary.status == "completed":
            output = (await self.get_state(tenant, run.run_id)).output
        return ExecutedRun.of(summary, output)
