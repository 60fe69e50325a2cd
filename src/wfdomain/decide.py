"""The interpreter: ``decide(definition, state, input, ctx) -> Decision``.

Pure: time arrives as ``ctx.now``, nothing is read or written outside. The decision's
events, folded onto ``state``, give the new state; its commands are the effects the
runtime carries out afterwards. An input that no longer applies (a redelivered action
outcome, a timer of a finished step, an event already received) decides nothing, which
is what makes at-least-once delivery safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain import keys
from wfdomain.definition import (
    ActionStep,
    AssignStep,
    ChildRunStep,
    Definition,
    FailStep,
    ForEachStep,
    HumanTaskStep,
    IfStep,
    ParallelStep,
    ReturnStep,
    SleepStep,
    SwitchStep,
    WaitEventStep,
    definition_path,
)
from wfdomain.errors import (
    ErrorCode,
    ExpressionError,
    HumanTaskNotFoundError,
    InputValidationError,
    RunFinishedError,
)
from wfdomain.expressions import IN_PROCESS, ExpressionEvaluator, ExpressionLimits
from wfdomain.schema import validate_against_schema
from wfdomain.state import RunState, apply_in_place, position_of

__all__ = ["DecisionContext", "decide", "evaluate", "render", "truthy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionContext:
    """Values from outside a decision: the logical time, expression limits and evaluator.

    ``evaluator`` runs every expression; the default evaluates in the calling thread. An
    isolating evaluator blocks on another process, so call ``decide`` off the event loop
    when its ``blocking`` is true (the runtime does).
    """

    now: datetime
    limits: ExpressionLimits | None = None
    evaluator: ExpressionEvaluator = IN_PROCESS


def truthy(value: Any) -> bool:
    """JSONata's boolean cast: empty strings, zero, empty arrays and objects are false."""
    if isinstance(value, list):
        return any(truthy(v) for v in value)
    return bool(value)


def evaluate(
    source: str, data: Any, ctx: DecisionContext, *, path: str
) -> Any:
    """Evaluate one expression under the contract; failures carry ``path``."""
    try:
        return ctx.evaluator.evaluate(source, data, now=ctx.now, path=path, limits=ctx.limits)
    except ExpressionError as e:
        if e.path is None:
            raise ExpressionError(e.message, code=e.code, path=path, details=e.details) from e
        raise


def render(template: Any, data: Any, ctx: DecisionContext, *, path: str) -> Any:
    """Evaluate a template: strings are expressions, containers recurse, rest is constant."""
    if isinstance(template, str):
        return evaluate(template, data, ctx, path=path)
    if isinstance(template, dict):
        return {k: render(v, data, ctx, path=f"{path}.{k}") for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, data, ctx, path=f"{path}[{i}]") for i, v in enumerate(template)]
    return template




class _Decider:
    def __init__(self, definition: Definition, state: RunState, ctx: DecisionContext) -> None:
        self.definition = definition
        self.state = state.copy()
        self.ctx = ctx
        self.events: list[ev.WorkflowEvent] = []
        self.commands: list[cmd.Command] = []

    # -- plumbing -------------------------------------------------------------------------
    def emit(self, event: ev.WorkflowEvent) -> None:
        self.events.append(event)
        apply_in_place(self.state, event)

    def step_def(self, key: str) -> Any:
        block_path = definition_path(key[: key.rindex("[")])
        return self.definition.block(block_path)[position_of(key)]

    def scope(self, block_key: str, **extra: Any) -> dict[str, Any]:
        block = self.state.blocks[block_key]
        chain: list[dict[str, Any]] = []
        scope: str | None = block.scope
        while scope is not None:
            chain.append(self.state.scopes[scope])
            scope = self.state.scope_parents.get(scope)
        outputs: dict[str, Any] = {}
        for layer in reversed(chain):
            outputs.update(layer)
        s = self.state
        return {
            "input": s.input, "state": s.vars, "steps": outputs,
            "run": {"id": s.run_id, "tenant": s.tenant, "definition": s.definition_id},
            **block.locals, **extra,
        }

    def eval_at(self, key: str, source: str, field: str, **extra: Any) -> Any:
        data = self.scope(self.state.steps[key].block, **extra)
        return evaluate(source, data, self.ctx, path=f"{definition_path(key)}.{field}")

    def timer(self, key: str, purpose: str, seconds: float, attempt: int | None = None) -> None:
        timer_id = keys.timer_id(key, purpose, attempt)
        fire_at = self.ctx.now + timedelta(seconds=seconds)
        self.emit(ev.TimerStarted(at=self.ctx.now, key=key, timer_id=timer_id, fire_at=fire_at,
                                  purpose=purpose))
        self.commands.append(cmd.StartTimer(timer_id=timer_id, fire_at=fire_at))

    def cancel_timers(self, key: str) -> None:
        for timer_id, timer in self.state.timers.items():
            if timer.key == key:
                self.commands.append(cmd.CancelTimer(timer_id=timer_id))

    def complete(self, key: str, output: Any) -> None:
        self.cancel_timers(key)
        self.emit(ev.StepCompleted(at=self.ctx.now, key=key, output=output))

    # -- run end ----------------------------------------------------------------------------
    def _cleanup_commands(self) -> None:
        for timer_id in self.state.timers:
            self.commands.append(cmd.CancelTimer(timer_id=timer_id))
        for child in self.state.children:
            self.commands.append(cmd.CancelChildRun(child_run_id=child))

    def _notify_parent(self) -> None:
        s = self.state
        if s.parent_run_id is not None:
            self.commands.append(cmd.NotifyParent(
                parent_run_id=s.parent_run_id, child_run_id=s.run_id, status=s.status,
                output=s.output, error=s.error,
            ))

    def finish(self, output: Any) -> None:
        self._cleanup_commands()
        self.emit(ev.RunCompleted(at=self.ctx.now, output=output))
        self._notify_parent()

    def fail(self, key: str | None, error: dict[str, Any]) -> None:
        self._cleanup_commands()
        if key is not None and key in self.state.steps:
            self.emit(ev.StepFailed(at=self.ctx.now, key=key, error=error))
        self.emit(ev.RunFailed(at=self.ctx.now, error=error))
        self._notify_parent()

    def run_output(self) -> Any:
        if self.definition.output is None:
            return self.state.vars
        data = self.scope("steps")
        return evaluate(self.definition.output, data, self.ctx, path="output")

    # -- advancing ----------------------------------------------------------------------------
    def advance(self) -> None:
        while self.state.status == "running":
            progressed = False
            for block_key in list(self.state.blocks):
                block = self.state.blocks.get(block_key)
                if block is None or block.done:
                    continue
                steps = self.definition.block(definition_path(block_key))
                if block.position >= len(steps):
                    self.emit(ev.BlockCompleted(at=self.ctx.now, block=block_key,
                                                output=block.last_output))
                    if block.parent_step is None:
                        self.guarded(None, lambda: self.finish(self.run_output()))
                    else:
                        self.maybe_complete(block.parent_step)
                    progressed = True
                else:
                    key = f"{block_key}[{block.position}]"
                    if key not in self.state.steps:
                        step = steps[block.position]
                        self.guarded(key, lambda k=key, s=step: self.start(k, s))
                        progressed = True
                if self.state.status != "running":
                    return
            if not progressed:
                return

    def guarded(self, key: str | None, action: Any) -> None:
        try:
            action()
        except ExpressionError as e:
            self.fail(key, e.to_dict())

    def maybe_complete(self, key: str) -> None:
        step = self.state.steps[key]
        definition = self.step_def(key)
        output: Any
        if isinstance(definition, ForEachStep):
            # A finished iteration's block has left the state; its output is in the step.
            if step.iterations_done < len(step.items):
                return
            output = [out for _, out in step.outputs]  # in item order
            self.complete(key, output)
            return
        blocks = [self.state.blocks[c] for c in step.children]
        if not all(b.done for b in blocks):
            return
        if isinstance(definition, ParallelStep):
            output = {br.name: b.last_output for br, b in zip(definition.branches, blocks,
                                                               strict=True)}
        elif isinstance(definition, WaitEventStep):
            output = {"timed_out": True, "event_id": None, "payload": None}
        elif isinstance(definition, HumanTaskStep):
            output = {"outcome": None, "data": None, "decided_by": None, "expired": True}
        elif isinstance(definition, ActionStep):
            output = {"error": step.last_error}
        else:
            output = blocks[0].last_output if blocks else None
        self.complete(key, output)

    def start(self, key: str, step: Any) -> None:
        now = self.ctx.now
        self.emit(ev.StepStarted(at=now, key=key, step_type=step.type, step_id=step.id))
        match step:
            case AssignStep():
                values = {n: self.eval_at(key, src, f"values.{n}")
                          for n, src in step.values.items()}
                self.emit(ev.StateSet(at=now, key=key, values=values))
                self.complete(key, values)
            case IfStep():
                chose_then = truthy(self.eval_at(key, step.condition, "condition"))
                branch = "then" if chose_then else "else"
                self.emit(ev.BranchSelected(at=now, key=key, branch=branch))
            case SwitchStep():
                chosen = "default"
                for j, case in enumerate(step.cases):
                    if truthy(self.eval_at(key, case.when, f"cases[{j}].when")):
                        chosen = f"cases[{j}].steps"
                        break
                self.emit(ev.BranchSelected(at=now, key=key, branch=chosen))
            case ForEachStep():
                items = self.eval_at(key, step.items, "items")
                items = [] if items is None else items if isinstance(items, list) else [items]
                self.emit(ev.ForEachStarted(at=now, key=key, items=items,
                                            max_concurrency=step.max_concurrency))
                if not items:
                    self.complete(key, [])
            case ParallelStep():
                for j in range(len(step.branches)):
                    self.emit(ev.BranchSelected(at=now, key=key, branch=f"branches[{j}].steps"))
            case ActionStep():
                data = self.scope(self.state.steps[key].block)
                action_input = render(step.input, data, self.ctx,
                                      path=f"{definition_path(key)}.input")
                self.schedule_action(key, step, action_input, attempt=1)
            case WaitEventStep():
                correlation = self.eval_at(key, step.correlation, "correlation")
                if correlation is None or isinstance(correlation, (bool, dict, list)):
                    raise ExpressionError(
                        f"correlation must be a string or number, got {correlation!r}",
                        code="EXPR_INVALID", path=f"{definition_path(key)}.correlation",
                    )
                self.emit(ev.WaitStarted(at=now, key=key, event_name=step.event,
                                         correlation_key=str(correlation)))
                if step.timeout_s is not None:
                    self.timer(key, "timeout", step.timeout_s)
            case HumanTaskStep():
                assignee = None if step.assignee is None else self.eval_at(key, step.assignee,
                                                                             "assignee")
                deadline = None if step.deadline_s is None else now + timedelta(
                    seconds=step.deadline_s)
                self.emit(ev.HumanTaskCreated(
                    at=now, key=key, task_id=keys.task_id(self.state.run_id, key),
                    title=step.task, assignee=None if assignee is None else str(assignee),
                    outcomes=list(step.outcomes), form=step.form, deadline=deadline,
                ))
                if step.deadline_s is not None:
                    self.timer(key, "deadline", step.deadline_s)
            case SleepStep():
                self.timer(key, "sleep", step.seconds)
            case ChildRunStep():
                data = self.scope(self.state.steps[key].block)
                child_input = render(step.input, data, self.ctx,
                                     path=f"{definition_path(key)}.input")
                child_id = keys.child_run_id(self.state.run_id, key)
                self.emit(ev.ChildRunRequested(
                    at=now, key=key, child_run_id=child_id, definition_id=step.definition,
                    definition_version=step.version, input=child_input,
                ))
                self.commands.append(cmd.StartChildRun(
                    child_run_id=child_id, parent_step_key=key, definition_id=step.definition,
                    definition_version=step.version, input=child_input,
                ))
            case ReturnStep():
                output = (self.run_output() if step.output is None
                          else self.eval_at(key, step.output, "output"))
                self.complete(key, output)
                self.finish(output)
            case FailStep():
                message = self.eval_at(key, step.message, "message")
                self.fail(key, {"code": step.code, "message": str(message),
                                "path": definition_path(key)})

    def schedule_action(
        self, key: str, step: ActionStep, action_input: Any, *, attempt: int
    ) -> None:
        s = self.state
        # Every attempt keeps the first attempt's key, even after the run moved to another
        # tenant: the systems the action calls de-duplicate on it.
        idem = s.steps[key].idempotency_key or keys.idempotency_key(s.tenant, s.run_id, key)
        self.emit(ev.ActionScheduled(
            at=self.ctx.now, key=key, action=step.action, input=action_input,
            idempotency_key=idem, attempt=attempt, timeout_s=step.timeout_s,
        ))
        self.commands.append(cmd.ExecuteAction(
            key=key, action=step.action, input=action_input, idempotency_key=idem,
            attempt=attempt, timeout_s=step.timeout_s,
        ))

    # -- inputs -------------------------------------------------------------------------------
    def on_outcome(self, inp: cmd.ReportOutcome) -> None:
        step = self.state.steps.get(inp.key)
        if step is None or step.awaiting != "action" or step.attempt != inp.attempt:
            return
        definition: ActionStep = self.step_def(inp.key)
        now = self.ctx.now
        if inp.ok:
            self.emit(ev.ActionCompleted(at=now, key=inp.key, attempt=inp.attempt,
                                         output=inp.output))
            if definition.save_as is not None:
                self.emit(ev.StateSet(at=now, key=inp.key,
                                      values={definition.save_as: inp.output}))
            self.complete(inp.key, inp.output)
            return
        error = dict(inp.error or {"code": ErrorCode.ACTION_FAILED, "message": "failed"})
        self.emit(ev.ActionFailed(at=now, key=inp.key, attempt=inp.attempt, error=error))
        policy = definition.retry
        retryable = (error.get("retryable", True) and inp.attempt < policy.max_attempts
                     and error.get("code") not in policy.non_retryable_codes)
        if retryable:
            delay = policy.delay_s(inp.attempt)
            if delay > 0:
                self.timer(inp.key, "retry", delay, inp.attempt + 1)
            else:
                self.schedule_action(inp.key, definition, step.action_input,
                                     attempt=inp.attempt + 1)
        elif definition.on_error is not None:
            self.emit(ev.BranchSelected(at=now, key=inp.key, branch="on_error"))
        else:
            self.fail(inp.key, {**error, "path": definition_path(inp.key),
                                "attempts": inp.attempt})

    def on_timer(self, inp: cmd.FireTimer) -> None:
        timer = self.state.timers.get(inp.timer_id)
        if timer is None:
            return
        now = self.ctx.now
        self.emit(ev.TimerFired(at=now, key=timer.key, timer_id=inp.timer_id))
        step = self.state.steps[timer.key]
        if timer.purpose == "sleep":
            self.complete(timer.key, None)
        elif timer.purpose == "retry":
            definition: ActionStep = self.step_def(timer.key)
            # Every attempt gets the first attempt's input: a retry must not see state
            # that parallel branches changed in between.
            self.schedule_action(timer.key, definition, step.action_input,
                                 attempt=step.attempt + 1)
        elif timer.purpose == "timeout" and timer.key in self.state.waits:
            self.emit(ev.WaitTimedOut(at=now, key=timer.key))
            self.emit(ev.BranchSelected(at=now, key=timer.key, branch="on_timeout"))
        elif timer.purpose == "deadline":
            task_id = keys.task_id(self.state.run_id, timer.key)
            closes = self.step_def(timer.key).on_deadline is not None
            self.emit(ev.HumanTaskExpired(at=now, key=timer.key, task_id=task_id, closed=closes))
            if closes:
                self.emit(ev.BranchSelected(at=now, key=timer.key, branch="on_deadline"))

    def on_event(self, inp: cmd.DeliverEvent) -> None:
        wait = self.state.waits.get(inp.key)
        if wait is None or inp.event_id in self.state.received_events or wait[0] != inp.event_name:
            return
        # One event resolves every open wait of the run it matches, in one decision: the
        # run then records the event id, so a redelivery cannot resolve a later wait.
        keys_ = [k for k, w in self.state.waits.items()
                 if w == wait and self.filter_passes(k, inp.payload)]
        for key in keys_:
            self.emit(ev.EventReceived(at=self.ctx.now, key=key, event_id=inp.event_id,
                                       event_name=inp.event_name, payload=inp.payload))
        for key in keys_:
            self.complete(key, {"timed_out": False, "event_id": inp.event_id,
                                "payload": inp.payload})

    def filter_passes(self, key: str, payload: Any) -> bool:
        definition: WaitEventStep = self.step_def(key)
        if definition.filter is None:
            return True
        try:
            return truthy(self.eval_at(key, definition.filter, "filter", event=payload))
        except ExpressionError:
            return False  # a payload the filter cannot read does not match

    def on_task(self, inp: cmd.DecideTask) -> None:
        task = self.state.tasks.get(inp.task_id)
        if task is None:
            raise HumanTaskNotFoundError(f"no open human task {inp.task_id!r}")
        if inp.outcome not in task.outcomes:
            raise InputValidationError(
                f"outcome {inp.outcome!r} is not one of {list(task.outcomes)}",
                code=ErrorCode.DECISION_INVALID, path="outcome",
            )
        validate_against_schema(inp.data, task.form, what="decision data",
                                code=ErrorCode.DECISION_INVALID)
        self.emit(ev.HumanTaskDecided(at=self.ctx.now, key=task.key, task_id=task.task_id,
                                      outcome=inp.outcome, data=inp.data,
                                      decided_by=inp.decided_by))
        self.complete(task.key, {"outcome": inp.outcome, "data": inp.data,
                                 "decided_by": inp.decided_by, "expired": False})

    def on_child(self, inp: cmd.ChildFinished) -> None:
        key = self.state.children.get(inp.child_run_id)
        if key is None:
            return
        self.emit(ev.ChildRunFinished(at=self.ctx.now, key=key, child_run_id=inp.child_run_id,
                                      status=inp.status, output=inp.output, error=inp.error))
        if inp.status == "completed":
            self.complete(key, inp.output)
        else:
            self.fail(key, {"code": ErrorCode.CHILD_RUN_FAILED,
                            "message": f"child run {inp.child_run_id} {inp.status}",
                            "path": definition_path(key), "child_error": inp.error})

    def on_cancel(self, inp: cmd.Cancel) -> None:
        now = self.ctx.now
        self.emit(ev.CancelRequested(at=now, reason=inp.reason, requested_by=inp.requested_by))
        self._cleanup_commands()
        self.emit(ev.RunCancelled(at=now, reason=inp.reason))
        self._notify_parent()


def decide(
    definition: Definition, state: RunState, inp: cmd.Input, ctx: DecisionContext
) -> cmd.Decision:
    """Decide what ``inp`` means for the run in ``state``.

    Args:
        definition: The run's own definition version.
        state: The run's current state (not modified).
        inp: What happened.
        ctx: Logical time and expression limits.

    Raises:
        RunFinishedError: cancelling a run that already finished.
        HumanTaskNotFoundError, InputValidationError: an invalid task decision.
    """
    decider = _Decider(definition, state, ctx)
    if state.finished:
        if isinstance(inp, cmd.Cancel):
            raise RunFinishedError(f"run {state.run_id} is already {state.status}")
        if isinstance(inp, cmd.DecideTask):
            raise HumanTaskNotFoundError(f"no open human task {inp.task_id!r}")
        return cmd.Decision()
    if state.status == "paused_for_quota" and not isinstance(inp, cmd.Cancel):
        # Held by its tenant's limit (wfdomain.quota): nothing executes before the runtime
        # records RunResumed, and nothing else can be owed to a run that never executed.
        return cmd.Decision()
    match inp:
        case cmd.Cancel():
            decider.on_cancel(inp)
        case cmd.ReportOutcome():
            decider.on_outcome(inp)
        case cmd.FireTimer():
            decider.guarded(None, lambda: decider.on_timer(inp))
        case cmd.DeliverEvent():
            decider.on_event(inp)
        case cmd.DecideTask():
            decider.on_task(inp)
        case cmd.ChildFinished():
            decider.on_child(inp)
        case cmd.Advance():
            pass
    decider.advance()
    return cmd.Decision(events=tuple(decider.events), commands=tuple(decider.commands))
