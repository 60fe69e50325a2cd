"""The engine-level contract: workflow scenarios every engine must run identically.

``EngineScenarios`` holds the scenarios written against the engine API alone
(``wfdomain.engine.Engine``); ``EngineContract`` adds those that drive a local runtime's
own machinery (manual clock and ``tick``, the stream, stuck runs, queues, resume).

A local backend subclasses ``EngineContract`` in ``test_engine_<backend>.py`` and overrides
only ``runtime_factory``. The factory's runtimes share one backend and the suite's
``clock`` (a ``ManualClock``), so time moves only when a test advances it, and timers fire
only through ``runtime.tick()`` (called by ``run_until_idle``) afterwards. The Temporal
engine subclasses ``EngineScenarios``: its time is real, so the timer scenarios of the
base use short durations and ``pass_time`` waits for due timers to fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from tests.contract.archive_helpers import run_without_reporting
from tests.contract.engine_helpers import (
    CHILD_ECHO,
    CHILD_FAILS,
    OTHER_TENANT,
    SLEEPER,
    T0,
    TENANT,
    WAIT_PAID,
    EngineFactory,
    RecordingActions,
    RuntimeFactory,
    action,
    advance,
    assign,
    audit_kinds,
    child_parent,
    children_of,
    doc,
    drain_recording,
    engine_error,
    event_types,
    human_task,
    human_tasks,
    max_actions_in_flight,
    output_of,
    pass_time,
    register,
    replayed,
    ret,
    run_doc,
    status_within,
    step_output,
    summary_of,
    wait_event,
)
from wfadapters.memory import ManualClock
from wfdomain.engine import Engine
from wfdomain.errors import ErrorCode
from wfdomain.runtime import Runtime, RuntimeSettings

FORM = {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}}


class EngineScenarios:
    """Scenarios every engine must pass, local or Temporal. Subclasses override
    ``runtime_factory`` (and ``pass_time`` when time is not a ``ManualClock``)."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(T0)

    @pytest.fixture
    async def runtime_factory(self, clock: ManualClock) -> AsyncIterator[EngineFactory]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    @pytest.fixture
    def actions(self) -> RecordingActions:
        return RecordingActions()

    @pytest.fixture
    def rt(self, runtime_factory: EngineFactory, actions: RecordingActions) -> Engine:
        return runtime_factory(actions.registry)

    # -- assign, if, switch ---------------------------------------------------------------

    async def test_assign_and_set_state_update_the_state(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("calc", [
            assign(a="input.x + 1"),
            {"type": "set_state", "values": {"b": "state.a * 10"}},
        ]), {"x": 1})
        assert run.status == "completed"
        assert await output_of(rt, run.run_id) == {"a": 2, "b": 20}

    @pytest.mark.parametrize(("x", "size"), [(5, "big"), (1, "small")])
    async def test_if_runs_then_or_else(self, rt: Engine, x: int, size: str) -> None:
        run = await run_doc(rt, doc("size", [
            {"type": "if", "condition": "input.x > 3",
             "then": [assign(size="'big'")], "else": [assign(size="'small'")]},
        ]), {"x": x})
        assert await output_of(rt, run.run_id) == {"size": size}

    async def test_if_without_else_skips_when_false(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("size", [
            {"type": "if", "condition": "input.x > 3", "then": [assign(size="'big'")]},
            assign(done="true"),
        ]), {"x": 1})
        assert run.status == "completed"
        assert await output_of(rt, run.run_id) == {"done": True}

    @pytest.mark.parametrize(("tier", "rate"), [("gold", 20), ("silver", 10), ("bronze", 0)])
    async def test_switch_runs_first_matching_case_else_default(
        self, rt: Engine, tier: str, rate: int
    ) -> None:
        run = await run_doc(rt, doc("discount", [
            {"type": "switch",
             "cases": [{"when": "input.tier = 'gold'", "steps": [assign(rate="20")]},
                       {"when": "input.tier = 'silver'", "steps": [assign(rate="10")]},
                       {"when": "input.tier != 'bronze'", "steps": [assign(rate="5")]}],
             "default": [assign(rate="0")]},
        ]), {"tier": tier})
        assert await output_of(rt, run.run_id) == {"rate": rate}

    async def test_documents_keep_their_key_order_through_the_engine(self, rt: Engine) -> None:
        # Key order is visible to expressions: an engine that re-orders keys on the way
        # through its storage or transport would decide differently from the others.
        data = {"zeta": 1, "b": {"y": 1, "aa": 2}, "a": 3}
        run = await run_doc(rt, doc("order", [
            assign(keys="$keys(input)", inner="$keys(input.b)"),
        ]), data)
        assert await output_of(rt, run.run_id) == {"keys": ["zeta", "b", "a"],
                                                   "inner": ["y", "aa"]}
        started = (await rt.history(TENANT, run.run_id))[0]
        assert json.dumps(started.data["input"]) == json.dumps(data)

    # -- execute_run: the durable function call -------------------------------------------

    async def test_execute_run_returns_once_the_run_finished(
        self, rt: Engine, actions: RecordingActions
    ) -> None:
        await register(rt, doc("pay", [action("double", {"n": 2}, id="a"),
                                       action("double", {"n": "steps.a.n"}, id="b"),
                                       ret("steps.b.n")]))
        run = await rt.execute_run(TENANT, "pay")
        assert (run.status, run.output) == ("completed", 8)
        assert await output_of(rt, run.run_id) == 8
        assert await rt.get_run(TENANT, run.run_id) == summary_of(run)
        assert actions.count() == 2

    async def test_execute_run_returns_when_the_run_waits(self, rt: Engine) -> None:
        await register(rt, WAIT_PAID)
        run = await rt.execute_run(TENANT, "wait_paid", {"order": "o-1"}, run_id="r-wait")
        assert (run.run_id, run.status, run.output) == ("r-wait", "waiting", None)
        await rt.submit_event(TENANT, "paid", {"amount": 5}, correlation_key="o-1")
        await rt.run_until_idle()
        assert await status_within(rt, run.run_id, "completed") == "completed"
        assert await output_of(rt, run.run_id) == {"amount": 5}

    # -- for_each, parallel ---------------------------------------------------------------

    async def test_for_each_output_is_in_item_order(
        self, rt: Engine, clock: ManualClock, actions: RecordingActions
    ) -> None:
        # Item 0 fails once and is retried after a second, so it completes last; the
        # output keeps item order.
        run = await run_doc(rt, doc("each", [
            {"type": "for_each", "items": "input.items", "do": [
                action("flaky", {"succeed_on": "item"},
                       retry={"max_attempts": 2, "initial_interval_s": 1}),
            ]},
        ]), {"items": [2, 1, 1]})
        await pass_time(rt, clock, 1)
        run = await rt.get_run(TENANT, run.run_id)
        assert run.status == "completed"
        last = actions.calls[-1].ctx
        assert (last.step_key, last.attempt) == ("steps[0]@0.do[0]", 2)
        assert await step_output(rt, run.run_id, "steps[0]") == [
            {"attempt": 2}, {"attempt": 1}, {"attempt": 1}]

    async def test_for_each_respects_max_concurrency(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("each", [
            {"type": "for_each", "items": "input.items", "max_concurrency": 2,
             "do": [action("double", {"n": "item"})]},
        ]), {"items": [1, 2, 3, 4, 5]})
        assert run.status == "completed"
        assert max_actions_in_flight(await rt.history(TENANT, run.run_id)) == 2
        assert await step_output(rt, run.run_id, "steps[0]") == [
            {"n": 2}, {"n": 4}, {"n": 6}, {"n": 8}, {"n": 10}]

    async def test_for_each_without_limit_runs_every_iteration_at_once(
        self, rt: Engine
    ) -> None:
        run = await run_doc(rt, doc("each", [
            {"type": "for_each", "items": "input.items",
             "do": [action("double", {"n": "item"})]},
        ]), {"items": [1, 2, 3, 4]})
        assert max_actions_in_flight(await rt.history(TENANT, run.run_id)) == 4

    async def test_for_each_over_no_items_outputs_empty_list(
        self, rt: Engine, actions: RecordingActions
    ) -> None:
        run = await run_doc(rt, doc("each", [
            {"type": "for_each", "items": "input.items",
             "do": [action("double", {"n": "item"})]},
        ]), {"items": []})
        assert run.status == "completed"
        assert await step_output(rt, run.run_id, "steps[0]") == []
        assert actions.count() == 0

    async def test_parallel_outputs_each_branch(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("fan", [
            {"type": "parallel", "branches": [
                {"name": "a", "steps": [action("double", {"n": "input.x"})]},
                {"name": "b", "steps": [assign(y="input.x + 1")]},
            ]},
        ]), {"x": 3})
        assert run.status == "completed"
        assert await step_output(rt, run.run_id, "steps[0]") == {"a": {"n": 6}, "b": {"y": 4}}

    # -- wait_event -----------------------------------------------------------------------

    async def test_wait_event_resolved_by_explicit_correlation_key(self, rt: Engine) -> None:
        run = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        assert run.status == "waiting"
        await rt.submit_event(TENANT, "paid", {"amount": 5}, correlation_key="o-1")
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert await output_of(rt, run.run_id) == {"amount": 5}

    @pytest.mark.parametrize(("paths", "payload"), [
        ({"paid": ["order.id"]}, {"order": {"id": "o-1"}}),
        ({"*": ["ref"]}, {"ref": "o-1"}),
    ], ids=["by-event-name", "by-wildcard"])
    async def test_wait_event_resolved_by_configured_correlation_path(
        self, runtime_factory: EngineFactory, actions: RecordingActions,
        paths: dict[str, list[str]], payload: dict[str, Any],
    ) -> None:
        rt = runtime_factory(actions.registry, RuntimeSettings(correlation_paths=paths))
        run = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        await rt.submit_event(TENANT, "paid", payload)
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert await output_of(rt, run.run_id) == payload

    async def test_wait_event_filter_rejects_non_matching_event(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("big_payment", [
            wait_event("paid", "input.order", filter="event.amount >= 100"),
        ]), {"order": "o-1"})
        await rt.submit_event(TENANT, "paid", {"amount": 5}, correlation_key="o-1")
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "waiting"
        assert "event.unmatched" in await audit_kinds(rt)
        assert "EventReceived" not in await event_types(rt, run.run_id)

    async def test_wait_event_filter_accepts_matching_event(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("big_payment", [
            wait_event("paid", "input.order", filter="event.amount >= 100"),
        ]), {"order": "o-1"})
        await rt.submit_event(TENANT, "paid", {"amount": 150}, correlation_key="o-1")
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"

    async def test_short_wait_timeout_runs_on_timeout_branch(
        self, rt: Engine, clock: ManualClock
    ) -> None:
        run = await run_doc(rt, doc("timeout", [
            wait_event("paid", "input.order", timeout_s=1,
                       on_timeout=[assign(outcome="'gave up'")]),
        ]), {"order": "o-1"})
        assert run.status == "waiting"
        await pass_time(rt, clock, 1)
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert await output_of(rt, run.run_id) == {"outcome": "gave up"}
        assert "WaitTimedOut" in await event_types(rt, run.run_id)

    # -- human_task -----------------------------------------------------------------------

    async def _open_task(self, rt: Engine, **task: Any) -> tuple[str, str]:
        """Start a run waiting on one human task; return (run id, task id)."""
        run = await run_doc(rt, doc("approve", [human_task(**task), ret("steps.approval")]))
        tasks = await human_tasks(rt)
        assert [t.run_id for t in tasks] == [run.run_id]
        return run.run_id, tasks[0].task_id

    async def test_human_task_decision_resumes_run(self, rt: Engine) -> None:
        run_id, task_id = await self._open_task(rt, form=FORM)
        await rt.decide_task(TENANT, task_id, "approve", {"reason": "fine"}, decided_by="ann")
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run_id)).status == "completed"
        output = await output_of(rt, run_id)
        assert (output["outcome"], output["data"]) == ("approve", {"reason": "fine"})
        assert await human_tasks(rt) == []

    async def test_decision_with_unknown_outcome_is_invalid(self, rt: Engine) -> None:
        _, task_id = await self._open_task(rt)
        error = await engine_error(rt.decide_task(TENANT, task_id, "maybe"))
        assert error.code == ErrorCode.DECISION_INVALID

    async def test_decision_data_failing_form_schema_is_invalid(self, rt: Engine) -> None:
        _, task_id = await self._open_task(rt, form=FORM)
        error = await engine_error(rt.decide_task(TENANT, task_id, "approve", {"reason": 5}))
        assert error.code == ErrorCode.DECISION_INVALID

    async def test_decision_on_unknown_task_is_not_found(self, rt: Engine) -> None:
        error = await engine_error(rt.decide_task(TENANT, "no-such-task", "approve"))
        assert error.code == ErrorCode.HUMAN_TASK_NOT_FOUND

    async def test_short_task_deadline_runs_on_deadline_branch(
        self, rt: Engine, clock: ManualClock
    ) -> None:
        run_id, _ = await self._open_task(rt, deadline_s=1,
                                          on_deadline=[assign(escalated="true")])
        await pass_time(rt, clock, 1)
        assert (await rt.get_run(TENANT, run_id)).status == "completed"
        assert (await output_of(rt, run_id))["expired"] is True
        assert (await rt.get_state(TENANT, run_id)).vars == {"escalated": True}
        assert await human_tasks(rt) == []

    # -- sleep, child_run, return, fail (timers are short: real time on some engines) ----

    async def test_short_sleep_completes_after_its_timer(
        self, rt: Engine, clock: ManualClock
    ) -> None:
        run = await run_doc(rt, doc("napper", [{"type": "sleep", "id": "nap", "seconds": 1},
                                               ret("'woke'")]))
        assert run.status == "waiting"
        await pass_time(rt, clock, 1)
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert await output_of(rt, run.run_id) == "woke"
        assert "TimerFired" in await event_types(rt, run.run_id)

    async def test_short_retry_backoff_retries_after_its_timer(
        self, rt: Engine, clock: ManualClock, actions: RecordingActions
    ) -> None:
        run = await run_doc(rt, doc("flaky", [
            action("flaky", {"succeed_on": 2}, retry={"max_attempts": 2, "initial_interval_s": 1}),
        ]))
        assert (run.status, actions.count()) == ("waiting", 1)
        await pass_time(rt, clock, 1)
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert [c.ctx.attempt for c in actions.calls] == [1, 2]

    async def test_child_run_output_flows_to_parent(self, rt: Engine) -> None:
        await register(rt, CHILD_ECHO)
        run = await run_doc(rt, child_parent("child_echo"), {"x": 7})
        assert run.status == "completed"
        assert await output_of(rt, run.run_id) == {"child_got": 7}
        children = await children_of(rt, run.run_id)
        assert [(c.definition_id, c.status) for c in children] == [("child_echo", "completed")]

    async def test_child_failure_fails_parent(self, rt: Engine) -> None:
        await register(rt, CHILD_FAILS)
        run = await run_doc(rt, child_parent("child_fails"), {"x": 1})
        assert run.status == "failed"
        assert run.error is not None
        assert run.error["code"] == ErrorCode.CHILD_RUN_FAILED
        assert run.error["child_error"]["code"] == "CHILD_SAID_NO"

    async def test_child_of_unknown_definition_fails_parent(self, rt: Engine) -> None:
        run = await run_doc(rt, child_parent("no_such_definition"), {"x": 1})
        assert run.status == "failed"
        assert run.error is not None
        assert run.error["code"] == ErrorCode.CHILD_RUN_FAILED
        assert run.error["child_error"]["code"] == ErrorCode.DEFINITION_NOT_FOUND

    async def test_return_finishes_run_with_output(
        self, rt: Engine, actions: RecordingActions
    ) -> None:
        run = await run_doc(rt, doc("early", [
            ret("{'total': input.x * 2}"),
            action("double", {"n": 1}),
        ]), {"x": 5})
        assert run.status == "completed"
        assert await output_of(rt, run.run_id) == {"total": 10}
        assert actions.count() == 0

    async def test_fail_step_fails_run_with_code_and_message(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("reject", [
            assign(seen="true"),
            {"type": "fail", "code": "ORDER_REJECTED",
             "message": "'order ' & input.order & ' rejected'"},
        ]), {"order": "o-1"})
        assert run.status == "failed"
        assert run.error is not None
        assert (run.error["code"], run.error["message"], run.error["path"]) == (
            "ORDER_REJECTED", "order o-1 rejected", "steps[1]")
        assert (await event_types(rt, run.run_id))[-1] == "RunFailed"

    # -- correlation ----------------------------------------------------------------------

    async def test_unresolved_correlation_routes_nothing_and_is_audited(
        self, rt: Engine
    ) -> None:
        run = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        await rt.submit_event(TENANT, "paid", {"order": "o-1"})  # no key, no paths
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "waiting"
        assert "correlation.unresolved" in await audit_kinds(rt)

    async def test_event_matching_two_waiting_runs_resumes_both(self, rt: Engine) -> None:
        first = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        second = await rt.start_run(TENANT, "wait_paid", {"order": "o-1"})
        await rt.run_until_idle()
        await rt.submit_event(TENANT, "paid", {"amount": 9}, correlation_key="o-1")
        await rt.run_until_idle()
        for run_id in (first.run_id, second.run_id):
            assert (await rt.get_run(TENANT, run_id)).status == "completed"
            assert await output_of(rt, run_id) == {"amount": 9}

    async def test_event_matching_two_waits_of_one_run_resumes_both(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("both", [{"type": "parallel", "branches": [
            {"name": "a", "steps": [wait_event("go", "'k'", id="wa")]},
            {"name": "b", "steps": [wait_event("go", "'k'", id="wb")]},
        ]}]))
        await rt.submit_event(TENANT, "go", {}, correlation_key="k")
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"

    # -- retries --------------------------------------------------------------------------

    async def test_exhausted_retries_fail_run_with_action_code_and_path(
        self, rt: Engine, actions: RecordingActions
    ) -> None:
        run = await run_doc(rt, doc("pay", [
            assign(a="1"),
            action("decline", retry={"max_attempts": 3, "initial_interval_s": 0}),
        ]))
        assert run.status == "failed"
        assert actions.count("decline") == 3
        assert run.error is not None
        assert (run.error["code"], run.error["path"]) == ("CARD_DECLINED", "steps[1]")

    async def test_non_retryable_code_stops_retries(
        self, rt: Engine, actions: RecordingActions
    ) -> None:
        run = await run_doc(rt, doc("pay", [
            action("decline", retry={"max_attempts": 5, "initial_interval_s": 0,
                                     "non_retryable_codes": ["CARD_DECLINED"]}),
        ]))
        assert (run.status, actions.count()) == ("failed", 1)

    async def test_action_failed_error_not_retryable_stops_retries(
        self, rt: Engine, actions: RecordingActions
    ) -> None:
        run = await run_doc(rt, doc("pay", [
            action("decline_final", retry={"max_attempts": 5, "initial_interval_s": 0}),
        ]))
        assert (run.status, actions.count()) == ("failed", 1)
        assert run.error is not None
        assert run.error["code"] == "CARD_DECLINED"

    async def test_on_error_branch_runs_with_error_in_scope(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("pay", [
            action("decline", on_error=[assign(failure="error.code")]),
        ]))
        assert run.status == "completed"
        assert await output_of(rt, run.run_id) == {"failure": "CARD_DECLINED"}

    async def test_action_timeout_fails_with_action_timeout(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("slow", [action("hang", timeout_s=0.05)]))
        assert run.status == "failed"
        assert run.error is not None
        assert run.error["code"] == ErrorCode.ACTION_TIMEOUT

    # -- idempotency ----------------------------------------------------------------------

    async def test_idempotency_key_is_stable_across_attempts(
        self, rt: Engine, actions: RecordingActions
    ) -> None:
        run = await run_doc(rt, doc("flaky", [
            action("flaky", {"succeed_on": 3},
                   retry={"max_attempts": 3, "initial_interval_s": 0}),
        ]))
        assert run.status == "completed"
        assert [c.ctx.attempt for c in actions.calls] == [1, 2, 3]
        assert actions.keys() == [f"{TENANT}:{run.run_id}:steps[0]"] * 3

    async def test_for_each_iterations_get_distinct_idempotency_keys(
        self, rt: Engine, actions: RecordingActions
    ) -> None:
        run = await run_doc(rt, doc("each", [
            {"type": "for_each", "items": "input.items",
             "do": [action("double", {"n": "item"})]},
        ]), {"items": [1, 1, 1]})
        assert sorted(actions.keys()) == [
            f"{TENANT}:{run.run_id}:steps[0]@{i}.do[0]" for i in range(3)]

    # -- cancel ---------------------------------------------------------------------------

    async def test_cancel_waiting_run(self, rt: Engine) -> None:
        run = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        cancelled = await rt.cancel_run(TENANT, run.run_id, reason="customer left")
        assert cancelled.status == "cancelled"
        assert (await rt.get_run(TENANT, run.run_id)).status == "cancelled"
        assert (await event_types(rt, run.run_id))[-2:] == ["CancelRequested", "RunCancelled"]

    async def test_cancelling_parent_cancels_its_children(self, rt: Engine) -> None:
        await register(rt, doc("child_waits", [wait_event("go", "input.x")]))
        run = await run_doc(rt, child_parent("child_waits"), {"x": "k"})
        [child] = await children_of(rt, run.run_id)
        assert await status_within(rt, child.run_id, "waiting") == "waiting"
        await rt.cancel_run(TENANT, run.run_id)
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, child.run_id)).status == "cancelled"
        assert (await rt.get_run(TENANT, run.run_id)).status == "cancelled"

    async def test_cancel_finished_run_is_run_finished(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("quick", [ret("1")]))
        error = await engine_error(rt.cancel_run(TENANT, run.run_id))
        assert error.code == ErrorCode.RUN_FINISHED
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"

    async def test_cancel_unknown_run_is_run_not_found(self, rt: Engine) -> None:
        error = await engine_error(rt.cancel_run(TENANT, "no-such-run"))
        assert error.code == ErrorCode.RUN_NOT_FOUND

    # -- replay ---------------------------------------------------------------------------

    async def test_replay_run_repeats_original_input_and_outcome(
        self, rt: Engine, actions: RecordingActions
    ) -> None:
        original = await run_doc(rt, doc("twice", [
            action("double", {"n": "input.n"}, id="d"),
            ret("{'result': steps.d.n}"),
        ]), {"n": 21})
        replayed_run = await rt.replay_run(TENANT, original.run_id)
        await rt.run_until_idle()
        again = await rt.get_run(TENANT, replayed_run.run_id)
        assert again.run_id != original.run_id
        assert (again.replay_of, again.status) == (original.run_id, "completed")
        assert (await rt.get_state(TENANT, again.run_id)).input == {"n": 21}
        assert await output_of(rt, again.run_id) == await output_of(rt, original.run_id)
        assert actions.count() == 2

    # -- listing --------------------------------------------------------------------------

    async def test_list_runs_filters_by_status(self, rt: Engine) -> None:
        done = await run_doc(rt, doc("quick", [ret("1")]))
        waiting = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        waiting_ids = [r.run_id for r in await rt.list_runs(TENANT, statuses=["waiting"])]
        assert waiting_ids == [waiting.run_id]
        done_ids = [r.run_id for r in await rt.list_runs(TENANT, statuses=["completed", "failed"])]
        assert done_ids == [done.run_id]
        assert {r.run_id for r in await rt.list_runs(TENANT)} == {done.run_id, waiting.run_id}
        assert await rt.list_runs(TENANT, statuses=[]) == []

    # -- tenants --------------------------------------------------------------------------

    @pytest.mark.parametrize("operation", ["get_run", "history", "get_state", "cancel_run"])
    async def test_other_tenant_sees_run_as_not_found(
        self, rt: Engine, operation: str
    ) -> None:
        run = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        error = await engine_error(getattr(rt, operation)(OTHER_TENANT, run.run_id))
        assert error.code == ErrorCode.RUN_NOT_FOUND
        assert (await rt.get_run(TENANT, run.run_id)).status == "waiting"

    async def test_other_tenant_cannot_see_or_decide_task(self, rt: Engine) -> None:
        run_id, task_id = await self._open_task(rt)
        assert await human_tasks(rt, tenant=OTHER_TENANT) == []
        error = await engine_error(rt.decide_task(OTHER_TENANT, task_id, "approve"))
        assert error.code == ErrorCode.HUMAN_TASK_NOT_FOUND
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run_id)).status == "waiting"

    async def test_submit_event_to_unknown_run_is_run_not_found(self, rt: Engine) -> None:
        error = await engine_error(rt.submit_event(TENANT, "paid", {}, run_id="no-such-run"))
        assert error.code == ErrorCode.RUN_NOT_FOUND

    async def test_submit_event_to_finished_run_is_run_finished(self, rt: Engine) -> None:
        run = await run_doc(rt, doc("quick", [ret("1")]))
        error = await engine_error(rt.submit_event(TENANT, "paid", {}, run_id=run.run_id))
        assert error.code == ErrorCode.RUN_FINISHED

    # -- bad input ------------------------------------------------------------------------

    async def test_input_failing_schema_is_input_invalid(self, rt: Engine) -> None:
        schema = {"type": "object", "required": ["order"]}
        await register(rt, doc("strict", [ret("1")], input_schema=schema))
        error = await engine_error(rt.start_run(TENANT, "strict", {"amount": 1}))
        assert error.code == ErrorCode.INPUT_INVALID
        assert await rt.list_runs(TENANT) == []

    async def test_unknown_definition_is_definition_not_found(self, rt: Engine) -> None:
        error = await engine_error(rt.start_run(TENANT, "no_such_definition", {}))
        assert error.code == ErrorCode.DEFINITION_NOT_FOUND

    async def test_registering_unknown_action_is_action_unknown(self, rt: Engine) -> None:
        bad = doc("bad", [assign(a="1"), action("no_such_action")])
        error = await engine_error(register(rt, bad))
        assert (error.code, error.path) == (ErrorCode.ACTION_UNKNOWN, "steps[1].action")

    # -- history, time travel, snapshots --------------------------------------------------

    @pytest.mark.parametrize("snapshot_every", [0, 3])
    async def test_state_at_equals_replay_of_prefix(
        self, runtime_factory: EngineFactory, actions: RecordingActions, snapshot_every: int
    ) -> None:
        rt = runtime_factory(actions.registry, RuntimeSettings(snapshot_every=snapshot_every))
        run = await run_doc(rt, doc("travel", [
            assign(a="1"),
            {"type": "for_each", "items": "[1, 2, 3]", "max_concurrency": 2,
             "do": [action("double", {"n": "item"})]},
            action("flaky", {"succeed_on": 2}, retry={"max_attempts": 2, "initial_interval_s": 0}),
            wait_event("paid", "input.order", timeout_s=60),
        ]), {"order": "o-1"})
        history = await rt.history(TENANT, run.run_id)
        assert len(history) > 6
        for version in range(1, len(history) + 1):
            expected = replayed(history[:version])
            assert await rt.state_at(TENANT, run.run_id, version) == expected, version

    # -- the run archive ------------------------------------------------------------------

    async def test_archive_is_json_and_round_trips(self, rt: Engine) -> None:
        run = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        archive = await rt.export_run(TENANT, run.run_id)
        assert json.loads(json.dumps(archive)) == archive
        assert (archive["format"], archive["version"]) == ("wfengine.run-archive", 1)
        assert archive["run"]["status"] == "waiting"
        assert [e["type"] for e in archive["history"]] == await event_types(rt, run.run_id)

    async def test_corrupt_archive_is_archive_invalid_and_stores_nothing(
        self, rt: Engine
    ) -> None:
        run = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        archive = await rt.export_run(TENANT, run.run_id)
        del archive["history"][1]
        error = await engine_error(rt.import_run(archive, tenant=OTHER_TENANT))
        assert (error.code, error.path) == (ErrorCode.ARCHIVE_INVALID, "history[1].version")
        error = await engine_error(rt.get_run(OTHER_TENANT, run.run_id))
        assert error.code == ErrorCode.RUN_NOT_FOUND

    async def test_import_of_an_existing_run_id_is_run_already_exists(
        self, rt: Engine
    ) -> None:
        run = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        archive = await rt.export_run(TENANT, run.run_id)
        error = await engine_error(rt.import_run(archive))
        assert error.code == ErrorCode.RUN_ALREADY_EXISTS
        assert len(await rt.history(TENANT, run.run_id)) == len(archive["history"])

    async def test_unfinished_run_tree_cannot_be_moved(self, rt: Engine) -> None:
        await register(rt, SLEEPER)
        parent = await run_doc(rt, child_parent("sleeper"), {"x": 1})
        [child] = await children_of(rt, parent.run_id)
        for run_id in (parent.run_id, child.run_id):
            archive = await rt.export_run(TENANT, run_id)
            error = await engine_error(rt.import_run(archive, tenant=OTHER_TENANT))
            assert error.code == ErrorCode.UNSUPPORTED


class EngineContract(EngineScenarios):
    """The scenarios plus those that drive the local runtime's own machinery: the manual
    clock and ``tick``, the stream, stuck-run detection, queues, ``resume_run`` and moves
    between two runtimes. Local backends subclass this."""

    @pytest.fixture
    def rt_messages(self, runtime_factory: RuntimeFactory, actions: RecordingActions) -> Runtime:
        """A runtime whose actions always travel as messages, never run in place.

        For the scenarios of an ``execute_action`` message itself (redelivered, lost,
        queued behind a cancel): in place, only a fan-out's other actions and a held
        message published after its worker died travel that way.
        """
        return runtime_factory(actions.registry, RuntimeSettings(run_actions_in_place=False))

    async def test_wait_timeout_runs_on_timeout_branch(
        self, rt: Runtime, clock: ManualClock
    ) -> None:
        run = await run_doc(rt, doc("timeout", [
            wait_event("paid", "input.order", timeout_s=60,
                       on_timeout=[assign(outcome="'gave up'")]),
        ]), {"order": "o-1"})
        await advance(rt, clock, 59)
        assert (await rt.get_run(TENANT, run.run_id)).status == "waiting"
        await advance(rt, clock, 1)
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert await output_of(rt, run.run_id) == {"outcome": "gave up"}
        assert "WaitTimedOut" in await event_types(rt, run.run_id)

    async def test_task_deadline_runs_on_deadline_branch(
        self, rt: Runtime, clock: ManualClock
    ) -> None:
        run_id, _ = await self._open_task(rt, deadline_s=3600,
                                          on_deadline=[assign(escalated="true")])
        await advance(rt, clock, 3600)
        assert (await rt.get_run(TENANT, run_id)).status == "completed"
        assert (await output_of(rt, run_id))["expired"] is True
        assert (await rt.get_state(TENANT, run_id)).vars == {"escalated": True}
        assert await rt.ports.events.list_human_tasks(TENANT) == []

    async def test_task_deadline_without_branch_marks_task_overdue(
        self, rt: Runtime, clock: ManualClock
    ) -> None:
        run_id, _ = await self._open_task(rt, deadline_s=3600)
        await advance(rt, clock, 3600)
        assert (await rt.get_run(TENANT, run_id)).status == "waiting"
        assert [t.overdue for t in await rt.ports.events.list_human_tasks(TENANT)] == [True]

    async def test_overdue_task_can_still_be_decided(
        self, rt: Runtime, clock: ManualClock
    ) -> None:
        run_id, task_id = await self._open_task(rt, deadline_s=3600)
        await advance(rt, clock, 7200)
        await rt.decide_task(TENANT, task_id, "reject")
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run_id)).status == "completed"
        assert (await output_of(rt, run_id))["outcome"] == "reject"

    # -- timers and delivery on the manual clock and the stream ---------------------------

    async def test_sleep_completes_only_after_its_duration(
        self, rt: Runtime, clock: ManualClock
    ) -> None:
        run = await run_doc(rt, SLEEPER)
        await advance(rt, clock, 59)
        assert (await rt.get_run(TENANT, run.run_id)).status == "waiting"
        await advance(rt, clock, 1)
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert await output_of(rt, run.run_id) == "woke"
        assert "TimerFired" in await event_types(rt, run.run_id)

    async def test_event_id_is_never_used_as_correlation_key(self, rt: Runtime) -> None:
        event_id = await rt.submit_event(TENANT, "paid", {"amount": 1})
        # Hold the routing message until a run waits on exactly that event id.
        held = await rt.ports.stream.consume(rt.settings.group, "holder", count=1)
        assert [d.message.body["event_id"] for d in held] == [event_id]
        run = await run_doc(rt, WAIT_PAID, {"order": event_id})
        assert run.status == "waiting"
        await rt.process(held[0])
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "waiting"
        assert "correlation.unresolved" in await audit_kinds(rt)

    # -- retries --------------------------------------------------------------------------

    async def test_flaky_action_is_retried_after_backoff(
        self, rt: Runtime, clock: ManualClock, actions: RecordingActions
    ) -> None:
        run = await run_doc(rt, doc("flaky", [
            action("flaky", {"succeed_on": 3},
                   retry={"max_attempts": 3, "initial_interval_s": 10, "backoff": 2}),
        ]))
        assert (run.status, actions.count()) == ("waiting", 1)
        await advance(rt, clock, 9.9)
        assert actions.count() == 1
        await advance(rt, clock, 0.1)
        assert actions.count() == 2
        await advance(rt, clock, 19.9)
        assert actions.count() == 2
        await advance(rt, clock, 0.1)
        assert actions.count() == 3
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"

    # -- actions run in place by the worker that scheduled them ----------------------------

    async def test_actions_a_worker_schedules_run_in_place(
        self, rt: Runtime, clock: ManualClock, actions: RecordingActions
    ) -> None:
        await register(rt, doc("pay", [action("double", {"n": 2}, id="a"),
                                       action("double", {"n": "steps.a.n"}, id="b"),
                                       ret("steps.b.n")]))
        run = await rt.start_run(TENANT, "pay")
        processed = await drain_recording(rt)
        # One message (the run's start) drove both actions and the finish.
        assert [m.kind for m in processed] == ["advance"]
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert await output_of(rt, run.run_id) == 8
        # Each action's message was held and then released by the append reporting it:
        # nothing is published when the holds would have run out.
        clock.advance(rt.settings.claim_idle + timedelta(seconds=1))
        assert await drain_recording(rt) == []
        assert actions.count() == 2

    async def test_fan_out_runs_one_action_in_place_and_sends_the_others(
        self, rt: Runtime, actions: RecordingActions
    ) -> None:
        await register(rt, doc("fan", [{"type": "parallel", "branches": [
            {"name": name, "steps": [action("double", {"n": n})]}
            for name, n in (("a", 1), ("b", 2), ("c", 3))]}]))
        run = await rt.start_run(TENANT, "fan")
        processed = await drain_recording(rt)
        # The other branches' actions go out as messages, so other workers run them at once.
        assert sorted(m.kind for m in processed) == ["advance", "execute_action",
                                                     "execute_action"]
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert await step_output(rt, run.run_id, "steps[0]") == {
            "a": {"n": 2}, "b": {"n": 4}, "c": {"n": 6}}
        assert actions.count() == 3

    async def test_worker_dying_during_an_action_in_place_loses_nothing(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions, clock: ManualClock
    ) -> None:
        first_call = asyncio.Event()
        calls: list[int] = []

        async def slow_once(inp: Any, ctx: Any) -> dict[str, int]:
            calls.append(ctx.attempt)
            if len(calls) == 1:
                first_call.set()
                await actions.never.wait()  # the worker dies in here
            return {"calls": len(calls)}

        actions.registry.register("slow_once", slow_once)
        doomed = runtime_factory(actions.registry)
        survivor = runtime_factory(actions.registry)
        await register(doomed, doc("slow", [action("slow_once", id="s"), ret("steps.s.calls")]))
        run = await doomed.start_run(TENANT, "slow")
        working = asyncio.create_task(doomed.work_once())
        await asyncio.wait_for(first_call.wait(), 10)
        working.cancel()  # the worker is gone mid-action
        with contextlib.suppress(asyncio.CancelledError):
            await working
        await survivor.run_until_idle()
        # The action's message is held for the dead worker until claim_idle has passed.
        assert ((await survivor.get_run(TENANT, run.run_id)).status, calls) == ("running", [1])
        clock.advance(survivor.settings.claim_idle)
        await survivor.run_until_idle()
        assert (await survivor.get_run(TENANT, run.run_id)).status == "completed"
        assert (await output_of(survivor, run.run_id), calls) == (2, [1, 1])

    @pytest.mark.parametrize("how", ["start_run", "execute_run"])
    async def test_a_start_without_a_version_takes_the_one_another_process_registered(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions, how: str
    ) -> None:
        here = runtime_factory(actions.registry)
        there = runtime_factory(actions.registry)  # another process on the same backend
        await register(here, doc("pay", [ret("1")]))
        first = await getattr(here, how)(TENANT, "pay")  # here knows v1 as the latest
        await register(there, {**doc("pay", [ret("2")]), "version": 2})
        second = await getattr(here, how)(TENANT, "pay")
        third = await getattr(here, how)(TENANT, "pay")
        await here.run_until_idle()
        assert [r.definition_version for r in (first, second, third)] == [1, 2, 2]
        assert [await output_of(here, r.run_id) for r in (first, second, third)] == [1, 2, 2]

    async def test_execute_run_leaves_nothing_for_the_workers(
        self, rt: Runtime, clock: ManualClock, actions: RecordingActions
    ) -> None:
        await register(rt, doc("pay", [action("double", {"n": 2}, id="a"), ret("steps.a.n")]))
        run = await rt.execute_run(TENANT, "pay")
        assert run.status == "completed"
        # Its first message and its action's were held, then released by its own appends:
        # no worker gets either, now or once the holds would have run out.
        assert await drain_recording(rt) == []
        clock.advance(rt.settings.claim_idle + timedelta(seconds=1))
        assert await drain_recording(rt) == []
        assert actions.count() == 1

    async def test_execute_run_sends_a_fan_out_to_the_workers_and_returns(
        self, rt: Runtime, actions: RecordingActions
    ) -> None:
        await register(rt, doc("fan", [{"type": "parallel", "branches": [
            {"name": name, "steps": [action("double", {"n": n})]}
            for name, n in (("a", 1), ("b", 2))]}]))
        run = await rt.execute_run(TENANT, "fan")
        assert (run.status, actions.count()) == ("running", 1)  # branch a ran in place
        assert [m.kind for m in await drain_recording(rt)] == ["execute_action"]
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert await step_output(rt, run.run_id, "steps[0]") == {"a": {"n": 2}, "b": {"n": 4}}

    async def test_execute_run_over_the_tenant_limit_is_left_paused_to_the_workers(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions, clock: ManualClock,
    ) -> None:
        rt = runtime_factory(actions.registry, RuntimeSettings(max_active_runs_per_tenant=1))
        await register(rt, SLEEPER)
        first = await rt.execute_run(TENANT, "sleeper")
        second = await rt.execute_run(TENANT, "sleeper")
        assert (first.status, second.status) == ("waiting", "paused_for_quota")
        await advance(rt, clock, 60)
        assert (await rt.get_run(TENANT, second.run_id)).status == "waiting"
        await advance(rt, clock, 60)
        assert (await rt.get_run(TENANT, second.run_id)).status == "completed"

    async def test_redelivered_action_message_does_not_execute_again(
        self, rt_messages: Runtime, actions: RecordingActions
    ) -> None:
        rt = rt_messages
        await register(rt, doc("once", [action("echo", {"v": 1})]))
        run = await rt.start_run(TENANT, "once")
        processed = await drain_recording(rt)
        [execute] = [m for m in processed if m.kind == "execute_action"]
        history = await rt.history(TENANT, run.run_id)
        await rt.ports.stream.publish(execute)
        await rt.run_until_idle()
        assert actions.count() == 1
        assert await rt.history(TENANT, run.run_id) == history

    async def test_cancelled_run_timers_never_fire(
        self, rt: Runtime, clock: ManualClock
    ) -> None:
        run = await run_doc(rt, SLEEPER)
        await rt.cancel_run(TENANT, run.run_id)
        before = await rt.history(TENANT, run.run_id)
        clock.advance(timedelta(seconds=120))
        assert await rt.tick() == 0
        await rt.run_until_idle()
        assert await rt.history(TENANT, run.run_id) == before
        assert (await rt.get_run(TENANT, run.run_id)).status == "cancelled"

    async def test_snapshots_do_not_change_state(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions
    ) -> None:
        travel = doc("travel", [
            assign(a="1"),
            {"type": "for_each", "items": "[1, 2, 3]", "max_concurrency": 2,
             "do": [action("double", {"n": "item"}), assign(last="item")]},
            human_task(),
            assign(b="steps.approval.data.amount"),
        ])
        states = []
        for tenant, every in ((TENANT, 3), (OTHER_TENANT, 0)):
            rt = runtime_factory(actions.registry, RuntimeSettings(snapshot_every=every))
            await register(rt, travel, tenant=tenant)
            await rt.start_run(tenant, "travel", {"order": "o-1"}, run_id="r-1")
            await rt.run_until_idle()
            waiting = await rt.get_state(tenant, "r-1")
            [task] = await rt.ports.events.list_human_tasks(tenant)
            await rt.decide_task(tenant, task.task_id, "approve", {"amount": 7})
            await rt.run_until_idle()
            done = await rt.get_state(tenant, "r-1")
            assert done == replayed(await rt.history(tenant, "r-1"))
            has_snapshot = await rt.ports.events.load_snapshot(tenant, "r-1") is not None
            assert has_snapshot == (every > 0)
            states.append((replace(waiting, tenant=""), replace(done, tenant="")))
        assert states[0] == states[1]
        # "last" is the item whose iteration finished last: the order workers ran them.
        assert states[0][1].vars.keys() == {"a", "last", "b"}
        assert (states[0][1].vars["a"], states[0][1].vars["b"]) == (1, 7)

    # -- operations: stuck runs, queues ---------------------------------------------------

    async def test_unprocessed_run_is_reported_stuck(
        self, rt: Runtime, clock: ManualClock
    ) -> None:
        await register(rt, doc("quick", [ret("1")]))
        run = await rt.start_run(TENANT, "quick")
        assert await rt.stuck_runs(TENANT) == []
        clock.advance(rt.settings.stuck_after + timedelta(seconds=1))
        assert [s.run.run_id for s in await rt.stuck_runs(TENANT)] == [run.run_id]

    async def test_run_waiting_for_event_is_not_stuck(
        self, rt: Runtime, clock: ManualClock
    ) -> None:
        await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        clock.advance(rt.settings.stuck_after * 10)
        assert await rt.stuck_runs(TENANT) == []

    async def test_worker_of_another_queue_refuses_run(
        self, rt: Runtime, runtime_factory: RuntimeFactory, actions: RecordingActions
    ) -> None:
        await register(rt, doc("pay", [action("double", {"n": 1})]))
        run = await rt.start_run(TENANT, "pay")
        foreign = runtime_factory(actions.registry, RuntimeSettings(queue="other"))
        await foreign.run_until_idle()
        assert "run.foreign_queue" in await audit_kinds(rt)
        assert actions.count() == 0
        assert await event_types(rt, run.run_id) == ["RunStarted"]

    async def test_run_refused_by_foreign_worker_is_reported_stuck(
        self, rt: Runtime, runtime_factory: RuntimeFactory, actions: RecordingActions,
        clock: ManualClock,
    ) -> None:
        await register(rt, doc("pay", [action("double", {"n": 1})]))
        run = await rt.start_run(TENANT, "pay")
        await runtime_factory(actions.registry, RuntimeSettings(queue="other")).run_until_idle()
        clock.advance(rt.settings.stuck_after + timedelta(seconds=1))
        assert [s.run.run_id for s in await rt.stuck_runs(TENANT)] == [run.run_id]

    async def test_message_refused_by_foreign_worker_is_not_lost(
        self, rt: Runtime, runtime_factory: RuntimeFactory, actions: RecordingActions,
        clock: ManualClock,
    ) -> None:
        await register(rt, doc("pay", [action("double", {"n": 1})]))
        run = await rt.start_run(TENANT, "pay")
        await runtime_factory(actions.registry, RuntimeSettings(queue="other")).run_until_idle()
        clock.advance(rt.settings.claim_idle + timedelta(seconds=1))
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert actions.count() == 1

    async def test_resume_reissues_an_action_lost_in_a_crash(
        self, rt_messages: Runtime, actions: RecordingActions, clock: ManualClock,
    ) -> None:
        rt = rt_messages
        await register(rt, doc("pay", [action("double", {"n": 2})]))
        run = await rt.start_run(TENANT, "pay")
        stream, group = rt.ports.stream, rt.settings.group
        for delivery in await stream.consume(group, "doomed"):
            await rt.process(delivery)  # appends ActionScheduled, publishes execute_action
        for delivery in await stream.consume(group, "doomed"):
            await stream.ack(group, delivery.delivery_id)  # the worker died: message lost
        await rt.run_until_idle()
        clock.advance(rt.settings.stuck_after + timedelta(seconds=1))
        assert [s.run.run_id for s in await rt.stuck_runs(TENANT)] == [run.run_id]
        assert await rt.resume_run(TENANT, run.run_id) == 1
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"
        assert actions.count() == 1
        assert "run.resumed" in await audit_kinds(rt)

    async def test_resume_reschedules_a_lost_timer(self, rt: Runtime, clock: ManualClock) -> None:
        run = await run_doc(rt, SLEEPER)
        await rt.ports.scheduler.take_due(clock.now() + timedelta(days=365))  # timer lost
        assert await rt.resume_run(TENANT, run.run_id) == 1
        clock.advance(timedelta(days=1))
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, run.run_id)).status == "completed"

    async def test_resume_of_finished_run_is_refused(self, rt: Runtime) -> None:
        await register(rt, doc("quick", [assign(x="1")]))
        run = await rt.start_run(TENANT, "quick")
        await rt.run_until_idle()
        error = await engine_error(rt.resume_run(TENANT, run.run_id))
        assert error.code == ErrorCode.RUN_FINISHED

    async def test_action_queued_before_cancel_is_not_executed(
        self, rt_messages: Runtime, actions: RecordingActions,
    ) -> None:
        rt = rt_messages
        await register(rt, doc("pay", [action("double", {"n": 2})]))
        run = await rt.start_run(TENANT, "pay")
        await rt.work_once(count=1)  # decides: the action message is now queued
        await rt.cancel_run(TENANT, run.run_id, reason="customer changed their mind")
        await rt.run_until_idle()
        assert actions.count() == 0
        assert "action.skipped" in await audit_kinds(rt)
        assert (await rt.get_run(TENANT, run.run_id)).status == "cancelled"

    async def test_stuck_threshold_of_zero_is_honoured(
        self, rt: Runtime, clock: ManualClock,
    ) -> None:
        run = await run_doc(rt, SLEEPER)
        clock.advance(timedelta(seconds=61))  # the timer is due, but nobody ticks
        assert [s.run.run_id for s in await rt.stuck_runs(TENANT, older_than=timedelta(0))] == [
            run.run_id]
        assert await rt.stuck_runs(TENANT) == []

    # -- moving runs: the run archive -----------------------------------------------------

    async def _move(
        self, rt: Runtime, runtime_factory: RuntimeFactory, actions: RecordingActions,
        run_id: str, **import_options: Any,
    ) -> Runtime:
        """Export ``run_id`` of TENANT through JSON; import it as OTHER_TENANT's elsewhere."""
        archive = json.loads(json.dumps(await rt.export_run(TENANT, run_id)))
        there = runtime_factory(actions.registry, RuntimeSettings(queue="moved"))
        await there.import_run(archive, tenant=OTHER_TENANT, **import_options)
        return there

    async def test_imported_finished_run_has_the_same_state_at_every_version(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions
    ) -> None:
        rt = runtime_factory(actions.registry, RuntimeSettings(snapshot_every=3))
        run = await run_doc(rt, doc("travel", [
            assign(a="1"),
            {"type": "for_each", "items": "[1, 2, 3]", "max_concurrency": 2,
             "do": [action("double", {"n": "item"})]},
            action("flaky", {"succeed_on": 2}, retry={"max_attempts": 2, "initial_interval_s": 0}),
        ]))
        assert run.status == "completed"
        archive = await rt.export_run(TENANT, run.run_id)
        assert archive["snapshots"]
        assert len(archive["action_results"]) == 5  # 3 doubles, 2 flaky attempts
        calls = actions.count()
        there = await self._move(rt, runtime_factory, actions, run.run_id)
        history = await rt.history(TENANT, run.run_id)
        moved = await there.history(OTHER_TENANT, run.run_id)
        assert [(e.type, e.at, e.data) for e in moved[:-1]] == [
            (e.type, e.at, e.data) for e in history]
        assert moved[-1].type == "RunMoved"
        for version in range(1, len(history) + 1):
            assert await there.state_at(OTHER_TENANT, run.run_id, version) == await rt.state_at(
                TENANT, run.run_id, version), version
        imported = await there.get_run(OTHER_TENANT, run.run_id)
        assert (imported.status, imported.tenant, imported.queue) == (
            "completed", OTHER_TENANT, "moved")
        assert await output_of(there, run.run_id, tenant=OTHER_TENANT) == await output_of(
            rt, run.run_id)
        assert actions.count() == calls
        assert "run.imported" in await audit_kinds(there, tenant=OTHER_TENANT)

    async def test_run_waiting_on_a_retry_continues_after_import(
        self, rt: Runtime, runtime_factory: RuntimeFactory, actions: RecordingActions,
        clock: ManualClock,
    ) -> None:
        run = await run_doc(rt, doc("flaky", [
            action("flaky", {"succeed_on": 2}, id="f",
                   retry={"max_attempts": 2, "initial_interval_s": 10}),
            ret("steps.f"),
        ]))
        assert (run.status, actions.count()) == ("waiting", 1)
        there = await self._move(rt, runtime_factory, actions, run.run_id)
        await advance(there, clock, 10)
        assert (await there.get_run(OTHER_TENANT, run.run_id)).status == "completed"
        assert [c.ctx.attempt for c in actions.calls] == [1, 2]
        assert await output_of(there, run.run_id, tenant=OTHER_TENANT) == {"attempt": 2}

    async def test_action_that_ran_before_export_is_not_executed_again(
        self, rt_messages: Runtime, runtime_factory: RuntimeFactory, actions: RecordingActions,
    ) -> None:
        rt = rt_messages
        await register(rt, doc("pay", [action("double", {"n": 21}, id="d"), ret("steps.d.n")]))
        run = await rt.start_run(TENANT, "pay")
        stream, group = rt.ports.stream, rt.settings.group
        for delivery in await stream.consume(group, "doomed"):
            await rt.process(delivery)  # appends ActionScheduled, publishes execute_action
        [execute] = await stream.consume(group, "doomed")
        await run_without_reporting(rt, execute.message)  # ran, recorded, then the worker died
        assert actions.count() == 1
        there = await self._move(rt, runtime_factory, actions, run.run_id)
        await there.run_until_idle()
        assert (await there.get_run(OTHER_TENANT, run.run_id)).status == "completed"
        assert await output_of(there, run.run_id, tenant=OTHER_TENANT) == 42
        assert actions.count() == 1

    async def test_run_waiting_on_an_event_continues_after_import(
        self, rt: Runtime, runtime_factory: RuntimeFactory, actions: RecordingActions,
    ) -> None:
        run = await run_doc(rt, WAIT_PAID, {"order": "o-1"})
        there = await self._move(rt, runtime_factory, actions, run.run_id)
        await there.submit_event(OTHER_TENANT, "paid", {"amount": 5}, correlation_key="o-1")
        await there.run_until_idle()
        imported = await there.get_run(OTHER_TENANT, run.run_id)
        assert imported.status == "completed"
        assert await output_of(there, run.run_id, tenant=OTHER_TENANT) == {"amount": 5}
        assert (await rt.get_run(TENANT, run.run_id)).status == "waiting"

    async def test_import_without_resume_waits_for_resume_run(
        self, rt: Runtime, runtime_factory: RuntimeFactory, actions: RecordingActions,
        clock: ManualClock,
    ) -> None:
        run = await run_doc(rt, SLEEPER)
        there = await self._move(rt, runtime_factory, actions, run.run_id, resume=False)
        await advance(there, clock, 61)
        assert (await there.get_run(OTHER_TENANT, run.run_id)).status == "waiting"
        assert await there.resume_run(OTHER_TENANT, run.run_id) == 1
        await there.run_until_idle()
        assert (await there.get_run(OTHER_TENANT, run.run_id)).status == "completed"

    # -- per-tenant concurrency limits (wfdomain.quota) -----------------------------------

    async def _statuses(self, rt: Runtime, run_ids: list[str]) -> list[str]:
        return [(await rt.get_run(TENANT, run_id)).status for run_id in run_ids]

    async def _active_count(self, rt: Runtime) -> int:
        return len(await rt.list_runs(TENANT, statuses=["running", "waiting"], limit=1000))

    async def test_runs_over_the_tenant_limit_are_paused_and_visible(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions
    ) -> None:
        rt = runtime_factory(actions.registry, RuntimeSettings(max_active_runs_per_tenant=2))
        await register(rt, SLEEPER)
        await register(rt, SLEEPER, tenant=OTHER_TENANT)
        started = [await rt.start_run(TENANT, "sleeper") for _ in range(3)]
        assert [s.status for s in started] == ["running", "running", "paused_for_quota"]
        other = await rt.start_run(OTHER_TENANT, "sleeper")  # another tenant has its own slots
        await rt.run_until_idle()
        ids = [s.run_id for s in started]
        assert await self._statuses(rt, ids) == ["waiting", "waiting", "paused_for_quota"]
        assert (await rt.get_run(OTHER_TENANT, other.run_id)).status == "waiting"
        paused = await rt.list_runs(TENANT, statuses=["paused_for_quota"])
        assert [r.run_id for r in paused] == [ids[2]]
        assert await event_types(rt, ids[2]) == ["RunStarted", "RunPaused"]

    async def test_paused_runs_resume_oldest_first_when_capacity_frees(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions, clock: ManualClock,
    ) -> None:
        rt = runtime_factory(actions.registry, RuntimeSettings(max_active_runs_per_tenant=1))
        await register(rt, SLEEPER)
        ids = ["r-c", "r-b", "r-a"]  # started in this order: FIFO is by start, not by id
        for run_id in ids:
            await rt.start_run(TENANT, "sleeper", run_id=run_id)
            clock.advance(timedelta(seconds=1))
        await rt.run_until_idle()
        assert await self._statuses(rt, ids) == ["waiting", "paused_for_quota", "paused_for_quota"]
        await advance(rt, clock, 60)
        assert await self._statuses(rt, ids) == ["completed", "waiting", "paused_for_quota"]
        await advance(rt, clock, 60)
        assert await self._statuses(rt, ids) == ["completed", "completed", "waiting"]
        await advance(rt, clock, 60)
        assert await self._statuses(rt, ids) == ["completed"] * 3
        assert await event_types(rt, "r-a") == [
            "RunStarted", "RunPaused", "RunResumed", "StepStarted", "TimerStarted",
            "TimerFired", "StepCompleted", "StepStarted", "StepCompleted", "RunCompleted"]
        assert await output_of(rt, "r-a") == "woke"

    async def test_a_paused_run_can_be_cancelled_and_is_never_resumed(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions, clock: ManualClock,
    ) -> None:
        rt = runtime_factory(actions.registry, RuntimeSettings(max_active_runs_per_tenant=1))
        await register(rt, SLEEPER)
        first = await rt.start_run(TENANT, "sleeper")
        paused = await rt.start_run(TENANT, "sleeper")
        last = await rt.start_run(TENANT, "sleeper")
        await rt.run_until_idle()
        cancelled = await rt.cancel_run(TENANT, paused.run_id, reason="not needed")
        assert cancelled.status == "cancelled"
        await advance(rt, clock, 60)
        ids = [first.run_id, paused.run_id, last.run_id]
        assert await self._statuses(rt, ids) == ["completed", "cancelled", "waiting"]
        assert await event_types(rt, paused.run_id) == [
            "RunStarted", "RunPaused", "CancelRequested", "RunCancelled"]

    async def test_the_limit_holds_under_concurrent_starts_from_two_runtimes(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions, clock: ManualClock,
    ) -> None:
        settings = RuntimeSettings(max_active_runs_per_tenant=3)
        one, two = (runtime_factory(actions.registry, settings) for _ in range(2))
        await register(one, SLEEPER)
        runs = await asyncio.gather(*(
            (one if i % 2 else two).start_run(TENANT, "sleeper") for i in range(12)))
        assert sorted(r.status for r in runs).count("running") == 3
        await asyncio.gather(one.run_until_idle(), two.run_until_idle())
        statuses = await self._statuses(one, [r.run_id for r in runs])
        assert (statuses.count("waiting"), statuses.count("paused_for_quota")) == (3, 9)
        for _ in range(4):  # three runs finish per minute, and three more are admitted
            clock.advance(timedelta(seconds=60))
            await asyncio.gather(one.run_until_idle(), two.run_until_idle())
            await asyncio.gather(one.run_until_idle(), two.run_until_idle())
            assert await self._active_count(one) <= 3
        statuses = await self._statuses(one, [r.run_id for r in runs])
        assert statuses == ["completed"] * 12

    async def test_a_run_finishing_while_another_runtime_admits_does_not_over_admit(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions, clock: ManualClock,
    ) -> None:
        settings = RuntimeSettings(max_active_runs_per_tenant=1)
        one, two = (runtime_factory(actions.registry, settings) for _ in range(2))
        await register(one, SLEEPER)
        first = await one.start_run(TENANT, "sleeper")
        await one.run_until_idle()
        queued = await one.start_run(TENANT, "sleeper")
        clock.advance(timedelta(seconds=60))  # first's timer is due
        # One runtime finishes the first run (and admits) while the other starts runs.
        _, late, later = await asyncio.gather(
            one.run_until_idle(), two.start_run(TENANT, "sleeper"),
            two.start_run(TENANT, "sleeper"))
        await asyncio.gather(one.run_until_idle(), two.run_until_idle())
        ids = [first.run_id, queued.run_id, late.run_id, later.run_id]
        statuses = await self._statuses(one, ids)
        assert statuses[:2] == ["completed", "waiting"]  # the oldest paused run went first
        assert sorted(statuses[2:]) == ["paused_for_quota"] * 2
        for _ in range(3):
            clock.advance(timedelta(seconds=60))
            await asyncio.gather(one.run_until_idle(), two.run_until_idle())
            await asyncio.gather(one.run_until_idle(), two.run_until_idle())
            assert await self._active_count(one) <= 1
        assert await self._statuses(one, ids) == ["completed"] * 4

    async def test_a_worker_dying_after_a_run_finished_still_hands_on_its_slot(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions, clock: ManualClock,
    ) -> None:
        rt = runtime_factory(actions.registry, RuntimeSettings(max_active_runs_per_tenant=1))
        await register(rt, doc("quick", [assign(x="1")]))
        first = await rt.start_run(TENANT, "quick")
        paused = await rt.start_run(TENANT, "quick")
        stream, group = rt.ports.stream, rt.settings.group
        advance_first, admit_on_pause = await stream.consume(group, "doomed")
        assert (advance_first.message.kind, admit_on_pause.message.kind) == (
            "advance", "admit_runs")
        assert await rt.process(admit_on_pause) == "acked"  # no capacity yet: admits nothing
        await rt.process(advance_first)  # completes; its append records admit_runs
        assert (await rt.get_run(TENANT, first.run_id)).status == "completed"
        kinds = [d.message.kind for d in await stream.consume(group, "doomed")]
        assert kinds == ["admit_runs"]  # taken by the worker, which then dies unacked
        await rt.run_until_idle()
        assert (await rt.get_run(TENANT, paused.run_id)).status == "paused_for_quota"
        clock.advance(rt.settings.claim_idle + timedelta(seconds=1))
        await rt.run_until_idle()  # another consumer claims the idle message
        assert (await rt.get_run(TENANT, paused.run_id)).status == "completed"

    async def test_child_runs_hold_their_root_runs_slot_and_are_never_paused(
        self, runtime_factory: RuntimeFactory, actions: RecordingActions,
    ) -> None:
        rt = runtime_factory(actions.registry, RuntimeSettings(max_active_runs_per_tenant=1))
        await register(rt, CHILD_ECHO, child_parent("child_echo"))
        parent = await rt.start_run(TENANT, "parent", {"x": 7})
        queued = await rt.start_run(TENANT, "parent", {"x": 8})
        assert queued.status == "paused_for_quota"
        await rt.run_until_idle()
        assert await self._statuses(rt, [parent.run_id, queued.run_id]) == ["completed"] * 2
        assert await output_of(rt, queued.run_id) == {"child_got": 8}
        assert "RunPaused" not in [
            e for r in await rt.list_runs(TENANT) if r.parent_run_id is not None
            for e in await event_types(rt, r.run_id)]
