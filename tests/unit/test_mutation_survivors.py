"""Tests written to kill mutants that survived mutation testing of decide, state, replay_check.

Each test pins a detail the other suites let vary: the exact report of every way
``check_replay`` can diverge, the path an expression error names, the default error of an
action that failed without one, what a finished child tells its parent. The mutmut run and
its score are in the issue 7 report.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.property.strategies import T0, Driver
from wfdomain import ErrorCode, check_replay, parse_definition
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.codec import encode_event
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import Definition
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
        {"type": "child_run", "definition": "c", "input": {}}]})
    driver = Driver.start(definition, {})
    driver.feed(cmd.Advance())
    (child_id,) = driver.state.children
    decision = driver.tick(cmd.ChildFinished(child_run_id=child_id, status="failed",
                                             error={"code": "NOPE", "message": "no"}))
    assert [e.key for e in decision.events if isinstance(e, ev.StepFailed)] == ["steps[0]"]
    assert driver.now - T0 == timedelta(minutes=1)


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
