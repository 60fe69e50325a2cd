"""``decide`` step by step: the Decision values (events and commands) of every step kind.

A ``Driver`` (tests/property/strategies.py) starts a run, feeds inputs to ``decide`` and
folds each decision, as the runtime does without any I/O.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.property.strategies import T0, Driver
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.decide import DecisionContext, decide, truthy
from wfdomain.definition import parse_definition
from wfdomain.errors import (
    ErrorCode,
    HumanTaskNotFoundError,
    InputValidationError,
    RunFinishedError,
)
from wfdomain.expressions import compile_expression
from wfdomain.expressions import iso_millis as iso
from wfdomain.state import replay


def start(steps: list[dict[str, Any]], run_input: Any = None, **document: Any) -> Driver:
    definition = parse_definition({"id": "wf", "version": 1, "steps": steps, **document})
    return Driver.start(definition, run_input)


def at(seconds: float = 0) -> Any:
    return T0 + timedelta(seconds=seconds)


def names(decision: cmd.Decision) -> list[str]:
    return [type(e).__name__ for e in decision.events]


def the(kind: type[Any], decision: cmd.Decision) -> Any:
    """The only event or command of ``kind`` in ``decision``."""
    found = [x for x in (*decision.events, *decision.commands) if isinstance(x, kind)]
    assert len(found) == 1, found
    return found[0]


ASSIGN = {"type": "assign", "values": {"total": "input.amount * 2"}}


# ------------------------------------------------------------------------------- assign


def test_assign_sets_state_and_the_run_completes_with_the_state() -> None:
    run = start([ASSIGN], {"amount": 21})
    assert run.feed(cmd.Advance()) == cmd.Decision(events=(
        ev.StepStarted(at=at(), key="steps[0]", step_type="assign"),
        ev.StateSet(at=at(), key="steps[0]", values={"total": 42}),
        ev.StepCompleted(at=at(), key="steps[0]", output={"total": 42}),
        ev.BlockCompleted(at=at(), block="steps", output={"total": 42}),
        ev.RunCompleted(at=at(), output={"total": 42}),
    ))
    assert run.state.status == "completed"
    assert run.state.vars == {"total": 42}


def test_the_definition_output_expression_sees_state_and_step_outputs() -> None:
    run = start([{**ASSIGN, "id": "calc"}], {"amount": 2},
                output="{'sum': state.total, 'step': steps.calc.total}")
    run.feed(cmd.Advance())
    assert run.state.output == {"sum": 4, "step": 4}


def test_now_iso_is_the_logical_time_of_the_decision() -> None:
    run = start([{"type": "assign", "values": {"stamp": "$nowIso()"}}])
    run.feed(cmd.Advance(), now=at(3723.5))
    assert run.state.vars == {"stamp": "2026-01-01T01:02:03.500Z"} == {"stamp": iso(at(3723.5))}


@pytest.mark.parametrize("offset_h", [0, 2, -5])
def test_iso_renders_any_timezone_as_the_contract_does_in_utc(offset_h: int) -> None:
    moment = datetime(2026, 1, 1, 12, 30, 15, 123_456, tzinfo=timezone(timedelta(hours=offset_h)))
    contract = compile_expression("$nowIso()").evaluate(None, now=moment)
    assert iso(moment) == contract == (moment - timedelta(hours=offset_h)).strftime(
        "%Y-%m-%dT%H:%M:%S.123Z")


def test_an_expression_failing_at_run_time_fails_the_run_with_its_path() -> None:
    run = start([ASSIGN, {"type": "assign", "values": {"bad": "$error('boom')"}}], {"amount": 1})
    decision = run.feed(cmd.Advance())
    assert names(decision)[-2:] == ["StepFailed", "RunFailed"]
    error = the(ev.RunFailed, decision).error
    assert error["code"] == "EXPR_EVALUATION_FAILED"
    assert error["path"] == "steps[1].values.bad"
    assert the(ev.StepFailed, decision).key == "steps[1]"


# ------------------------------------------------------------------------ if and switch


@pytest.mark.parametrize(("amount", "branch", "label"), [(20, "then", "big"), (5, "else", "small")])
def test_if_selects_then_or_else(amount: int, branch: str, label: str) -> None:
    run = start([{"type": "if", "condition": "input.amount > 10",
                  "then": [{"type": "assign", "values": {"size": "'big'"}}],
                  "else": [{"type": "assign", "values": {"size": "'small'"}}]}],
                {"amount": amount})
    decision = run.feed(cmd.Advance())
    assert the(ev.BranchSelected, decision) == ev.BranchSelected(at=at(), key="steps[0]",
                                                                 branch=branch)
    assert run.state.vars == {"size": label}
    assert the(ev.StateSet, decision).key == f"steps[0].{branch}[0]"


def test_if_without_else_completes_with_no_output() -> None:
    run = start([{"type": "if", "condition": "false", "then": [ASSIGN]}])
    decision = run.feed(cmd.Advance())
    assert names(decision) == ["StepStarted", "BranchSelected", "BlockCompleted",
                               "StepCompleted", "BlockCompleted", "RunCompleted"]
    assert the(ev.StepCompleted, decision).output is None


@pytest.mark.parametrize(("tier", "branch"), [("gold", "cases[0].steps"),
                                              ("silver", "cases[1].steps"),
                                              ("tin", "default")])
def test_switch_runs_the_first_truthy_case_or_the_default(tier: str, branch: str) -> None:
    run = start([{"type": "switch", "cases": [
        {"when": "input.tier = 'gold'", "steps": [{"type": "assign", "values": {"d": "20"}}]},
        {"when": "input.tier in ['gold', 'silver']",
         "steps": [{"type": "assign", "values": {"d": "10"}}]},
    ], "default": [{"type": "assign", "values": {"d": "0"}}]}], {"tier": tier})
    assert the(ev.BranchSelected, run.feed(cmd.Advance())).branch == branch


@pytest.mark.parametrize(("value", "expected"), [
    (0, False), ("", False), ([], False), ({}, False), (None, False), ([0, ""], False),
    (False, False), (1, True), ("x", True), ([0, 1], True), ({"a": 1}, True), (True, True),
])
def test_truthy_follows_jsonata_boolean_casting(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


# ------------------------------------------------------------------------ for_each


def test_for_each_runs_each_item_with_item_and_index_and_outputs_a_list() -> None:
    run = start([{"type": "for_each", "id": "fe", "items": "input.xs",
                  "do": [{"type": "assign", "values": {"last": "item * 10 + index"}}]}],
                {"xs": [1, 2, 3]}, output="steps.fe")
    decision = run.feed(cmd.Advance())
    assert the(ev.ForEachStarted, decision) == ev.ForEachStarted(
        at=at(), key="steps[0]", items=[1, 2, 3], max_concurrency=None)
    assert [e.key for e in decision.events if isinstance(e, ev.StateSet)] == [
        "steps[0]@0.do[0]", "steps[0]@1.do[0]", "steps[0]@2.do[0]"]
    assert run.state.output == [{"last": 10}, {"last": 21}, {"last": 32}]


def test_for_each_with_max_concurrency_starts_the_next_iteration_when_one_ends() -> None:
    run = start([{"type": "for_each", "items": "input.xs", "max_concurrency": 2,
                  "do": [{"type": "action", "action": "ship", "input": {"sku": "item"}}]}],
                {"xs": ["a", "b", "c"]})
    first = run.feed(cmd.Advance())
    assert [(c.key, c.input) for c in first.commands if isinstance(c, cmd.ExecuteAction)] == [
        ("steps[0]@0.do[0]", {"sku": "a"}), ("steps[0]@1.do[0]", {"sku": "b"})]
    second = run.feed(cmd.ReportOutcome(key="steps[0]@1.do[0]", attempt=1, ok=True, output="B"))
    assert the(cmd.ExecuteAction, second).key == "steps[0]@2.do[0]"
    run.feed(cmd.ReportOutcome(key="steps[0]@0.do[0]", attempt=1, ok=True, output="A"))
    run.feed(cmd.ReportOutcome(key="steps[0]@2.do[0]", attempt=1, ok=True, output="C"))
    assert run.state.status == "completed"
    assert run.history[-2] == ev.BlockCompleted(at=at(), block="steps", output=["A", "B", "C"])


@pytest.mark.parametrize(("items", "expected"), [("[]", []), ("input.missing", [])])
def test_for_each_over_nothing_completes_at_once(items: str, expected: list[Any]) -> None:
    run = start([{"type": "for_each", "id": "fe", "items": items, "do": [ASSIGN]}], {},
                output="steps.fe")
    run.feed(cmd.Advance())
    assert run.state.output == expected


def test_for_each_over_a_single_value_iterates_once() -> None:
    run = start([{"type": "for_each", "id": "fe", "items": "input.one",
                  "do": [{"type": "assign", "values": {"x": "item"}}]}], {"one": 7},
                output="steps.fe")
    run.feed(cmd.Advance())
    assert run.state.output == [{"x": 7}]


# ------------------------------------------------------------------------ parallel


def test_parallel_starts_every_branch_and_maps_branch_names_to_outputs() -> None:
    run = start([{"type": "parallel", "id": "par", "branches": [
        {"name": "left", "steps": [{"type": "action", "action": "a"}]},
        {"name": "right", "steps": [{"type": "sleep", "seconds": 5}]},
    ]}], output="steps.par")
    decision = run.feed(cmd.Advance())
    assert [e.branch for e in decision.events if isinstance(e, ev.BranchSelected)] == [
        "branches[0].steps", "branches[1].steps"]
    assert the(cmd.ExecuteAction, decision).key == "steps[0].branches[0].steps[0]"
    assert the(cmd.StartTimer, decision) == cmd.StartTimer(
        timer_id="steps[0].branches[1].steps[0]#sleep", fire_at=at(5))
    run.feed(cmd.FireTimer(timer_id="steps[0].branches[1].steps[0]#sleep"), now=at(5))
    assert run.state.status == "running"
    run.feed(cmd.ReportOutcome(key="steps[0].branches[0].steps[0]", attempt=1, ok=True,
                               output={"ok": 1}), now=at(6))
    assert run.state.output == {"left": {"ok": 1}, "right": None}


# ------------------------------------------------------------------------ action


PAY = {"type": "action", "id": "pay", "action": "charge", "input": {"amount": "input.amount"},
       "timeout_s": 30}


def test_action_is_scheduled_with_its_rendered_input_and_idempotency_key() -> None:
    run = start([PAY], {"amount": 5})
    assert run.feed(cmd.Advance()) == cmd.Decision(
        events=(
            ev.StepStarted(at=at(), key="steps[0]", step_type="action", step_id="pay"),
            ev.ActionScheduled(at=at(), key="steps[0]", action="charge", input={"amount": 5},
                               idempotency_key="t1:r1:steps[0]", attempt=1, timeout_s=30),
        ),
        commands=(cmd.ExecuteAction(key="steps[0]", action="charge", input={"amount": 5},
                                    idempotency_key="t1:r1:steps[0]", attempt=1,
                                    timeout_s=30),),
    )


def test_action_output_completes_the_step_and_save_as_stores_it() -> None:
    run = start([{**PAY, "save_as": "receipt"}], {"amount": 5}, output="steps.pay")
    run.feed(cmd.Advance())
    decision = run.feed(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=True,
                                          output={"id": "rc-1"}), now=at(1))
    assert names(decision) == ["ActionCompleted", "StateSet", "StepCompleted",
                               "BlockCompleted", "RunCompleted"]
    assert run.state.vars == {"receipt": {"id": "rc-1"}}
    assert run.state.output == {"id": "rc-1"}


def test_a_failed_attempt_is_retried_after_the_backoff_with_the_first_input() -> None:
    run = start([{**PAY, "retry": {"max_attempts": 3, "initial_interval_s": 2, "backoff": 3}},
                 ASSIGN], {"amount": 5})
    run.feed(cmd.Advance())
    error = {"code": "BOOM", "message": "down", "retryable": True}
    failed = run.feed(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False, error=error),
                      now=at(1))
    assert failed == cmd.Decision(
        events=(ev.ActionFailed(at=at(1), key="steps[0]", attempt=1, error=error),
                ev.TimerStarted(at=at(1), key="steps[0]", timer_id="steps[0]#retry2",
                                fire_at=at(3), purpose="retry")),
        commands=(cmd.StartTimer(timer_id="steps[0]#retry2", fire_at=at(3)),),
    )
    retried = run.feed(cmd.FireTimer(timer_id="steps[0]#retry2"), now=at(3))
    assert the(cmd.ExecuteAction, retried) == cmd.ExecuteAction(
        key="steps[0]", action="charge", input={"amount": 5}, idempotency_key="t1:r1:steps[0]",
        attempt=2, timeout_s=30)
    again = run.feed(cmd.ReportOutcome(key="steps[0]", attempt=2, ok=False, error=error),
                     now=at(4))
    assert the(ev.TimerStarted, again).fire_at == at(4 + 6)  # 2 * 3 ** 1


def test_a_zero_backoff_retries_at_once_without_a_timer() -> None:
    run = start([{**PAY, "retry": {"max_attempts": 2, "initial_interval_s": 0}}], {"amount": 5})
    run.feed(cmd.Advance())
    decision = run.feed(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False,
                                          error={"code": "BOOM", "message": "x"}))
    assert names(decision) == ["ActionFailed", "ActionScheduled"]
    assert the(cmd.ExecuteAction, decision).attempt == 2


@pytest.mark.parametrize("error", [
    {"code": "DECLINED", "message": "no", "retryable": True},   # listed as non-retryable
    {"code": "FATAL", "message": "no", "retryable": False},     # raised as non-retryable
])
def test_a_non_retryable_failure_fails_the_run_at_once(error: dict[str, Any]) -> None:
    run = start([{**PAY, "retry": {"max_attempts": 5, "non_retryable_codes": ["DECLINED"]}}],
                {"amount": 5})
    run.feed(cmd.Advance())
    decision = run.feed(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False, error=error))
    assert names(decision) == ["ActionFailed", "StepFailed", "RunFailed"]
    assert run.state.error == {**error, "path": "steps[0]", "attempts": 1}


def test_exhausted_retries_fail_the_run_with_the_path_and_attempts() -> None:
    run = start([ASSIGN, {"type": "if", "condition": "true",
                          "then": [{**PAY, "retry": {"max_attempts": 2,
                                                     "initial_interval_s": 0}}]}],
                {"amount": 5})
    run.feed(cmd.Advance())
    key = "steps[1].then[0]"
    run.feed(cmd.ReportOutcome(key=key, attempt=1, ok=False, error={"code": "X", "message": "m"}))
    run.feed(cmd.ReportOutcome(key=key, attempt=2, ok=False, error={"code": "X", "message": "m"}))
    assert run.state.status == "failed"
    assert run.state.error == {"code": "X", "message": "m", "path": "steps[1].then[0]",
                               "attempts": 2}


def test_a_failure_without_an_error_gets_the_action_failed_code() -> None:
    run = start([PAY], {"amount": 5})
    run.feed(cmd.Advance())
    run.feed(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False))
    assert run.state.error is not None
    assert run.state.error["code"] == ErrorCode.ACTION_FAILED


def test_on_error_runs_with_error_in_scope_and_the_step_output_holds_the_error() -> None:
    run = start([{**PAY, "on_error": [{"type": "assign", "values": {"why": "error.code"}}]},
                 {"type": "assign", "values": {"after": "steps.pay.error.code"}}], {"amount": 5})
    run.feed(cmd.Advance())
    decision = run.feed(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False,
                                          error={"code": "NOPE", "message": "m"}))
    assert the(ev.BranchSelected, decision).branch == "on_error"
    assert run.state.status == "completed"
    assert run.state.vars == {"why": "NOPE", "after": "NOPE"}


def test_stale_and_unknown_outcomes_decide_nothing() -> None:
    run = start([{**PAY, "retry": {"max_attempts": 2, "initial_interval_s": 0}}], {"amount": 5})
    run.feed(cmd.Advance())
    run.feed(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False, error={"code": "X"}))
    for stale in (cmd.ReportOutcome(key="steps[0]", attempt=1, ok=True),   # old attempt
                  cmd.ReportOutcome(key="steps[0]", attempt=3, ok=True),   # future attempt
                  cmd.ReportOutcome(key="steps[9]", attempt=1, ok=True),   # no such step
                  cmd.FireTimer(timer_id="steps[0]#retry2"),                # no such timer
                  cmd.Advance()):
        assert run.feed(stale) == cmd.Decision()


# ------------------------------------------------------------------------ wait_event


WAIT = {"type": "wait_event", "id": "paid", "event": "payment.received",
        "correlation": "input.order", "timeout_s": 60,
        "on_timeout": [{"type": "assign", "values": {"late": "true"}}]}


def test_wait_opens_with_the_evaluated_correlation_and_a_timeout_timer() -> None:
    run = start([WAIT], {"order": 42})
    assert run.feed(cmd.Advance()) == cmd.Decision(
        events=(
            ev.StepStarted(at=at(), key="steps[0]", step_type="wait_event", step_id="paid"),
            ev.WaitStarted(at=at(), key="steps[0]", event_name="payment.received",
                           correlation_key="42"),
            ev.TimerStarted(at=at(), key="steps[0]", timer_id="steps[0]#timeout",
                            fire_at=at(60), purpose="timeout"),
        ),
        commands=(cmd.StartTimer(timer_id="steps[0]#timeout", fire_at=at(60)),),
    )
    assert run.state.waits == {"steps[0]": ("payment.received", "42")}


def test_an_event_completes_the_wait_and_cancels_its_timeout() -> None:
    run = start([WAIT], {"order": "o-1"}, output="steps.paid")
    run.feed(cmd.Advance())
    decision = run.feed(cmd.DeliverEvent(key="steps[0]", event_id="e1",
                                         event_name="payment.received", payload={"amt": 3}),
                        now=at(10))
    assert names(decision) == ["EventReceived", "StepCompleted", "BlockCompleted",
                               "RunCompleted"]
    assert decision.commands == (cmd.CancelTimer(timer_id="steps[0]#timeout"),)
    assert run.state.output == {"timed_out": False, "event_id": "e1", "payload": {"amt": 3}}


def test_a_timeout_runs_on_timeout_and_a_late_event_is_ignored() -> None:
    run = start([WAIT], {"order": "o-1"}, output="{'wait': steps.paid, 'late': state.late}")
    run.feed(cmd.Advance())
    late_event = cmd.DeliverEvent(key="steps[0]", event_id="e1", event_name="payment.received",
                                  payload={})
    decision = run.feed(cmd.FireTimer(timer_id="steps[0]#timeout"), now=at(60))
    assert names(decision)[:3] == ["TimerFired", "WaitTimedOut", "BranchSelected"]
    assert run.state.output == {
        "wait": {"timed_out": True, "event_id": None, "payload": None}, "late": True}
    assert run.feed(late_event) == cmd.Decision()


def test_an_event_with_another_name_or_failing_the_filter_is_ignored() -> None:
    run = start([{**WAIT, "filter": "event.amount >= 10"}], {"order": "o-1"})
    run.feed(cmd.Advance())
    wrong_name = cmd.DeliverEvent(key="steps[0]", event_id="e1", event_name="other",
                                  payload={"amount": 99})
    too_small = cmd.DeliverEvent(key="steps[0]", event_id="e2", event_name="payment.received",
                                 payload={"amount": 3})
    not_even_a_number = cmd.DeliverEvent(key="steps[0]", event_id="e3",
                                         event_name="payment.received", payload="x")
    for ignored in (wrong_name, too_small, not_even_a_number):
        assert run.feed(ignored) == cmd.Decision()
    matching = cmd.DeliverEvent(key="steps[0]", event_id="e4", event_name="payment.received",
                                payload={"amount": 10})
    assert names(run.feed(matching))[0] == "EventReceived"


def test_an_event_id_already_received_is_not_received_again() -> None:
    run = start([{**WAIT, "id": "w1"}, {**WAIT, "id": "w2"}], {"order": "o-1"})
    run.feed(cmd.Advance())
    run.feed(cmd.DeliverEvent(key="steps[0]", event_id="e1", event_name="payment.received",
                              payload=None))
    assert "steps[1]" in run.state.waits
    again = cmd.DeliverEvent(key="steps[1]", event_id="e1", event_name="payment.received",
                             payload=None)
    assert run.feed(again) == cmd.Decision()


@pytest.mark.parametrize("order", [None, {"id": 1}, [1], True, False])
def test_a_correlation_that_is_not_a_scalar_fails_the_run(order: Any) -> None:
    run = start([WAIT], {"order": order})
    run.feed(cmd.Advance())
    assert run.state.status == "failed"
    assert run.state.error is not None
    assert (run.state.error["code"], run.state.error["path"]) == ("EXPR_INVALID",
                                                                  "steps[0].correlation")


# ------------------------------------------------------------------------ human_task


FORM: dict[str, Any] = {"type": "object", "required": ["note"],
                        "properties": {"note": {"type": "string"}}}
TASK = {"type": "human_task", "id": "approval", "task": "Approve refund",
        "assignee": "input.manager", "outcomes": ["approve", "reject"], "deadline_s": 3600,
        "form": FORM}


def test_a_human_task_opens_with_its_assignee_and_deadline_timer() -> None:
    run = start([TASK], {"manager": "alice"})
    decision = run.feed(cmd.Advance())
    assert the(ev.HumanTaskCreated, decision) == ev.HumanTaskCreated(
        at=at(), key="steps[0]", task_id="r1:steps[0]", title="Approve refund", assignee="alice",
        outcomes=["approve", "reject"], form=FORM, deadline=at(3600))
    assert the(cmd.StartTimer, decision) == cmd.StartTimer(timer_id="steps[0]#deadline",
                                                           fire_at=at(3600))


def test_a_decision_completes_the_task() -> None:
    run = start([TASK], {"manager": "alice"}, output="steps.approval")
    run.feed(cmd.Advance())
    decision = run.feed(cmd.DecideTask(task_id="r1:steps[0]", outcome="approve",
                                       data={"note": "ok"}, decided_by="alice"), now=at(5))
    assert the(ev.HumanTaskDecided, decision) == ev.HumanTaskDecided(
        at=at(5), key="steps[0]", task_id="r1:steps[0]", outcome="approve",
        data={"note": "ok"}, decided_by="alice")
    assert cmd.CancelTimer(timer_id="steps[0]#deadline") in decision.commands
    assert run.state.output == {"outcome": "approve", "data": {"note": "ok"},
                                "decided_by": "alice", "expired": False}


def test_an_invalid_decision_is_refused_with_decision_invalid() -> None:
    run = start([TASK], {"manager": "alice"})
    run.feed(cmd.Advance())
    with pytest.raises(InputValidationError) as outcome:
        run.feed(cmd.DecideTask(task_id="r1:steps[0]", outcome="maybe", data={"note": "x"}))
    assert (outcome.value.code, outcome.value.path) == (ErrorCode.DECISION_INVALID, "outcome")
    with pytest.raises(InputValidationError) as data:
        run.feed(cmd.DecideTask(task_id="r1:steps[0]", outcome="approve", data={}))
    assert (data.value.code, data.value.path) == (ErrorCode.DECISION_INVALID, "$.note")
    with pytest.raises(HumanTaskNotFoundError):
        run.feed(cmd.DecideTask(task_id="r1:steps[9]", outcome="approve"))
    assert run.state.status == "running"


def test_a_passed_deadline_marks_the_task_overdue_and_keeps_it_open() -> None:
    run = start([TASK], {"manager": "alice"})
    run.feed(cmd.Advance())
    decision = run.feed(cmd.FireTimer(timer_id="steps[0]#deadline"), now=at(3600))
    assert decision.events == (
        ev.TimerFired(at=at(3600), key="steps[0]", timer_id="steps[0]#deadline"),
        ev.HumanTaskExpired(at=at(3600), key="steps[0]", task_id="r1:steps[0]", closed=False),
    )
    assert run.state.tasks["r1:steps[0]"].overdue
    run.feed(cmd.DecideTask(task_id="r1:steps[0]", outcome="reject", data={"note": "late"}))
    assert run.state.status == "completed"


def test_on_deadline_closes_the_task_and_runs_its_steps() -> None:
    run = start([{**TASK, "on_deadline": [{"type": "assign", "values": {"escalated": "true"}}]}],
                {"manager": "alice"}, output="{'task': steps.approval, 'vars': state}")
    run.feed(cmd.Advance())
    decision = run.feed(cmd.FireTimer(timer_id="steps[0]#deadline"), now=at(3600))
    assert the(ev.HumanTaskExpired, decision).closed is True
    assert the(ev.BranchSelected, decision).branch == "on_deadline"
    assert run.state.output == {"task": {"outcome": None, "data": None, "decided_by": None,
                                         "expired": True},
                                "vars": {"escalated": True}}
    with pytest.raises(HumanTaskNotFoundError):
        run.feed(cmd.DecideTask(task_id="r1:steps[0]", outcome="approve", data={"note": "x"}))


# ------------------------------------------------------------------------ sleep, child


def test_sleep_starts_a_timer_and_completes_when_it_fires() -> None:
    run = start([{"type": "sleep", "seconds": 1.5}, ASSIGN], {"amount": 1})
    decision = run.feed(cmd.Advance())
    assert decision.commands == (cmd.StartTimer(timer_id="steps[0]#sleep", fire_at=at(1.5)),)
    assert run.state.steps["steps[0]"].awaiting == "sleep"
    fired = run.feed(cmd.FireTimer(timer_id="steps[0]#sleep"), now=at(2))
    assert names(fired)[:2] == ["TimerFired", "StepCompleted"]
    assert run.state.status == "completed"


CHILD = {"type": "child_run", "id": "kid", "definition": "shipping", "version": 2,
         "input": {"order": "input.order"}}


def test_child_run_requests_a_child_with_a_derived_id() -> None:
    run = start([CHILD], {"order": "o-1"})
    decision = run.feed(cmd.Advance())
    assert the(ev.ChildRunRequested, decision) == ev.ChildRunRequested(
        at=at(), key="steps[0]", child_run_id="r1:steps[0]", definition_id="shipping",
        definition_version=2, input={"order": "o-1"})
    assert decision.commands == (cmd.StartChildRun(
        child_run_id="r1:steps[0]", parent_step_key="steps[0]", definition_id="shipping",
        definition_version=2, input={"order": "o-1"}),)


def test_a_completed_child_completes_the_step_and_a_failed_one_fails_the_run() -> None:
    ok = start([CHILD], {"order": "o-1"}, output="steps.kid")
    ok.feed(cmd.Advance())
    ok.feed(cmd.ChildFinished(child_run_id="r1:steps[0]", status="completed", output=7))
    assert (ok.state.status, ok.state.output) == ("completed", 7)

    bad = start([CHILD], {"order": "o-1"})
    bad.feed(cmd.Advance())
    bad.feed(cmd.ChildFinished(child_run_id="r1:steps[0]", status="failed",
                               error={"code": "X", "message": "m"}))
    assert bad.state.error == {"code": ErrorCode.CHILD_RUN_FAILED,
                               "message": "child run r1:steps[0] failed", "path": "steps[0]",
                               "child_error": {"code": "X", "message": "m"}}
    assert bad.feed(cmd.ChildFinished(child_run_id="r1:steps[0]", status="completed")) == (
        cmd.Decision())


def test_a_child_run_notifies_its_parent_when_it_finishes() -> None:
    definition = parse_definition({"id": "child", "version": 1, "steps": [ASSIGN]})
    started = ev.RunStarted(at=at(), run_id="c1", tenant="t1", definition_id="child",
                            definition_version=1, definition_hash=definition.content_hash,
                            input={"amount": 1}, engine="local", queue="default",
                            parent_run_id="p1", parent_step_key="steps[3]")
    decision = decide(definition, replay([started]), cmd.Advance(), DecisionContext(now=at()))
    assert decision.commands == (cmd.NotifyParent(parent_run_id="p1", child_run_id="c1",
                                                  status="completed", output={"total": 2}),)


# ------------------------------------------------------------------------ return, fail


def test_return_finishes_the_run_and_cancels_what_is_still_open() -> None:
    run = start([{"type": "parallel", "branches": [
        {"name": "slow", "steps": [{"type": "sleep", "seconds": 60}]},
        {"name": "kid", "steps": [CHILD]},
        {"name": "fast", "steps": [{"type": "return", "output": "{'done': input.order}"}]},
    ]}], {"order": "o-9"})
    decision = run.feed(cmd.Advance())
    assert names(decision)[-2:] == ["StepCompleted", "RunCompleted"]
    assert run.state.output == {"done": "o-9"}
    assert decision.commands[-2:] == (
        cmd.CancelTimer(timer_id="steps[0].branches[0].steps[0]#sleep"),
        cmd.CancelChildRun(child_run_id="r1:steps[0].branches[1].steps[0]"),
    )
    assert run.state.timers == {}
    assert run.state.children == {}


def test_return_without_output_returns_the_state() -> None:
    run = start([ASSIGN, {"type": "return"}, {"type": "assign", "values": {"never": "1"}}],
                {"amount": 1})
    run.feed(cmd.Advance())
    assert run.state.output == {"total": 2}


def test_fail_fails_the_run_with_its_code_message_and_path() -> None:
    run = start([ASSIGN, {"type": "if", "condition": "state.total > 1", "then": [
        {"type": "fail", "code": "TOO_BIG", "message": "'total is ' & $string(state.total)"}]}],
                {"amount": 5})
    decision = run.feed(cmd.Advance())
    expected = {"code": "TOO_BIG", "message": "total is 10", "path": "steps[1].then[0]"}
    assert decision.events[-2:] == (ev.StepFailed(at=at(), key="steps[1].then[0]", error=expected),
                                    ev.RunFailed(at=at(), error=expected))


def test_fail_defaults_to_step_failed() -> None:
    run = start([{"type": "fail", "message": "'no'"}])
    run.feed(cmd.Advance())
    assert run.state.error == {"code": ErrorCode.STEP_FAILED, "message": "no", "path": "steps[0]"}


# ------------------------------------------------------------------------ cancel


def test_cancel_records_the_request_cancels_timers_and_ends_the_run() -> None:
    run = start([WAIT], {"order": "o-1"})
    run.feed(cmd.Advance())
    decision = run.feed(cmd.Cancel(reason="duplicate order", requested_by="ops"), now=at(9))
    assert decision == cmd.Decision(
        events=(ev.CancelRequested(at=at(9), reason="duplicate order", requested_by="ops"),
                ev.RunCancelled(at=at(9), reason="duplicate order")),
        commands=(cmd.CancelTimer(timer_id="steps[0]#timeout"),),
    )
    assert run.state.status == "cancelled"


def test_a_finished_run_refuses_cancel_and_task_decisions_and_ignores_the_rest() -> None:
    run = start([ASSIGN], {"amount": 1})
    run.feed(cmd.Advance())
    with pytest.raises(RunFinishedError):
        run.feed(cmd.Cancel())
    with pytest.raises(HumanTaskNotFoundError):
        run.feed(cmd.DecideTask(task_id="r1:steps[0]", outcome="approve"))
    for ignored in (cmd.Advance(), cmd.FireTimer(timer_id="x"),
                    cmd.DeliverEvent(key="steps[0]", event_id="e", event_name="n", payload=None),
                    cmd.ChildFinished(child_run_id="c", status="completed")):
        assert run.feed(ignored) == cmd.Decision()


def test_decide_does_not_change_the_state_it_is_given() -> None:
    run = start([PAY, WAIT], {"amount": 5, "order": "o-1"})
    run.feed(cmd.Advance())
    before = run.state
    snapshot = repr(before)
    decide(run.definition, before, cmd.ReportOutcome(key="steps[0]", attempt=1, ok=True),
           DecisionContext(now=at(1)))
    assert repr(before) == snapshot
