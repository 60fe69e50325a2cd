"""Temporal workflows: a run executing the pure interpreter, and a tenant's catalogue.

``RunWorkflow`` is a thin loop around ``wfdomain.decide``: it folds the run's events,
feeds every input (start, action outcome, timer, event, task decision, child result,
cancel) to the same ``decide`` the local runtime calls, with ``workflow.now()`` as the
logical time, and turns the decision's commands into Temporal commands (activities,
timers, child workflows, signals). Nothing here interprets a step. The ``move`` update
hands the run to another engine: ``RunMoved`` is recorded after every earlier input, and
the workflow stops and completes with the run ``moved``.

``TenantWorkflow`` holds a tenant's definitions and audit log on one task queue, so a
Temporal deployment needs no other server.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.common import (
        RetryPolicy,
        SearchAttributeKey,
        SearchAttributePair,
        TypedSearchAttributes,
    )
    from temporalio.exceptions import (
        ActivityError,
        ApplicationError,
        CancelledError,
        TimeoutError,
        WorkflowAlreadyStartedError,
    )
    from temporalio.workflow import ParentClosePolicy

    from wfadapters.temporal import wire
    from wfdomain import commands as cmd
    from wfdomain import keys
    from wfdomain.codec import decode_event, decode_state, encode_state, to_envelope
    from wfdomain.decide import DecisionContext, decide
    from wfdomain.definition import Definition, parse_definition
    from wfdomain.errors import ErrorCode, WorkflowEngineError
    from wfdomain.events import RunMoved, RunStarted, WorkflowEvent
    from wfdomain.expressions import ExpressionLimits
    from wfdomain.inputs import decode_input, encode_input
    from wfdomain.projection import summarize
    from wfdomain.recovery import pending_commands
    from wfdomain.schema import validate_against_schema
    from wfdomain.starting import run_started
from wfdomain.state import RunState, apply_in_place, replay

__all__ = ["RunWorkflow", "TenantWorkflow"]

_TENANT = SearchAttributeKey.for_keyword(wire.SA_TENANT)
_STATUS = SearchAttributeKey.for_keyword(wire.SA_STATUS)
_WAITS = SearchAttributeKey.for_keyword_list(wire.SA_WAITS)
_PARENT = SearchAttributeKey.for_keyword(wire.SA_PARENT)
_NO_RETRY = RetryPolicy(maximum_attempts=1)
# An action without a timeout may run long; Temporal needs some bound on an attempt.
_DEFAULT_ACTION_TIMEOUT = timedelta(days=1)
_ACTION_TIMEOUT_MARGIN = timedelta(seconds=5)


def _activity_error(e: ActivityError, action: str, timeout_s: float | None) -> dict[str, Any]:
    cause = e.cause
    if isinstance(cause, ApplicationError) and cause.details:
        detail = cause.details[0]
        if isinstance(detail, dict):
            return detail
    if isinstance(cause, TimeoutError):
        return {"code": ErrorCode.ACTION_TIMEOUT, "retryable": True,
                "message": f"action {action!r} exceeded {timeout_s}s"}
    return {"code": ErrorCode.ACTION_FAILED, "retryable": True, "message": str(cause or e)}


@workflow.defn(name=wire.RUN_WORKFLOW)
class RunWorkflow:
    """One run. Input: the run parameters built by ``TemporalEngine`` (JSON)."""

    def __init__(self) -> None:
        # Inputs in arrival order; ("event", body) and ("move", body) are routed here.
        self._inbox: list[cmd.Input | tuple[str, dict[str, Any]]] = []
        self._state = RunState()
        self._envelopes: list[dict[str, Any]] = []
        self._results: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._effects: list[asyncio.Task[None]] = []
        self._cancel_info: dict[str, Any] = {}
        # What the starter set: a new run is published as running with no waits.
        self._published: tuple[Any, ...] = ("running", ())
        self._shown: tuple[Any, ...] = (self._published, (), None)
        self._published_version = 0
        self._params: dict[str, Any] = {}
        self._definition: Definition | None = None
        self._limits: ExpressionLimits | None = None
        self._moved_to: dict[str, Any] | None = None

    # -- signals and queries -------------------------------------------------------------
    @workflow.signal(name="deliver")
    def deliver(self, body: dict[str, Any]) -> None:
        """An encoded ``wfdomain`` input (task decision, child result)."""
        self._inbox.append(decode_input(body))

    @workflow.signal(name="event")
    def event(self, body: dict[str, Any]) -> None:
        """An external event routed here by the correlation index."""
        self._inbox.append(("event", body))

    @workflow.signal(name="cancel_request")
    def cancel_request(self, body: dict[str, Any]) -> None:
        """Who cancels and why; the cancellation itself is Temporal's."""
        self._cancel_info = body

    @workflow.update(name="move")
    async def move(self, body: dict[str, Any]) -> dict[str, Any]:
        """Hand the run to another engine (``tenant``, ``engine``, ``queue``, ``moved_to``).

        Queued behind the inputs that arrived before it, so each of them is decided
        here first; then ``RunMoved`` is recorded, nothing more is executed, and the
        workflow completes. Returns the run's summary: ``moved``, or the final status of
        a run that finished before its turn came (the caller then copies it).
        """
        if not self._state.finished:
            self._inbox.append(("move", body))
        await workflow.wait_condition(lambda: self._state.finished)
        return {"summary": wire.encode_summary(summarize(self._state)),
                "moved_to": self._moved_to}

    @move.validator
    def _may_move(self, body: dict[str, Any]) -> None:
        # Rejected updates leave no trace in the history; repeating a move is accepted.
        if self._moved_to is not None and self._moved_to["url"] != body["moved_to"]:
            raise ApplicationError(
                f"run {self._params.get('run_id')} was moved to {self._moved_to['url']}",
                {"code": ErrorCode.RUN_MOVED, "moved_to": self._moved_to["url"]},
                type=ErrorCode.RUN_MOVED, non_retryable=True)

    @workflow.query(name="history")
    def history(self) -> list[dict[str, Any]]:
        """The run's history as JSON envelopes."""
        return self._envelopes

    @workflow.query(name="results")
    def results(self) -> dict[str, dict[str, Any]]:
        """Outcome of every action attempt, by result key (the run archive's ledger)."""
        return self._results

    # -- the loop ----------------------------------------------------------------------
    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        """Drive the run until it finishes; continue-as-new past the history limit."""
        self._params = params
        limits = params.get("expression_limits")
        self._limits = None if limits is None else ExpressionLimits(**limits)
        definition = parse_definition(params["definition"])
        self._definition = definition
        self._results = dict(params.get("results") or {})
        # Replaying (a Replayer's own queue, or a cache refill) re-checks nothing: the
        # first execution passed this check.
        queue = workflow.info().task_queue
        if not workflow.unsafe.is_replaying() and queue != params["queue"]:
            # Work meant for another queue: report it and execute nothing. The run stays
            # open (listed, cancellable) instead of running where it does not belong.
            await self._audit("run.foreign_queue", {
                "run_engine": params["engine"], "run_queue": params["queue"],
                "worker_engine": "temporal", "worker_queue": queue,
                "code": ErrorCode.RUN_WRONG_QUEUE}, queue=queue)
            await workflow.wait_condition(lambda: False)
        if params.get("history"):
            self._resume(params, definition)
        else:
            self._record([run_started(
                definition, params["input"], at=workflow.now(), tenant=params["tenant"],
                run_id=params["run_id"], engine=params["engine"], queue=params["queue"],
                parent=params.get("parent"), replay_of=params.get("replay_of"),
            )])
        self._inbox.append(cmd.Advance())
        limit = int(params.get("history_limit") or 0)
        try:
            while not self._state.finished:
                await workflow.wait_condition(lambda: bool(self._inbox))
                while self._inbox and not self._state.finished:
                    self._handle(definition, self._inbox.pop(0))
                self._publish()  # once per activation: the projection after all inputs
                self._effects = [t for t in self._effects if not t.done()]
                if (limit and not self._inbox and not self._tasks and not self._effects
                        and self._moved_to is None
                        and workflow.info().get_current_history_length() > limit):
                    # A move update waits on this loop: take its input instead of
                    # waiting for it to finish (it never would).
                    await workflow.wait_condition(
                        lambda: workflow.all_handlers_finished() or bool(self._inbox))
                    if self._inbox:
                        continue
                    workflow.continue_as_new({
                        **params, "history": self._envelopes, "results": self._results,
                        "snapshot": encode_state(self._state)})
        except asyncio.CancelledError:
            self._on_cancel(definition)
            await self._drain()
            raise
        if self._moved_to is not None:
            self._refuse_after_move()
        await self._drain()
        if self._moved_to is not None:
            # The move update returns its summary before the workflow closes.
            await workflow.wait_condition(workflow.all_handlers_finished)
        state = self._state
        if state.status == "failed":
            error = state.error or {}
            raise ApplicationError(str(error.get("message") or "run failed"), error,
                                   type=str(error.get("code") or ErrorCode.STEP_FAILED),
                                   non_retryable=True)
        return {"status": state.status, "output": state.output,
                "summary": wire.encode_summary(summarize(state))}

    def _resume(self, params: dict[str, Any], definition: Definition) -> None:
        """Continue a run from its carried history (continue-as-new or an import)."""
        self._envelopes = list(params["history"])
        snapshot = params.get("snapshot")
        if snapshot is not None:
            self._state = decode_state(snapshot)
        for raw in self._envelopes[self._state.version:]:
            apply_in_place(self._state, decode_event(raw["type"], _at(raw), raw["data"]))
        self._shown = ()  # the carried memo may be older than the carried history
        self._publish()
        self._carry_out(pending_commands(definition, self._state))

    def _handle(self, definition: Definition, item: cmd.Input | tuple[str, dict[str, Any]]) -> None:
        if isinstance(item, tuple):
            kind, body = item
            if kind == "move":
                self._move_out(body)
            else:
                self._route(definition, body)
            return
        try:
            decision = decide(definition, self._state, item, self._ctx())
        except WorkflowEngineError as e:
            # An invalid decision that raced a validation: record it, change nothing.
            self._effects.append(asyncio.create_task(self._audit(
                "input.rejected", {"input": encode_input(item), "error": e.to_dict()})))
            return
        self._apply(decision)

    def _route(self, definition: Definition, body: dict[str, Any]) -> None:
        name, correlation = body["name"], body["correlation_key"]
        matches = [k for k, w in sorted(self._state.waits.items()) if w == (name, correlation)]
        delivered = False
        for key in matches:
            decision = decide(definition, self._state, cmd.DeliverEvent(
                key=key, event_id=body["event_id"], event_name=name, payload=body["payload"],
            ), self._ctx())
            delivered |= bool(decision.events)
            self._apply(decision)
        if not delivered:
            self._effects.append(asyncio.create_task(self._audit(
                "event.unmatched", {**body, "candidates": len(matches)})))

    def _ctx(self) -> DecisionContext:
        return DecisionContext(now=workflow.now(), limits=self._limits)

    def _apply(self, decision: cmd.Decision) -> None:
        if decision.events:
            self._record(decision.events)
        self._carry_out(decision.commands)

    def _record(self, events: tuple[WorkflowEvent, ...] | list[RunStarted]) -> None:
        state = self._state
        for event in events:
            env = to_envelope(state.tenant or self._params["tenant"],
                              state.run_id or self._params["run_id"], state.version + 1, event)
            apply_in_place(state, event)
            self._envelopes.append({"version": env.version, "type": env.type,
                                    "at": env.at.isoformat(), "data": env.data})

    def _publish(self) -> None:
        """Keep the memo (projection) and the search attributes (index) current.

        While a run stays ``running`` (deciding, actions in flight) nothing is published:
        each upsert is a history event and a visibility write, so the projection is
        written when the run starts waiting, changes its waits or tasks, or finishes.
        """
        summary = summarize(self._state)
        waits = sorted(wire.wait_token(w.event_name, w.correlation_key) for w in summary.waits)
        tasks = tuple((t.task_id, t.overdue) for t in summary.human_tasks)
        index = (summary.status, tuple(waits))
        shown = (index, tasks, summary.next_due_at)
        if shown == self._shown or summary.version == self._published_version:
            return
        self._shown = shown
        self._published_version = summary.version
        workflow.upsert_memo({"summary": wire.encode_summary(summary)})
        if index != self._published:
            self._published = index
            workflow.upsert_search_attributes([_STATUS.value_set(summary.status),
                                               _WAITS.value_set(waits)])

    # -- commands ----------------------------------------------------------------------
    def _carry_out(self, commands: tuple[cmd.Command, ...] | list[cmd.Command]) -> None:
        for command in commands:
            match command:
                case cmd.ExecuteAction():
                    self._execute(command)
                case cmd.StartTimer():
                    self._start_timer(command)
                case cmd.CancelTimer():
                    task = self._timers.pop(command.timer_id, None)
                    if task is not None:
                        task.cancel()
                case cmd.StartChildRun():
                    self._effects.append(asyncio.create_task(self._start_child(command)))
                case cmd.CancelChildRun():
                    self._effects.append(asyncio.create_task(self._cancel_child(command)))
                case cmd.NotifyParent():
                    self._effects.append(asyncio.create_task(self._notify_parent(command)))

    def _execute(self, command: cmd.ExecuteAction) -> None:
        rkey = keys.result_key(command.idempotency_key, command.attempt)
        known = self._results.get(rkey)
        if known is not None:
            # The attempt ran before (on another engine): its outcome, never a second run.
            self._inbox.append(cmd.ReportOutcome(key=command.key, attempt=command.attempt,
                                                 ok=known["ok"], output=known.get("output"),
                                                 error=known.get("error")))
            return
        self._tasks[rkey] = asyncio.create_task(self._act(command, rkey))

    async def _act(self, command: cmd.ExecuteAction, rkey: str) -> None:
        body = {"tenant": self._state.tenant, "run_id": self._state.run_id, "key": command.key,
                "action": command.action, "input": command.input,
                "idempotency_key": command.idempotency_key, "attempt": command.attempt,
                "timeout_s": command.timeout_s}
        timeout = (_DEFAULT_ACTION_TIMEOUT if command.timeout_s is None
                   else timedelta(seconds=command.timeout_s) + _ACTION_TIMEOUT_MARGIN)
        outcome: dict[str, Any]
        try:
            output = await workflow.execute_activity(
                command.action, body, activity_id=rkey, start_to_close_timeout=timeout,
                retry_policy=_NO_RETRY,
            )
            outcome = {"ok": True, "output": output, "error": None}
        except ActivityError as e:
            if self._moved_to is not None and isinstance(e.cause, CancelledError):
                return  # cancelled by the move: the target runs the attempt again
            outcome = {"ok": False, "output": None,
                       "error": _activity_error(e, command.action, command.timeout_s)}
        finally:
            self._tasks.pop(rkey, None)
        self._results[rkey] = outcome
        self._inbox.append(cmd.ReportOutcome(key=command.key, attempt=command.attempt,
                                             ok=outcome["ok"], output=outcome["output"],
                                             error=outcome["error"]))

    def _start_timer(self, command: cmd.StartTimer) -> None:
        delay = (command.fire_at - workflow.now()).total_seconds()
        fire = cmd.FireTimer(timer_id=command.timer_id)
        if delay <= 0:
            self._inbox.append(fire)
            return

        async def wait() -> None:
            await workflow.sleep(delay, summary=command.timer_id)
            self._timers.pop(command.timer_id, None)
            self._inbox.append(fire)

        old = self._timers.pop(command.timer_id, None)
        if old is not None:
            old.cancel()
        self._timers[command.timer_id] = asyncio.create_task(wait())

    async def _start_child(self, command: cmd.StartChildRun) -> None:
        params = self._params
        failed: dict[str, Any] | None = None
        try:
            document = await workflow.execute_local_activity(
                wire.DEFINITION_ACTIVITY,
                {"queue": params["queue"], "tenant": self._state.tenant,
                 "definition_id": command.definition_id, "version": command.definition_version},
                start_to_close_timeout=timedelta(seconds=30), retry_policy=_NO_RETRY,
            )
            child_definition = parse_definition(document)
            validate_against_schema(command.input, child_definition.input_schema,
                                    what="run input")
            await workflow.start_child_workflow(
                wire.RUN_WORKFLOW,
                {**_child_params(params), "tenant": self._state.tenant,
                 "run_id": command.child_run_id, "definition": document, "input": command.input,
                 "parent": [self._state.run_id, command.parent_step_key]},
                id=wire.run_workflow_id(self._state.tenant, command.child_run_id),
                task_queue=params["queue"], parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes([
                    SearchAttributePair(_TENANT, self._state.tenant),
                    SearchAttributePair(_STATUS, "running"),
                    SearchAttributePair(_PARENT, self._state.run_id)]),
                memo={"summary": wire.encode_summary(summarize(replay([run_started(
                    child_definition, command.input, at=workflow.now(),
                    tenant=self._state.tenant, run_id=command.child_run_id,
                    engine=params["engine"], queue=params["queue"],
                    parent=(self._state.run_id, command.parent_step_key))])))},
            )
        except ActivityError as e:
            failed = _activity_error(e, "load_definition", None)
        except ApplicationError as e:  # a local activity's failure arrives unwrapped
            failed = e.details[0] if e.details and isinstance(e.details[0], dict) else {
                "code": ErrorCode.DEFINITION_NOT_FOUND, "message": str(e)}
        except WorkflowEngineError as e:
            failed = e.to_dict()
        except WorkflowAlreadyStartedError:
            return  # carried over by continue-as-new: the child runs already
        if failed is not None:
            self._inbox.append(cmd.ChildFinished(child_run_id=command.child_run_id,
                                                 status="failed", error=failed))

    async def _cancel_child(self, command: cmd.CancelChildRun) -> None:
        handle = workflow.get_external_workflow_handle(
            wire.run_workflow_id(self._state.tenant, command.child_run_id))
        try:
            await handle.cancel()
        except Exception:
            return

    async def _notify_parent(self, command: cmd.NotifyParent) -> None:
        finished = cmd.ChildFinished(child_run_id=command.child_run_id, status=command.status,
                                     output=command.output, error=command.error)
        handle = workflow.get_external_workflow_handle(
            wire.run_workflow_id(self._state.tenant, command.parent_run_id))
        try:
            await handle.signal("deliver", encode_input(finished))
        except Exception:
            return

    async def _audit(self, kind: str, data: dict[str, Any], *, queue: str | None = None) -> None:
        params = self._params
        handle = workflow.get_external_workflow_handle(
            wire.tenant_workflow_id(queue or params["queue"], params["tenant"]))
        record = {"kind": kind, "at": workflow.now().isoformat(), "run_id": params["run_id"],
                  "data": data}
        try:
            await handle.signal("audit", record)
        except Exception:
            workflow.logger.warning("audit record lost: %s", record)

    # -- moving out ----------------------------------------------------------------------
    def _move_out(self, body: dict[str, Any]) -> None:
        """Record ``RunMoved`` and stop: no activity, timer or decision after it.

        Action attempts in flight are cancelled and their outcomes ignored (the target
        runs them again under the same idempotency key, as after a worker crash);
        outcomes that arrived before the move are kept for the archive.
        """
        self._moved_to = {"url": body["moved_to"], "tenant": body["tenant"]}
        self._record((RunMoved(at=workflow.now(), tenant=body["tenant"], engine=body["engine"],
                               queue=body["queue"], moved_to=body["moved_to"]),))
        for task in [*self._tasks.values(), *self._timers.values()]:
            task.cancel()
        self._timers.clear()
        # Beside the summary, so a caller learns where the run went without a worker.
        workflow.upsert_memo({"moved_to": self._moved_to})

    def _refuse_after_move(self) -> None:
        """Audit the inputs that arrived after the move: they belong to the target now."""
        url = self._moved_to["url"] if self._moved_to else None
        for item in self._inbox:
            if isinstance(item, tuple):
                kind, body = item
                if kind == "move":
                    continue
                data: dict[str, Any] = {"input": {"type": kind, **body}}
            elif isinstance(item, cmd.Advance | cmd.ReportOutcome | cmd.FireTimer):
                continue  # the run's own work: the archive carries what it needs
            else:
                data = {"input": encode_input(item)}
            self._effects.append(asyncio.create_task(self._audit("input.rejected", {
                **data, "error": {"code": ErrorCode.RUN_MOVED,
                                  "message": f"the run was moved to {url}"}})))
        self._inbox.clear()

    # -- cancellation --------------------------------------------------------------------
    def _on_cancel(self, definition: Definition) -> None:
        for task in [*self._tasks.values(), *self._timers.values()]:
            task.cancel()
        if self._state.finished:
            return
        info = self._cancel_info
        decision = decide(definition, self._state, cmd.Cancel(
            reason=info.get("reason"), requested_by=info.get("requested_by")), self._ctx())
        self._apply(decision)
        self._publish()

    async def _drain(self) -> None:
        """Finish the effects owed before the workflow closes (signals, child cancels)."""
        while self._effects:
            effects, self._effects = self._effects, []
            await asyncio.gather(*effects, return_exceptions=True)


def _at(raw: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(raw["at"])


def _child_params(params: dict[str, Any]) -> dict[str, Any]:
    return {"engine": params["engine"], "queue": params["queue"],
            "history_limit": params.get("history_limit"), "replay_of": None,
            "expression_limits": params.get("expression_limits"),
            "history": None, "results": None, "snapshot": None}


@workflow.defn(name=wire.TENANT_WORKFLOW)
class TenantWorkflow:
    """A tenant's registered definitions and audit log on one task queue."""

    def __init__(self) -> None:
        self._definitions: dict[str, dict[str, Any]] = {}
        self._audit: list[dict[str, Any]] = []

    @workflow.run
    async def run(self, carried: dict[str, Any] | None) -> None:
        """Live until the history is long, then continue-as-new with the catalogue."""
        if carried:
            self._definitions = dict(carried["definitions"])
            self._audit = list(carried["audit"])
        await workflow.wait_condition(
            lambda: workflow.info().get_current_history_length() > 5000)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new({"definitions": self._definitions, "audit": self._audit})

    @workflow.update(name="put_definition")
    def put_definition(self, stored: dict[str, Any]) -> dict[str, Any] | None:
        """Store a definition version; return the conflicting hash when one differs."""
        key = f"{stored['definition_id']}@{stored['version']}"
        existing = self._definitions.get(key)
        if existing is not None and existing["content_hash"] != stored["content_hash"]:
            return {"content_hash": existing["content_hash"]}
        self._definitions[key] = stored
        # In the memo too, so producers read definitions without a worker answering.
        workflow.upsert_memo({"definitions": self._definitions})
        return None

    @workflow.signal(name="audit")
    def audit(self, record: dict[str, Any]) -> None:
        """Append an audit record."""
        self._audit.append({**record, "position": len(self._audit) + 1})

    @workflow.query(name="definition")
    def definition(self, definition_id: str, version: int | None) -> dict[str, Any] | None:
        """The stored definition (highest version when ``version`` is None)."""
        if version is not None:
            return self._definitions.get(f"{definition_id}@{version}")
        found = [d for d in self._definitions.values() if d["definition_id"] == definition_id]
        return max(found, key=lambda d: int(d["version"])) if found else None

    @workflow.query(name="audit_log")
    def audit_log(self) -> list[dict[str, Any]]:
        """Every audit record, oldest first."""
        return self._audit
