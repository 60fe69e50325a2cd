"""STYLE rule 23: committed golden histories still decode, replay and re-decide exactly.

Each ``tests/fixtures/histories/*.json`` holds a definition document, a history (envelopes:
``version``, ``type``, ``at``, ``data``) and the expected outcome. For each one:

* the codec decodes every envelope and encodes it back to the same JSON;
* ``replay`` of the history gives the expected status, output, error and version;
* re-decision feeds every recorded *input* event back to ``decide`` as the input it
  records (the first decision after ``RunStarted`` is ``Advance``) at the recorded time,
  and the decisions must reproduce the recorded events exactly. A history recorded with
  ``"redecide": {"diverges_at": n}`` was recorded under another definition: re-deciding it
  with the one in the file must fail at ``events[n]`` (0-based; version ``n + 1``).

The files are written by ``generate_histories`` below, once, and committed; the tests only
read them. After a deliberate change to the event schema or to decision logic, regenerate
with ``.venv/bin/python -m tests.unit.test_golden_histories`` and review the diff.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.property.strategies import T0, Driver
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.codec import decode_event, encode_event
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import Definition, parse_definition
from wfdomain.errors import WorkflowEngineError
from wfdomain.replay_check import input_of
from wfdomain.state import replay

HISTORIES = Path(__file__).resolve().parents[1] / "fixtures" / "histories"
FILES = sorted(HISTORIES.glob("*.json"))


# ------------------------------------------------------------------------ re-decision


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where re-deciding a history first disagrees with it."""

    index: int
    recorded: ev.WorkflowEvent | None
    decided: ev.WorkflowEvent | str | None


def redecide(definition: Definition, events: list[ev.WorkflowEvent]) -> Divergence | None:
    """Re-decide ``events`` under ``definition``; None when every decision matches."""
    state = replay(events[:1])
    i = 1
    while i < len(events):
        recorded = events[i]
        inp = input_of(recorded)
        if inp is None:
            if i != 1:  # history goes on deciding where the definition stopped
                return Divergence(i, recorded, None)
            inp = cmd.Advance()
        try:
            decision = decide(definition, state, inp, DecisionContext(now=recorded.at))
        except WorkflowEngineError as e:
            return Divergence(i, recorded, f"{type(e).__name__}: {e}")
        for j, decided in enumerate(decision.events):
            expected = events[i + j] if i + j < len(events) else None
            if decided != expected:
                return Divergence(i + j, expected, decided)
        if not decision.events:
            return Divergence(i, recorded, None)
        state = replay(decision.events, state)
        i += len(decision.events)
    return None


# ----------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class Golden:
    """One golden history file, decoded."""

    document: dict[str, Any]
    envelopes: list[dict[str, Any]]
    events: list[ev.WorkflowEvent]
    expected: dict[str, Any]
    redecide: Any


def load(path: Path) -> Golden:
    raw = json.loads(path.read_text())
    assert raw["format"] == 1
    events = [decode_event(e["type"], datetime.fromisoformat(e["at"]), e["data"])
              for e in raw["events"]]
    return Golden(raw["definition"], raw["events"], events, raw["expected"], raw["redecide"])


def envelope_json(version: int, event: ev.WorkflowEvent) -> dict[str, Any]:
    name, at, data = encode_event(event)
    return {"version": version, "type": name, "at": at.isoformat(), "data": data}


# ------------------------------------------------------------------------------- tests


def test_the_golden_histories_are_there() -> None:
    assert {p.stem for p in FILES} == {
        "order_fulfilment", "order_fulfilment_changed_definition", "refund_approval",
        "subscription_cancelled",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_codec_reads_every_envelope_and_writes_it_back_unchanged(path: Path) -> None:
    golden = load(path)
    assert [e["version"] for e in golden.envelopes] == list(range(1, len(golden.events) + 1))
    rewritten = [envelope_json(v, e) for v, e in enumerate(golden.events, start=1)]
    assert json.loads(json.dumps(rewritten)) == golden.envelopes


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_replay_reaches_the_recorded_outcome(path: Path) -> None:
    golden = load(path)
    state = replay(golden.events)
    assert {"status": state.status, "output": state.output, "error": state.error,
            "version": state.version} == golden.expected
    assert state.finished
    assert not state.timers
    assert not state.waits
    assert not state.tasks


@pytest.mark.parametrize("path", [p for p in FILES if "changed" not in p.stem],
                         ids=lambda p: p.stem)
def test_redeciding_every_recorded_input_reproduces_the_history(path: Path) -> None:
    golden = load(path)
    assert golden.redecide == "matches"
    definition = parse_definition(golden.document)
    started = golden.events[0]
    assert isinstance(started, ev.RunStarted)
    # the runtime refuses a stored definition whose hash differs from the run's
    assert definition.content_hash == started.definition_hash
    assert redecide(definition, golden.events) is None


def test_a_history_recorded_under_another_definition_fails_redecision() -> None:
    golden = load(HISTORIES / "order_fulfilment_changed_definition.json")
    original = load(HISTORIES / "order_fulfilment.json")
    assert golden.envelopes == original.envelopes  # the same history...
    changed = parse_definition(golden.document)    # ...under a changed definition
    started = golden.events[0]
    assert isinstance(started, ev.RunStarted)
    assert changed.content_hash != started.definition_hash

    divergence = redecide(changed, golden.events)
    assert divergence is not None
    assert divergence.index == golden.redecide["diverges_at"]
    assert isinstance(divergence.recorded, ev.ActionScheduled)
    assert isinstance(divergence.decided, ev.ActionScheduled)
    assert (divergence.recorded.input, divergence.decided.input) == (
        golden.redecide["recorded_input"], golden.redecide["decided_input"])


def test_redecide_reports_a_history_that_goes_on_after_the_definition_stops() -> None:
    golden = load(HISTORIES / "subscription_cancelled.json")
    definition = parse_definition(golden.document)
    extra = ev.StepStarted(at=golden.events[-1].at, key="steps[9]", step_type="assign")
    tampered = [*golden.events[:-1], extra]
    divergence = redecide(definition, tampered)
    assert divergence == Divergence(len(tampered) - 1, extra,
                                    ev.RunCancelled(at=extra.at, reason="customer asked"))


# --------------------------------------------------------------------------- generator


def _seconds(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


ORDER: dict[str, Any] = {
    "id": "order_fulfilment", "version": 1, "title": "Charge, notify and ship an order",
    "input_schema": {"type": "object", "required": ["order", "items"]},
    "steps": [
        {"type": "assign", "id": "totals",
         "values": {"total": "$sum(input.items.(qty * price))", "lines": "$count(input.items)"}},
        {"type": "action", "id": "pay", "action": "charge",
         "input": {"order": "input.order", "amount": "state.total"},
         "retry": {"max_attempts": 3, "initial_interval_s": 30}, "timeout_s": 10,
         "save_as": "payment"},
        {"type": "parallel", "id": "after_payment", "branches": [
            {"name": "notify", "steps": [{"type": "action", "action": "send_email",
                                          "input": {"to": "input.email", "template": "'paid'"}}]},
            {"name": "cooldown", "steps": [{"type": "sleep", "seconds": 60}]},
        ]},
        {"type": "for_each", "id": "shipments", "items": "input.items", "max_concurrency": 2,
         "do": [{"type": "action", "id": "ship", "action": "ship",
                 "input": {"sku": "item.sku", "qty": "item.qty", "line": "index"}}]},
        {"type": "return",
         "output": "{'order': input.order, 'paid': state.payment.receipt, "
                   "'tracking': steps.shipments.tracking}"},
    ],
}

REFUND: dict[str, Any] = {
    "id": "refund_approval", "version": 3, "title": "Refund after a manager's approval",
    "steps": [
        {"type": "wait_event", "id": "request", "event": "refund.requested",
         "correlation": "input.order", "filter": "event.amount > 0", "timeout_s": 86400,
         "on_timeout": [{"type": "fail", "code": "NO_REQUEST",
                         "message": "'no refund request for ' & input.order"}]},
        {"type": "human_task", "id": "review", "task": "Review refund",
         "assignee": "input.manager", "outcomes": ["approve", "reject"],
         "form": {"type": "object", "properties": {"note": {"type": "string"}}},
         "deadline_s": 3600},
        {"type": "switch", "id": "route", "cases": [
            {"when": "steps.review.outcome = 'approve'",
             "steps": [{"type": "action", "id": "refund", "action": "refund",
                        "input": {"order": "input.order",
                                  "amount": "steps.request.payload.amount"}}]},
        ], "default": [{"type": "assign", "values": {"rejected": "true"}}]},
        {"type": "child_run", "id": "notify", "definition": "notify_customer",
         "input": {"order": "input.order", "outcome": "steps.review.outcome"}},
        {"type": "assign", "values": {"closed_at": "$nowIso()"}},
    ],
    "output": "{'outcome': steps.review.outcome, 'refund': steps.refund, "
              "'closed_at': state.closed_at}",
}

SUBSCRIPTION: dict[str, Any] = {
    "id": "subscription", "version": 1,
    "steps": [
        {"type": "action", "id": "reserve", "action": "reserve_stock",
         "input": {"sku": "input.sku"}, "retry": {"max_attempts": 2, "initial_interval_s": 0},
         "on_error": [{"type": "assign",
                       "values": {"backorder": "true", "reason": "error.code"}}]},
        {"type": "wait_event", "id": "confirm", "event": "customer.confirmed",
         "correlation": "input.customer", "timeout_s": 600,
         "on_timeout": [{"type": "human_task", "id": "call", "task": "Call the customer",
                         "outcomes": ["confirmed", "dropped"], "deadline_s": 7200,
                         "on_deadline": [{"type": "fail", "message": "'unreachable'"}]}]},
        {"type": "action", "action": "activate", "input": {"customer": "input.customer"}},
    ],
}


def _record(document: dict[str, Any], run_input: Any, run_id: str,
            script: list[tuple[float, cmd.Input]]) -> Driver:
    driver = Driver.start(parse_definition(document), run_input, tenant="acme", run_id=run_id)
    driver.feed(cmd.Advance())
    for seconds, inp in script:
        driver.feed(inp, now=_seconds(seconds))
    return driver


def _file(description: str, document: dict[str, Any], driver: Driver,
          redecide_: Any = "matches") -> dict[str, Any]:
    state = driver.state
    return {
        "format": 1,
        "description": description,
        "definition": document,
        "events": [envelope_json(v, e) for v, e in enumerate(driver.history, start=1)],
        "expected": {"status": state.status, "output": state.output, "error": state.error,
                     "version": state.version},
        "redecide": redecide_,
    }


def generate_histories() -> dict[str, dict[str, Any]]:
    """Record the golden histories by driving ``decide`` (run by hand, never by the tests)."""
    items = [{"sku": "A", "qty": 1, "price": 10}, {"sku": "B", "qty": 2, "price": 5},
             {"sku": "C", "qty": 1, "price": 7.5}]
    order = _record(ORDER, {"order": "o-1001", "email": "ann@example.com", "items": items},
                    "run-order", [
        (2, cmd.ReportOutcome(key="steps[1]", attempt=1, ok=False,
                              error={"code": "GATEWAY_TIMEOUT", "message": "no answer",
                                     "retryable": True})),
        (32, cmd.FireTimer(timer_id="steps[1]#retry2")),
        (33, cmd.ReportOutcome(key="steps[1]", attempt=2, ok=True,
                               output={"receipt": "rc-77", "amount": 27.5})),
        (34, cmd.ReportOutcome(key="steps[2].branches[0].steps[0]", attempt=1, ok=True,
                               output={"message_id": "m-1"})),
        (93, cmd.FireTimer(timer_id="steps[2].branches[1].steps[0]#sleep")),
        (95, cmd.ReportOutcome(key="steps[3]@1.do[0]", attempt=1, ok=True,
                               output={"tracking": "T-B"})),
        (96, cmd.ReportOutcome(key="steps[3]@0.do[0]", attempt=1, ok=True,
                               output={"tracking": "T-A"})),
        (97, cmd.ReportOutcome(key="steps[3]@2.do[0]", attempt=1, ok=True,
                               output={"tracking": "T-C"})),
    ])
    refund = _record(REFUND, {"order": "o-2002", "manager": "bob"}, "run-refund", [
        (600, cmd.DeliverEvent(key="steps[0]", event_id="evt-1", event_name="refund.requested",
                               payload={"order": "o-2002", "amount": 0})),  # filtered out
        (700, cmd.DeliverEvent(key="steps[0]", event_id="evt-2", event_name="refund.requested",
                               payload={"order": "o-2002", "amount": 25})),
        (4300, cmd.FireTimer(timer_id="steps[1]#deadline")),
        (5000, cmd.DecideTask(task_id="run-refund:steps[1]", outcome="approve",
                              data={"note": "customer is right"}, decided_by="bob")),
        (5001, cmd.ReportOutcome(key="steps[2].cases[0].steps[0]", attempt=1, ok=True,
                                 output={"refund_id": "rf-9"})),
        (5100, cmd.ChildFinished(child_run_id="run-refund:steps[3]", status="completed",
                                 output={"sent": True})),
    ])
    subscription = _record(SUBSCRIPTION, {"sku": "S-1", "customer": "c-42"}, "run-sub", [
        (5, cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False,
                              error={"code": "OUT_OF_STOCK", "message": "none left"})),
        (9, cmd.ReportOutcome(key="steps[0]", attempt=2, ok=False,
                              error={"code": "OUT_OF_STOCK", "message": "none left"})),
        (609, cmd.FireTimer(timer_id="steps[1]#timeout")),
        (1000, cmd.Cancel(reason="customer asked", requested_by="support")),
    ])
    changed = json.loads(json.dumps(ORDER))
    changed["steps"][1]["input"]["amount"] = "state.total + 1.5"  # a surcharge added later
    divergence = redecide(parse_definition(changed), order.history)
    assert divergence is not None
    assert isinstance(divergence.recorded, ev.ActionScheduled)
    assert isinstance(divergence.decided, ev.ActionScheduled)
    return {
        "order_fulfilment": _file(
            "Payment retried after a timeout, parallel notify and cool-down, shipping "
            "for_each with max_concurrency 2 and out-of-order results; completed.",
            ORDER, order),
        "refund_approval": _file(
            "Filtered and matching events, a task past its deadline (overdue, kept open), "
            "a decision, a switch, an action and a child run; $nowIso() in an assign.",
            REFUND, refund),
        "subscription_cancelled": _file(
            "An action failing twice into on_error, a wait timing out into a human task "
            "with a deadline, then a cancel while the task is open.",
            SUBSCRIPTION, subscription),
        "order_fulfilment_changed_definition": _file(
            "The order_fulfilment history under a definition that later added a "
            "surcharge to the charge input: re-decision must fail at the first charge.",
            changed, order,
            {"diverges_at": divergence.index, "recorded_input": divergence.recorded.input,
             "decided_input": divergence.decided.input}),
    }


def write_histories() -> None:
    """Write ``generate_histories()`` to the fixtures directory (review the diff)."""
    HISTORIES.mkdir(parents=True, exist_ok=True)
    for name, content in generate_histories().items():
        (HISTORIES / f"{name}.json").write_text(json.dumps(content, indent=1) + "\n")


if __name__ == "__main__":
    write_histories()
