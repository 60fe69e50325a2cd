"""Tests written to kill mutants that survived mutation testing of decide, state, replay_check.

Each test pins a detail the other suites let vary: the exact report of every way
``check_replay`` can diverge, the path an expression error names, the default error of an
action that failed without one, what a finished child tells its parent. The mutmut run and
its score are in the issue 7 report.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.property.strategies import T0, Driver
from wfdomain import ErrorCode, check_replay, parse_definition
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.codec import encode_event
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import Definition
from wfdomain.errors import ExpressionError, HumanTaskNotFoundError, RunFinishedError
from wfdomain.expressions import IN_PROCESS, ExpressionLimits
from wfdomain.state import replay

WAIT_THEN_TASK = parse_definition({"id": "wt", "version": 1, "steps": [
    {"type": "wait_event", "id": "paid", "event": "paid", "correlation": "input.order",
     "filter": "$number(event.n) > 1", "timeout_s": 60},
    {"type": "human_task", "id": "ok", "task": "OK?", "outcomes": ["yes", "no"]},
    {"type": "return", "output": "steps.ok.outcome"},
]})


def encoded(event: ev.WorkflowEvent) -> dict[str, Any]:
    name, at, data = encode_event(event)
    return {"type": name, "at": at.isoformat(), "data": data}


def recorded_run() -> Driver:
    """Started, the event delivered, the task decided: a finished history."""
    driver = Driver.start(WAIT_THEN_TASK, {"order": "o-1"})
    driver.feed(cmd.Advance())
    driver.tick(cmd.DeliverEvent(key="steps[0]", event_id="e1", event_name="paid",
                                 payload={"n": 2}))
    (task_id,) = driver.state.tasks
    driver.tick(cmd.DecideTask(task_id=task_id, outcome="yes", decided_by="al"))
    assert driver.state.status == "completed"
    return driver


# -------------------------------------------------------------------------- check_replay


def test_an_empty_history_is_reported_exactly() -> None:
    report = check_replay(WAIT_THEN_TASK, [])
    assert not report.ok
    assert report.events_checked == 0
    assert report.divergence is not None
    assert (report.divergence.version, report.divergence.step_path) == (1, None)
    assert (report.divergence.expected, report.divergence.actual) == (None, None)
    assert report.divergence.message == "the history is empty (no RunStarted)"


def test_a_history_not_starting_with_run_started_is_reported_exactly() -> None:
    history = recorded_run().history[1:]
    report = check_replay(WAIT_THEN_TASK, history)
    assert not report.ok
    assert report.events_checked == 0
    d = report.divergence
    assert d is not None
    assert (d.version, d.step_path, d.actual) == (1, "steps[0]", None)
    assert d.expected == encoded(history[0])
    assert d.message == "the history starts with StepStarted, not RunStarted"


def test_an_input_that_now_raises_is_reported_with_its_code() -> None:
    history = recorded_run().history
    decided = next(e for e in history if isinstance(e, ev.HumanTaskDecided))
    tampered = [*history, decided]  # the task is closed: deciding it again raises
    report = check_replay(WAIT_THEN_TASK, tampered)
    d = report.divergence
    assert d is not None
    assert report.events_checked == len(history)
    assert (d.version, d.actual) == (len(tampered), None)
    assert d.expected == encoded(decided)
    assert d.message.startswith("re-deciding HumanTaskDecided")
    assert f"fails: [{ErrorCode.HUMAN_TASK_NOT_FOUND}]: " in d.message


def test_an_input_that_decides_nothing_is_reported_exactly() -> None:
    history = recorded_run().history
    late = ev.TimerFired(at=history[-1].at, key="steps[0]", timer_id="steps[0]#timeout")
    report = check_replay(WAIT_THEN_TASK, [*history, late])
    d = report.divergence
    assert d is not None
    assert (d.version, d.step_path, d.actual) == (len(history) + 1, "steps[0]", None)
    assert d.expected == encoded(late)
    assert d.message == "the definition decides nothing for TimerFired(steps[0])"
    assert report.events_checked == len(history)


def test_a_decided_event_missing_from_the_end_is_reported_exactly() -> None:
    history = recorded_run().history
    report = check_replay(WAIT_THEN_TASK, history[:-1])
    d = report.divergence
    assert d is not None
    assert (d.version, d.expected) == (len(history), None)
    assert d.actual == encoded(history[-1])
    assert d.message == "the definition decides RunCompleted after the last recorded event"
    assert report.events_checked == len(history) - 1


def test_a_recorded_event_the_definition_does_not_decide_is_reported_exactly() -> None:
    driver = Driver.start(WAIT_THEN_TASK, {"order": "o-1"})
    driver.feed(cmd.Advance())  # now waiting: nothing more is decided without an input
    extra = ev.StepStarted(at=driver.now, key="steps[1]", step_type="human_task")
    report = check_replay(WAIT_THEN_TASK, [*driver.history, extra])
    d = report.divergence
    assert d is not None
    assert (d.version, d.step_path, d.actual) == (len(driver.history) + 1, "steps[1]", None)
    assert d.expected == encoded(extra)
    assert d.message == ("recorded StepStarted(steps[1]), but the definition decides "
                         "nothing more here")


# -------------------------------------------------------------------------------- decide


def test_a_filter_that_cannot_read_the_payload_does_not_match() -> None:
    driver = Driver.start(WAIT_THEN_TASK, {"order": "o-1"})
    driver.feed(cmd.Advance())
    decision = driver.tick(cmd.DeliverEvent(key="steps[0]", event_id="e1", event_name="paid",
                                            payload={"n": "not a number"}))
    assert decision == cmd.Decision()
    assert "steps[0]" in driver.state.waits


def test_an_expression_error_names_the_nested_input_path() -> None:
    for template, path in (({"a": {"b": "$number('x')"}}, "steps[0].input.a.b"),
                           (["input.q", "$number('y')"], "steps[0].input[1]"),
                           ("$number('z')", "steps[0].input")):
        definition = parse_definition({"id": "p", "version": 1, "steps": [
            {"type": "action", "action": "charge", "input": template}]})
        driver = Driver.start(definition, {"q": 1})
        failed = [e for e in driver.feed(cmd.Advance()).events if isinstance(e, ev.RunFailed)]
        assert [e.error["path"] for e in failed] == [path]


def test_a_run_output_error_names_the_output() -> None:
    definition = parse_definition({"id": "p", "version": 1, "output": "$number('z')",
                                   "steps": [{"type": "assign", "values": {"x": "1"}}]})
    driver = Driver.start(definition, {})
    (failed,) = [e for e in driver.feed(cmd.Advance()).events if isinstance(e, ev.RunFailed)]
    assert failed.error["path"] == "output"


def test_an_action_failure_without_an_error_gets_the_default_error() -> None:
    definition = parse_definition({"id": "p", "version": 1, "steps": [
        {"type": "action", "action": "charge", "retry": {"max_attempts": 1}}]})
    driver = Driver.start(definition, {})
    driver.feed(cmd.Advance())
    decision = driver.tick(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False))
    (failed,) = [e for e in decision.events if isinstance(e, ev.ActionFailed)]
    assert failed.error == {"code": ErrorCode.ACTION_FAILED, "message": "failed"}


def child(definition: Definition) -> cmd.Decision:
    started = ev.RunStarted(
        at=T0, run_id="c1", tenant="t1", definition_id=definition.id, definition_version=1,
        definition_hash=definition.content_hash, input={}, engine="local", queue="default",
        parent_run_id="p1", parent_step_key="steps[0]",
    )
    return decide(definition, replay([started]), cmd.Advance(), DecisionContext(now=T0))


def test_a_failed_child_tells_its_parent_the_error() -> None:
    definition = parse_definition({"id": "c", "version": 1, "steps": [
        {"type": "fail", "code": "NOPE", "message": "'no'"}]})
    decision = child(definition)
    (notify,) = [c for c in decision.commands if isinstance(c, cmd.NotifyParent)]
    (failed,) = [e for e in decision.events if isinstance(e, ev.RunFailed)]
    assert notify.status == "failed"
    assert notify.error == failed.error
    assert notify.error is not None
    assert notify.error["code"] == "NOPE"


def test_a_failed_child_fails_the_parents_child_step() -> None:
    definition = parse_definition({"id": "p", "version": 1, "steps": [
        {"type": "child_run", "definition": "c", "input": {"n": "1 + 1"}}]})
    driver = Driver.start(definition, {})
    driver.feed(cmd.Advance())
    (child_id,) = driver.state.children
    waiting = driver.state.steps["steps[0]"]
    assert (waiting.awaiting, waiting.action_input) == ("child", {"n": 2})
    decision = driver.tick(cmd.ChildFinished(child_run_id=child_id, status="failed",
                                             error={"code": "NOPE", "message": "no"}))
    (failed,) = [e for e in decision.events if isinstance(e, ev.StepFailed)]
    assert failed.key == "steps[0]"
    assert driver.now - T0 == timedelta(minutes=1)
    # No ActionFailed here: StepFailed alone must end the wait and keep the error.
    step = driver.state.steps["steps[0]"]
    assert (step.awaiting, step.last_error) == (None, failed.error)
    assert failed.error is not None


def test_a_changed_field_is_reported_field_by_field() -> None:
    history = recorded_run().history
    i, received = next((i, e) for i, e in enumerate(history) if isinstance(e, ev.EventReceived))
    later = history[i].at + timedelta(seconds=1)
    tampered = [*history[:i], ev.EventReceived(
        at=later, key=received.key, event_id=received.event_id,
        event_name=received.event_name, payload=received.payload), *history[i + 1:]]
    # the recorded input is re-decided at its (tampered) time, so its first decided event
    # differs from the recorded one in ``at`` only
    report = check_replay(WAIT_THEN_TASK, tampered)
    d = report.divergence
    assert report.ok is False
    assert d is not None
    assert d.version == i + 2
    assert d.message == (f"StepCompleted(steps[0]): at recorded {history[i + 1].at.isoformat()}, "
                         f"decided {later.isoformat()}")


def test_changed_fields_are_listed_with_their_values() -> None:
    history = recorded_run().history
    changed = parse_definition({"id": "wt", "version": 1, "steps": [
        {"type": "wait_event", "id": "paid", "event": "paid", "correlation": "input.order",
         "filter": "$number(event.n) > 1", "timeout_s": 60},
        {"type": "assign", "values": {"x": "1"}},
    ]})
    d = check_replay(changed, history).divergence
    assert d is not None
    assert d.message == ("StepStarted(steps[1]): step_type recorded 'human_task', decided "
                         "'assign'; step_id recorded 'ok', decided None")


def test_another_event_type_is_reported_with_both_types() -> None:
    history = recorded_run().history
    shorter = parse_definition({"id": "wt", "version": 1, "steps": [
        {"type": "wait_event", "id": "paid", "event": "paid", "correlation": "input.order",
         "filter": "$number(event.n) > 1", "timeout_s": 60},
    ]})
    d = check_replay(shorter, history).divergence
    assert d is not None
    assert d.step_path == "steps[1]"
    assert d.message == ("recorded StepStarted(steps[1]), the definition decides "
                         "BlockCompleted(steps)")


def test_an_invalid_recorded_decision_names_the_field_it_breaks() -> None:
    history = recorded_run().history
    i, decided = next((i, e) for i, e in enumerate(history)
                      if isinstance(e, ev.HumanTaskDecided))
    tampered = [*history[:i], ev.HumanTaskDecided(
        at=decided.at, key=decided.key, task_id=decided.task_id, outcome="maybe",
        data=decided.data, decided_by=decided.decided_by)]
    report = check_replay(WAIT_THEN_TASK, tampered)
    d = report.divergence
    assert report.ok is False
    assert d is not None
    assert (d.version, d.actual, d.step_path) == (i + 1, None, "outcome")
    assert d.message.startswith(
        f"re-deciding HumanTaskDecided({decided.key}) fails: "
        f"[{ErrorCode.DECISION_INVALID}] at outcome: ")


def test_a_moved_run_is_still_checked_after_the_move() -> None:
    history = recorded_run().history
    moved = ev.RunMoved(at=history[2].at, tenant="t1", engine="sqlite", queue="default")
    waiting = next(i for i, e in enumerate(history) if isinstance(e, ev.EventReceived))
    late = ev.TimerFired(at=history[-1].at, key="steps[0]", timer_id="steps[0]#timeout")
    tampered = [*history[:waiting], moved, *history[waiting:], late]
    report = check_replay(WAIT_THEN_TASK, tampered)
    assert report.divergence is not None
    assert report.divergence.version == len(tampered)
    assert check_replay(WAIT_THEN_TASK, tampered[:-1]).ok


# ------------------------------------------------------------- evaluator, scope, closing


class RecordingEvaluator:
    """Runs expressions in process and records what decide asked; or fails each one."""

    blocking = False

    def __init__(self, failure: ExpressionError | None = None) -> None:
        self.calls: list[tuple[str, str | None, ExpressionLimits | None]] = []
        self.failure = failure

    def evaluate(self, source: str, data: Any, *, now: datetime, path: str | None = None,
                 limits: ExpressionLimits | None = None) -> Any:
        self.calls.append((source, path, limits))
        if self.failure is not None:
            raise self.failure
        return IN_PROCESS.evaluate(source, data, now=now, path=path, limits=limits)


ASSIGN = parse_definition({"id": "p", "version": 1, "steps": [
    {"type": "assign", "values": {"x": "input.q + 1"}}]})


def test_the_evaluator_gets_the_expression_path_and_the_limits() -> None:
    evaluator, limits = RecordingEvaluator(), ExpressionLimits(timeout_ms=1234)
    decision = decide(ASSIGN, Driver.start(ASSIGN, {"q": 1}).state, cmd.Advance(),
                      DecisionContext(now=T0, limits=limits, evaluator=evaluator))
    assert evaluator.calls == [("input.q + 1", "steps[0].values.x", limits)]
    assert decision.events[-1] == ev.RunCompleted(at=T0, output={"x": 2})


def test_an_evaluator_error_without_a_path_gets_the_expression_path() -> None:
    # An evaluator in another process may lose the path; decide names it, keeping the rest.
    failure = ExpressionError("boom", code="EXPR_EVAL", details={"at": 3})
    decision = decide(ASSIGN, Driver.start(ASSIGN, {"q": 1}).state, cmd.Advance(),
                      DecisionContext(now=T0, evaluator=RecordingEvaluator(failure)))
    (failed,) = [e for e in decision.events if isinstance(e, ev.RunFailed)]
    assert failed.error == {"code": "EXPR_EVAL", "message": "boom",
                            "path": "steps[0].values.x", "details": {"at": 3}}


def test_an_evaluator_error_with_a_path_keeps_it() -> None:
    failure = ExpressionError("boom", code="EXPR_EVAL", path="elsewhere")
    decision = decide(ASSIGN, Driver.start(ASSIGN, {"q": 1}).state, cmd.Advance(),
                      DecisionContext(now=T0, evaluator=RecordingEvaluator(failure)))
    (failed,) = [e for e in decision.events if isinstance(e, ev.RunFailed)]
    assert failed.error["path"] == "elsewhere"


def test_an_iteration_sees_the_run_and_the_outputs_of_enclosing_scopes() -> None:
    definition = parse_definition({"id": "scoped", "version": 1, "steps": [
        {"type": "assign", "id": "first", "values": {"v": "7"}},
        {"type": "for_each", "items": "[1]", "do": [{"type": "assign", "values": {
            "seen": "steps.first.v",
            "who": "run.id & '/' & run.tenant & '/' & run.definition"}}]},
    ]})
    driver = Driver.start(definition, {})
    driver.feed(cmd.Advance())
    assert driver.state.vars == {"v": 7, "seen": 7, "who": "r1/t1/scoped"}


def test_a_closed_step_leaves_none_of_its_blocks_scopes_or_waits() -> None:
    loop = parse_definition({"id": "loop", "version": 1, "steps": [
        {"type": "for_each", "items": "[1, 2]",
         "do": [{"type": "assign", "id": "a", "values": {"x": "item"}}]},
        {"type": "human_task", "task": "OK?", "outcomes": ["yes"]}]})
    driver = Driver.start(loop, {})
    driver.feed(cmd.Advance())
    state = driver.state
    assert (set(state.blocks), state.scopes, state.scope_parents) == ({"steps"}, {"": {}}, {})
    # The fold forgets a closed step's wait even in a history where no event ended it.
    waiting = Driver.start(WAIT_THEN_TASK, {"order": "o-1"})
    waiting.feed(cmd.Advance())
    assert waiting.state.waits
    closed = replay([*waiting.history, ev.StepCompleted(at=T0, key="steps[0]", output=None)])
    assert (closed.waits, set(closed.steps)) == ({}, set())


FAILING = "$number('x')"


@pytest.mark.parametrize(("step", "field"), [
    ({"type": "if", "condition": FAILING, "then": []}, "condition"),
    ({"type": "switch", "cases": [{"when": "false", "steps": []},
                                  {"when": FAILING, "steps": []}], "default": []},
     "cases[1].when"),
    ({"type": "for_each", "items": FAILING, "do": []}, "items"),
    ({"type": "wait_event", "event": "paid", "correlation": FAILING}, "correlation"),
    ({"type": "human_task", "task": "t", "outcomes": ["ok"], "assignee": FAILING}, "assignee"),
    ({"type": "child_run", "definition": "child", "input": FAILING}, "input"),
    ({"type": "return", "output": FAILING}, "output"),
    ({"type": "fail", "message": FAILING}, "message"),
])
def test_an_expression_error_names_the_field_of_its_step(step: dict[str, Any],
                                                         field: str) -> None:
    driver = Driver.start(parse_definition({"id": "p", "version": 1, "steps": [step]}), {})
    (failed,) = [e for e in driver.feed(cmd.Advance()).events if isinstance(e, ev.RunFailed)]
    assert failed.error["path"] == f"steps[0].{field}"
    assert failed.error["code"] == "EXPR_EVALUATION_FAILED"


def test_a_correlation_that_is_not_a_scalar_is_reported_exactly() -> None:
    driver = Driver.start(parse_definition({"id": "p", "version": 1, "steps": [
        {"type": "wait_event", "event": "paid", "correlation": "{'a': 1}"}]}), {})
    (failed,) = [e for e in driver.feed(cmd.Advance()).events if isinstance(e, ev.RunFailed)]
    assert failed.error == {"code": "EXPR_INVALID", "path": "steps[0].correlation",
                            "message": "correlation must be a string or number, got {'a': 1}",
                            "details": {}}


def test_inputs_to_a_finished_run_are_refused_with_exact_messages() -> None:
    task = parse_definition({"id": "p", "version": 1, "steps": [
        {"type": "human_task", "task": "t", "outcomes": ["ok"]}]})
    driver = Driver.start(task, {})
    driver.feed(cmd.Advance())
    (task_id,) = driver.state.tasks
    driver.tick(cmd.DecideTask(task_id=task_id, outcome="ok"))
    assert driver.state.status == "completed"
    ctx = DecisionContext(now=T0)
    with pytest.raises(RunFinishedError) as cancelled:
        decide(task, driver.state, cmd.Cancel(), ctx)
    assert cancelled.value.message == "run r1 is already completed"
    with pytest.raises(HumanTaskNotFoundError) as decided:
        decide(task, driver.state, cmd.DecideTask(task_id=task_id, outcome="ok"), ctx)
    assert decided.value.message == f"no open human task {task_id!r}"


def test_a_failed_action_hands_its_error_to_on_error_and_waits_for_nothing() -> None:
    definition = parse_definition({"id": "p", "version": 1, "steps": [
        {"type": "action", "action": "charge", "retry": {"max_attempts": 1},
         "on_error": [{"type": "human_task", "task": "t", "outcomes": ["ok"]},
                      {"type": "assign", "values": {"err": "error.code"}}]}]})
    driver = Driver.start(definition, {})
    driver.feed(cmd.Advance())
    driver.tick(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False,
                                  error={"code": "DECLINED", "message": "no"}))
    step = driver.state.steps["steps[0]"]
    assert (step.awaiting, step.last_error) == (None, {"code": "DECLINED", "message": "no"})
    (task_id,) = driver.state.tasks
    driver.tick(cmd.DecideTask(task_id=task_id, outcome="ok"))
    assert driver.state.vars == {"err": "DECLINED"}


def folded_through(history: list[ev.WorkflowEvent], kind: type) -> Any:
    """The state right after the first event of ``kind`` (before the step closes)."""
    i = next(i for i, e in enumerate(history) if isinstance(e, kind))
    return replay(history[: i + 1])


def test_the_fold_applies_each_input_before_its_step_closes() -> None:
    action = parse_definition({"id": "p", "version": 1, "steps": [
        {"type": "action", "action": "charge"}]})
    driver = Driver.start(action, {})
    driver.feed(cmd.Advance())
    driver.tick(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=True, output=1))
    assert folded_through(driver.history, ev.ActionCompleted).steps["steps[0]"].awaiting is None
    decided = recorded_run()
    assert folded_through(decided.history, ev.HumanTaskDecided).tasks == {}
    cancelled = replay([*decided.history[:1], ev.CancelRequested(at=T0, reason="r")])
    assert cancelled.cancel_requested is True


def test_every_iteration_runs_and_only_on_error_sees_an_error() -> None:
    definition = parse_definition({"id": "p", "version": 1, "steps": [
        {"type": "for_each", "items": "[1, 2, 3]", "max_concurrency": 2,
         "do": [{"type": "human_task", "task": "t", "outcomes": ["ok"]},
                {"type": "assign", "values": {"last": "item"}}]},
        {"type": "if", "condition": "true",
         "then": [{"type": "assign", "values": {"seen_error": "$exists(error)"}}]}]})
    driver = Driver.start(definition, {})
    driver.feed(cmd.Advance())
    assert driver.state.steps["steps[0]"].max_concurrency == 2
    decided = 0
    while driver.state.tasks:
        assert len(driver.state.tasks) <= 2
        driver.tick(cmd.DecideTask(task_id=min(driver.state.tasks), outcome="ok"))
        decided += 1
    assert (decided, driver.state.status) == (3, "completed")
    assert driver.state.vars == {"last": 3, "seen_error": False}


def test_a_retry_reuses_the_idempotency_key_the_history_recorded() -> None:
    # A history written under another key scheme keeps its key: it is never re-derived.
    definition = parse_definition({"id": "p", "version": 1, "steps": [
        {"type": "action", "action": "charge",
         "retry": {"max_attempts": 2, "initial_interval_s": 1}}]})
    driver = Driver.start(definition, {})
    driver.feed(cmd.Advance())
    history = [dataclasses.replace(e, idempotency_key="legacy")
               if isinstance(e, ev.ActionScheduled) else e for e in driver.history]
    legacy = Driver(definition=definition, state=replay(history), history=history, now=T0,
                    step=driver.step)
    legacy.tick(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False,
                                  error={"code": "X", "message": "m"}))
    (timer_id,) = legacy.state.timers
    (execute,) = legacy.tick(cmd.FireTimer(timer_id=timer_id)).commands
    assert isinstance(execute, cmd.ExecuteAction)
    assert (execute.idempotency_key, execute.attempt) == ("legacy", 2)


def test_the_fold_keeps_what_waits_and_tasks_wait_for() -> None:
    definition = parse_definition({"id": "p", "version": 1, "steps": [
        {"type": "wait_event", "event": "paid", "correlation": "input.order", "timeout_s": 60,
         "on_timeout": [{"type": "human_task", "task": "t", "outcomes": ["ok"],
                         "assignee": "'alice'", "deadline_s": 60}]}]})
    driver = Driver.start(definition, {"order": "o-1"})
    driver.feed(cmd.Advance())
    assert driver.state.steps["steps[0]"].awaiting == "event"
    (timer_id,) = driver.state.timers
    driver.tick(cmd.FireTimer(timer_id=timer_id))
    timed_out = driver.state.steps["steps[0]"]  # open: its on_timeout block runs
    assert timed_out.awaiting is None
    assert driver.state.waits == {}
    created = next(e for e in driver.history if isinstance(e, ev.HumanTaskCreated))
    task = driver.state.tasks[created.task_id]
    assert (task.assignee, task.deadline) == ("alice", created.deadline)
    assert created.deadline is not None
    assert folded_through(recorded_run().history, ev.EventReceived).waits == {}
