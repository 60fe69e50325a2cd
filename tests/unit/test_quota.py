"""Per-tenant concurrency limits: the pure parts (events, state, decisions, settings)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.property.strategies import T0
from wfapps.bootstrap import open_engine
from wfapps.settings import Settings, SettingsError, WorkerSettings
from wfapps.worker.main import runtime_options
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.actions import ActionRegistry
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import parse_definition
from wfdomain.errors import ErrorCode, UnsupportedOperationError
from wfdomain.projection import summarize
from wfdomain.quota import Admission, QuotaPolicy
from wfdomain.replay_check import check_replay
from wfdomain.runtime import RuntimeSettings
from wfdomain.state import replay

DEFINITION = parse_definition({"id": "d", "version": 1, "steps": [
    {"type": "assign", "values": {"x": "1"}}]})
STARTED = ev.RunStarted(at=T0, run_id="r", tenant="acme", definition_id="d",
                        definition_version=1, definition_hash=DEFINITION.content_hash,
                        input=None, engine="memory", queue="default")
CTX = DecisionContext(now=T0)


def test_a_paused_run_is_paused_for_quota_and_not_finished() -> None:
    state = replay([STARTED, ev.RunPaused(at=T0)])
    assert state.status == "paused_for_quota"
    assert not state.finished
    assert summarize(state).status == "paused_for_quota"
    assert not summarize(state).finished


def test_a_resumed_run_is_running_again() -> None:
    state = replay([STARTED, ev.RunPaused(at=T0), ev.RunResumed(at=T0)])
    assert (state.status, state.version) == ("running", 3)
    assert summarize(state).status == "running"


def test_a_paused_run_decides_nothing_until_resumed() -> None:
    paused = replay([STARTED, ev.RunPaused(at=T0)])
    assert decide(DEFINITION, paused, cmd.Advance(), CTX) == cmd.Decision()
    resumed = replay([ev.RunResumed(at=T0)], paused)
    events = decide(DEFINITION, resumed, cmd.Advance(), CTX).events
    assert type(events[-1]) is ev.RunCompleted


def test_a_paused_run_can_be_cancelled() -> None:
    paused = replay([STARTED, ev.RunPaused(at=T0)])
    decision = decide(DEFINITION, paused, cmd.Cancel(reason="no"), CTX)
    assert [type(e) for e in decision.events] == [ev.CancelRequested, ev.RunCancelled]
    assert replay(decision.events, paused).status == "cancelled"


@pytest.mark.parametrize(("admission", "active", "paused", "admits"), [
    (Admission(limit=2), 1, 0, True),
    (Admission(limit=2), 2, 0, False),
    (Admission(limit=2), 1, 3, True),  # a resumption is the queue's head
    (Admission(limit=2, behind_paused=True), 1, 1, False),  # a new run queues behind
    (Admission(limit=2, behind_paused=True), 0, 0, True),
])
def test_admission(admission: Admission, active: int, paused: int, admits: bool) -> None:
    assert admission.admits(active, paused) is admits


def test_policy_overrides_per_tenant() -> None:
    policy = QuotaPolicy(default=3, per_tenant={"big": 10, "free": None})
    assert [policy.limit_for(t) for t in ("acme", "big", "free")] == [3, 10, None]
    assert policy.configured
    assert not QuotaPolicy(per_tenant={"free": None}).configured


@pytest.mark.parametrize("limits", [{"default": 0}, {"per_tenant": {"a": 0}}])
def test_a_limit_below_one_is_refused(limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        QuotaPolicy(**limits)


def test_settings_read_the_limits_from_the_environment() -> None:
    settings = Settings.from_env({"WF_TENANT_MAX_ACTIVE_RUNS": "10",
                                  "WF_TENANT_MAX_ACTIVE_RUNS_JSON": '{"big": 50, "ops": null}'})
    assert settings.max_active_runs_per_tenant == 10
    assert settings.tenant_max_active_runs == {"big": 50, "ops": None}
    unset = Settings.from_env({})
    assert (unset.max_active_runs_per_tenant, unset.tenant_max_active_runs) == (None, {})


@pytest.mark.parametrize(("env", "variable"), [
    ({"WF_TENANT_MAX_ACTIVE_RUNS": "many"}, "WF_TENANT_MAX_ACTIVE_RUNS"),
    ({"WF_TENANT_MAX_ACTIVE_RUNS": "0"}, "WF_TENANT_MAX_ACTIVE_RUNS"),
    ({"WF_TENANT_MAX_ACTIVE_RUNS_JSON": "{"}, "WF_TENANT_MAX_ACTIVE_RUNS_JSON"),
    ({"WF_TENANT_MAX_ACTIVE_RUNS_JSON": '{"a": 0}'}, "WF_TENANT_MAX_ACTIVE_RUNS_JSON"),
    ({"WF_TENANT_MAX_ACTIVE_RUNS_JSON": '{"a": true}'}, "WF_TENANT_MAX_ACTIVE_RUNS_JSON"),
    ({"WF_TENANT_MAX_ACTIVE_RUNS_JSON": "[1]"}, "WF_TENANT_MAX_ACTIVE_RUNS_JSON"),
])
def test_malformed_limits_fail_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert caught.value.code == ErrorCode.SETTINGS_INVALID
    assert caught.value.message.startswith(f"{variable}:")


@pytest.mark.parametrize("options", [
    None, RuntimeSettings(max_active_runs_per_tenant=5),
    RuntimeSettings(tenant_max_active_runs={"acme": 2}),
])
async def test_temporal_refuses_a_configured_limit_at_open(options: RuntimeSettings | None) -> None:
    settings = Settings.from_env({"WF_ENGINE_URL": "temporal://127.0.0.1:1/default",
                                  "WF_TENANT_MAX_ACTIVE_RUNS": "3" if options is None else ""})
    with pytest.raises(UnsupportedOperationError) as caught:
        async with open_engine(settings, ActionRegistry(), options=options):
            pass
    assert caught.value.code == ErrorCode.UNSUPPORTED
    assert "WF_TENANT_MAX_ACTIVE_RUNS" in caught.value.message


def test_a_worker_runs_with_the_configured_limits() -> None:
    settings = Settings.from_env({"WF_TENANT_MAX_ACTIVE_RUNS": "4",
                                  "WF_TENANT_MAX_ACTIVE_RUNS_JSON": '{"big": 9}'})
    options = runtime_options(settings, WorkerSettings.from_env({}))
    assert options.max_active_runs_per_tenant == 4
    assert options.tenant_max_active_runs == {"big": 9}


def test_a_paused_then_resumed_history_replays_under_check_replay() -> None:
    resumed = replay([STARTED, ev.RunPaused(at=T0), ev.RunResumed(at=T0)])
    decided = decide(DEFINITION, resumed, cmd.Advance(), CTX).events
    history = [STARTED, ev.RunPaused(at=T0), ev.RunResumed(at=T0), *decided]
    report = check_replay(DEFINITION, history)
    assert report.ok, report
    assert report.events_checked == len(history)
    cancelled = [STARTED, ev.RunPaused(at=T0),
                 *decide(DEFINITION, replay(history[:2]), cmd.Cancel(), CTX).events]
    assert check_replay(DEFINITION, cancelled).ok
