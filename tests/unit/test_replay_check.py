"""``check_replay``: a changed definition against recorded histories (issue 7 item 5)."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from tests.property.strategies import T0, Driver, Scenario, scenarios
from wfapps.cli import app
from wfdomain import Divergence, ReplayReport, check_replay, parse_definition
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.codec import decode_event, encode_event
from wfdomain.definition import Definition

HISTORIES = Path(__file__).resolve().parents[1] / "fixtures" / "histories"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> tuple[Definition, list[ev.WorkflowEvent], dict[str, Any]]:
    raw = json.loads((HISTORIES / f"{name}.json").read_text())
    events = [decode_event(e["type"], datetime.fromisoformat(e["at"]), e["data"])
              for e in raw["events"]]
    return parse_definition(raw["definition"]), events, raw


def record(document: dict[str, Any], run_input: Any,
           script: Sequence[cmd.Input] = ()) -> list[ev.WorkflowEvent]:
    driver = Driver.start(parse_definition(document), run_input)
    driver.feed(cmd.Advance())
    for inp in script:
        driver.tick(inp)
    return driver.history


def divergence_of(report: ReplayReport) -> Divergence:
    assert not report.ok
    assert report.divergence is not None
    assert report.events_checked == report.divergence.version - 1
    return report.divergence


# ------------------------------------------------------------------- golden histories


@pytest.mark.parametrize("name", ["order_fulfilment", "refund_approval",
                                  "subscription_cancelled"])
def test_every_golden_history_replays_under_its_own_definition(name: str) -> None:
    definition, events, _ = load(name)
    assert definition.content_hash == events[0].definition_hash  # type: ignore[union-attr]
    report = check_replay(definition, events)
    assert report == ReplayReport(ok=True, events_checked=len(events))


def test_the_changed_definition_golden_history_breaks_at_the_charge() -> None:
    definition, events, raw = load("order_fulfilment_changed_definition")
    divergence = divergence_of(check_replay(definition, events))
    assert divergence.version == raw["redecide"]["diverges_at"] + 1 == 6
    assert divergence.step_path == "steps[1]"  # the `pay` action
    assert divergence.expected is not None
    assert divergence.actual is not None
    assert divergence.expected["type"] == divergence.actual["type"] == "ActionScheduled"
    assert divergence.expected["data"]["input"] == raw["redecide"]["recorded_input"]
    assert divergence.actual["data"]["input"] == raw["redecide"]["decided_input"]
    assert divergence.expected == {"type": "ActionScheduled",
                                   "at": events[5].at.isoformat(),
                                   "data": encode_event(events[5])[2]}
    assert "input" in divergence.message
    assert "27.5" in divergence.message


def test_a_history_of_another_definition_is_refused_at_version_1() -> None:
    definition, events, _ = load("order_fulfilment")
    other, _, _ = load("refund_approval")
    divergence = divergence_of(check_replay(other, events))
    assert divergence.version == 1
    assert divergence.step_path is None
    assert "order_fulfilment" in divergence.message
    assert divergence.expected is not None
    assert divergence.expected["type"] == "RunStarted"
    assert not check_replay(definition, []).ok


# ------------------------------------------------------------------- changed definitions


BRANCHY: dict[str, Any] = {
    "id": "branchy", "version": 1,
    "steps": [
        {"type": "assign", "id": "seen", "values": {"n": "input.n"}},
        {"type": "if", "id": "big", "condition": "state.n > 5",
         "then": [{"type": "assign", "values": {"size": "'big'"}}],
         "else": [{"type": "assign", "values": {"size": "'small'"}}]},
        {"type": "action", "id": "first", "action": "a", "input": {"n": "state.n"}},
        {"type": "action", "id": "second", "action": "b", "input": {"size": "state.size"}},
        {"type": "return", "output": "state.size"},
    ],
}


def branchy_history() -> list[ev.WorkflowEvent]:
    return record(BRANCHY, {"n": 7}, [
        cmd.ReportOutcome(key="steps[2]", attempt=1, ok=True, output={"done": 1}),
        cmd.ReportOutcome(key="steps[3]", attempt=1, ok=True, output={"done": 2}),
    ])


def test_the_unchanged_definition_replays_its_own_history() -> None:
    history = branchy_history()
    assert isinstance(history[-1], ev.RunCompleted)
    assert check_replay(parse_definition(BRANCHY), history).ok


def test_a_changed_if_condition_diverges_at_the_branch_selected() -> None:
    history = branchy_history()
    changed = copy.deepcopy(BRANCHY)
    changed["steps"][1]["condition"] = "state.n > 50"
    divergence = divergence_of(check_replay(parse_definition(changed), history))
    recorded = history[divergence.version - 1]
    assert isinstance(recorded, ev.BranchSelected)
    assert recorded.branch == "then"
    assert divergence.step_path == "steps[1]"
    assert divergence.actual is not None
    assert divergence.actual["data"]["branch"] == "else"
    assert "branch" in divergence.message


def test_a_reordered_step_diverges_at_the_first_step_that_moved() -> None:
    history = branchy_history()
    changed = copy.deepcopy(BRANCHY)
    changed["steps"][2], changed["steps"][3] = changed["steps"][3], changed["steps"][2]
    divergence = divergence_of(check_replay(parse_definition(changed), history))
    recorded = history[divergence.version - 1]
    assert isinstance(recorded, ev.StepStarted)
    assert (recorded.key, recorded.step_id) == ("steps[2]", "first")
    assert divergence.step_path == "steps[2]"
    assert divergence.actual is not None
    assert divergence.actual["data"]["step_id"] == "second"


def test_an_expression_that_now_fails_is_reported_not_raised() -> None:
    history = branchy_history()
    changed = copy.deepcopy(BRANCHY)
    changed["steps"][0]["values"]["n"] = "$number('not a number')"
    report = check_replay(parse_definition(changed), history)
    divergence = divergence_of(report)
    assert divergence.step_path == "steps[0]"
    assert divergence.expected is not None
    assert divergence.expected["type"] == "StateSet"
    assert divergence.actual is not None
    assert divergence.actual["type"] in ("StepFailed", "RunFailed")


def test_a_definition_that_lost_steps_is_reported_not_raised() -> None:
    history = branchy_history()
    changed = copy.deepcopy(BRANCHY)
    del changed["steps"][2:4]
    divergence = divergence_of(check_replay(parse_definition(changed), history))
    assert divergence.version <= len(history)
    assert divergence.message


def test_a_different_logical_time_is_a_divergence() -> None:
    definition, events, _ = load("order_fulfilment")
    shifted = [*events[:1], *(ev_at(e, timedelta(seconds=1)) for e in events[1:3]), *events[3:]]
    divergence = divergence_of(check_replay(definition, shifted))
    # v2 (the first decided event) sets the decision time, v3 was shifted too, and the
    # recorded v4 keeps the original time that the decision no longer gives it
    assert divergence.version == 4
    assert "at recorded" in divergence.message


def ev_at(event: ev.WorkflowEvent, delta: timedelta) -> ev.WorkflowEvent:
    name, at, data = encode_event(event)
    return decode_event(name, at + delta, data)


def test_history_that_goes_on_after_the_definition_stops_is_reported() -> None:
    definition, events, _ = load("subscription_cancelled")
    extra = ev.StepStarted(at=events[-1].at, key="steps[9]", step_type="assign")
    tampered = [*events[:-1], extra]
    divergence = divergence_of(check_replay(definition, tampered))
    assert divergence.version == len(tampered)
    assert divergence.step_path == "steps[9]"
    assert divergence.actual is not None
    assert divergence.actual["type"] == "RunCancelled"


# ------------------------------------------------------------------- in-flight histories


def test_an_in_flight_history_is_checked_up_to_its_end() -> None:
    definition, events, _ = load("order_fulfilment")
    cuts = [i for i, e in enumerate(events) if isinstance(e, ev.INPUT_EVENTS)]
    assert cuts
    for cut in [1, *cuts]:  # every decision boundary
        assert check_replay(definition, events[:cut]) == ReplayReport(ok=True,
                                                                      events_checked=cut)
    # cut inside a decision: the definition decides more than was recorded
    divergence = divergence_of(check_replay(definition, events[:cuts[0] + 1]))
    assert divergence.version == cuts[0] + 2
    assert divergence.expected is None
    assert divergence.actual is not None


def test_run_moved_is_folded_not_decided() -> None:
    definition, events, _ = load("order_fulfilment")
    cut = next(i for i, e in enumerate(events) if isinstance(e, ev.INPUT_EVENTS))
    moved = ev.RunMoved(at=events[cut - 1].at, tenant="acme", engine="sqlite", queue="q2")
    history = [*events[:cut], moved, *events[cut:]]
    assert check_replay(definition, history) == ReplayReport(ok=True,
                                                             events_checked=len(history))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(max_leaves=6))
def test_an_unchanged_definition_replays_any_generated_history(scenario: Scenario) -> None:
    driver = scenario.run(settle=False)
    report = check_replay(scenario.definition, driver.history)
    assert report == ReplayReport(ok=True, events_checked=len(driver.history)), report


def test_generated_histories_start_at_t0() -> None:  # the helper this file relies on
    assert Driver.start(parse_definition(BRANCHY), {"n": 1}).history[0].at == T0


# ------------------------------------------------------------------------------- wf check


def test_wf_check_lists_the_waiting_runs_a_changed_definition_would_break(
    tmp_path: Path,
) -> None:
    engine = f"sqlite:///{tmp_path / 'wf.db'}"
    runner = CliRunner()
    started = runner.invoke(app, ["run", str(EXAMPLES / "ticket_approval"), "--engine", engine,
                                  "--json"])
    assert started.exit_code == 4, started.output
    run_id = json.loads(started.output)["run_id"]

    same = runner.invoke(app, ["check", str(EXAMPLES / "ticket_approval"), "--engine", engine])
    assert same.exit_code == 0, same.output
    assert f"{run_id} (waiting, definition v1): ok" in same.output
    assert "checked 1 in-flight runs" in same.output
    assert "0 would break" in same.output

    changed = tmp_path / "ticket_approval"
    shutil.copytree(EXAMPLES / "ticket_approval", changed)
    yaml_path = changed / "definition.yaml"
    text = yaml_path.read_text()
    old = 'input: {summary: "input.summary", amount: "input.amount"}'
    assert old in text
    yaml_path.write_text(text.replace(
        old, 'input: {summary: "input.summary", amount: "input.amount * 2"}'))
    broken = runner.invoke(app, ["check", str(changed), "--engine", engine])
    assert broken.exit_code == 1, broken.output
    assert f"{run_id} (waiting, definition v1): BREAKS at v" in broken.output
    assert "(steps[0])" in broken.output
    assert "1 would break" in broken.output


def test_wf_check_skips_finished_runs_unless_all(tmp_path: Path) -> None:
    engine = f"sqlite:///{tmp_path / 'wf.db'}"
    runner = CliRunner()
    done = runner.invoke(app, ["run", str(EXAMPLES / "order_fulfilment"), "--engine", engine])
    assert done.exit_code == 0, done.output
    in_flight = runner.invoke(app, ["check", str(EXAMPLES / "order_fulfilment"),
                                    "--engine", engine])
    assert in_flight.exit_code == 0, in_flight.output
    assert "checked 0 in-flight runs" in in_flight.output
    everything = runner.invoke(app, ["check", str(EXAMPLES / "order_fulfilment"),
                                     "--engine", engine, "--all"])
    assert everything.exit_code == 0, everything.output
    assert "(completed, definition v1): ok" in everything.output
    assert "checked 1 runs" in everything.output


def test_wf_check_engine_error_is_3() -> None:
    result = CliRunner().invoke(app, ["check", str(EXAMPLES / "ticket_approval"),
                                      "--engine", "postgres://postgres@127.0.0.1:1/x"])
    assert result.exit_code == 3
    assert "STORAGE_UNAVAILABLE" in result.output
