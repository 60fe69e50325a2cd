"""The shipped examples run as documented.

Each workflow folder under ``examples/`` is loaded the way ``wf run`` loads it and driven to
the end on the in-memory backend with a ``ManualClock``, so retries, sleeps and deadlines
fire only when a test moves time. The CLI and the embedding example are exercised as a
user would run them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from wfadapters.memory import (
    InMemoryEventStore,
    InMemoryLock,
    InMemoryScheduler,
    InMemoryStream,
    ManualClock,
)
from wfadapters.system import UuidIds
from wfapps.cli import app
from wfapps.loading import WorkflowPackage, load_package
from wfdomain.errors import InputValidationError
from wfdomain.records import EventEnvelope, RunSummary
from wfdomain.runtime import Ports, Runtime
from wfdomain.state import RunState

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WORKFLOW_FOLDERS = sorted(p for p in EXAMPLES.iterdir() if (p / "definition.yaml").exists())
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TENANT = "acme"
CARD_TOKEN = "tok_visa_4242"


@dataclass(frozen=True, slots=True)
class Harness:
    """An example package registered on a memory runtime whose clock moves on request."""

    runtime: Runtime
    clock: ManualClock
    package: WorkflowPackage

    async def start(self, run_input: Any = None) -> str:
        chosen = self.package.sample_input if run_input is None else run_input
        run = await self.runtime.start_run(TENANT, self.package.main.id, chosen)
        return run.run_id

    async def settle(self, run_id: str) -> RunSummary:
        """Process everything that can happen without time passing."""
        await self.runtime.run_until_idle()
        return await self.runtime.get_run(TENANT, run_id)

    async def advance_to_next_timer(self) -> datetime:
        """Move the clock to the earliest scheduled timer and return that time."""
        due = await self.runtime.ports.scheduler.next_due()
        assert due is not None, "nothing is scheduled"
        self.clock.advance(max(due - self.clock.now(), timedelta(0)))
        return due

    async def drive(self, run_id: str, *, max_timers: int = 20) -> RunSummary:
        """Settle, firing each timer in turn, until the run finishes."""
        run = await self.settle(run_id)
        for _ in range(max_timers):
            if run.finished:
                return run
            await self.advance_to_next_timer()
            run = await self.settle(run_id)
        pytest.fail(f"run {run_id} did not finish after {max_timers} timers: {run.status}")

    async def state(self, run_id: str) -> RunState:
        return await self.runtime.get_state(TENANT, run_id)

    async def history(self, run_id: str) -> list[EventEnvelope]:
        return await self.runtime.history(TENANT, run_id)


async def open_example(name: str) -> Harness:
    """Load ``examples/<name>`` like ``wf run`` and register it on a memory runtime.

    The ports are those of ``wfapps.bootstrap.memory_ports``, with a manual clock.
    """
    package = load_package(EXAMPLES / name)
    clock = ManualClock(T0)
    stream = InMemoryStream(clock)
    store = InMemoryEventStore(outbox=stream)
    ports = Ports(events=store, definitions=store, ledger=store, audit=store,
                  stream=stream, lock=InMemoryLock(clock),
                  scheduler=InMemoryScheduler(), clock=clock, ids=UuidIds())
    runtime = Runtime(ports, package.actions)
    for definition in package.definitions:
        await runtime.register_definition(TENANT, definition)
    return Harness(runtime=runtime, clock=clock, package=package)


def events_of(history: list[EventEnvelope], event_type: str, key: str) -> list[dict[str, Any]]:
    return [e.data for e in history if e.type == event_type and e.data.get("key") == key]


# -- order fulfilment ----------------------------------------------------------------------

CHARGE = "steps[2].branches[0].steps[0]"


async def test_order_fulfilment_retries_the_charge_when_time_passes() -> None:
    h = await open_example("order_fulfilment")
    run_id = await h.start()

    run = await h.settle(run_id)
    assert run.status == "waiting"  # only the charge's retry timer is left
    assert run.next_due_at == T0 + timedelta(seconds=0.2)  # retry.initial_interval_s

    assert await h.advance_to_next_timer() == T0 + timedelta(seconds=0.2)
    run = await h.settle(run_id)

    assert run.status == "completed"
    state = await h.state(run_id)
    assert state.output["order_id"] == "ord-1042"
    assert state.output["charged"] == 627.0
    assert state.output["reservations"] == 3
    assert state.output["tracking_number"].startswith("TRK")
    assert state.output["confirmed_at"] == "2026-01-01T00:00:00.200Z"  # $nowIso(): logical


async def test_order_fulfilment_charge_attempts_share_one_idempotency_key() -> None:
    h = await open_example("order_fulfilment")
    run_id = await h.start()
    run = await h.drive(run_id)
    assert run.status == "completed"

    history = await h.history(run_id)
    scheduled = events_of(history, "ActionScheduled", CHARGE)
    assert [s["attempt"] for s in scheduled] == [1, 2]
    assert {s["idempotency_key"] for s in scheduled} == {f"{TENANT}:{run_id}:{CHARGE}"}
    assert scheduled[0]["input"] == scheduled[1]["input"]  # retries keep the first input
    failed = events_of(history, "ActionFailed", CHARGE)
    assert [f["attempt"] for f in failed] == [1]
    assert "GatewayTimeoutError" in failed[0]["error"]["message"]


# -- ticket approval -----------------------------------------------------------------------


async def waiting_for_manager(h: Harness) -> tuple[str, str]:
    run_id = await h.start()
    run = await h.settle(run_id)
    assert run.status == "waiting"
    [task] = run.human_tasks
    assert task.assignee == "maria@example.com"
    assert task.outcomes == ("approve", "reject")
    return run_id, task.task_id


async def test_ticket_approval_completes_after_approval_and_vendor_event() -> None:
    h = await open_example("ticket_approval")
    run_id, task_id = await waiting_for_manager(h)

    await h.runtime.decide_task(TENANT, task_id, "approve", {"comment": "within budget"},
                                decided_by="maria@example.com")
    run = await h.settle(run_id)
    assert run.status == "waiting"
    assert [(w.event_name, w.correlation_key) for w in run.waits] == [
        ("vendor.order_confirmed", "TCK-2031")
    ]

    # The wait's filter wants status confirmed: a pending notice resumes nothing.
    await h.runtime.submit_event(TENANT, "vendor.order_confirmed",
                                 {"status": "pending", "reference": "VND-0"},
                                 correlation_key="TCK-2031")
    assert (await h.settle(run_id)).status == "waiting"

    await h.runtime.submit_event(TENANT, "vendor.order_confirmed",
                                 {"status": "confirmed", "reference": "VND-88"},
                                 correlation_key="TCK-2031")
    run = await h.settle(run_id)

    assert run.status == "completed"
    assert (await h.state(run_id)).output == {
        "ticket_id": "TCK-2031",
        "approved_by": "maria@example.com",
        "vendor_reference": "VND-88",
        "closed": True,
    }


async def test_ticket_approval_rejection_fails_the_run() -> None:
    h = await open_example("ticket_approval")
    run_id, task_id = await waiting_for_manager(h)

    await h.runtime.decide_task(TENANT, task_id, "reject", {"comment": "over budget"},
                                decided_by="maria@example.com")
    run = await h.settle(run_id)

    assert run.status == "failed"
    error = (await h.state(run_id)).error
    assert error is not None
    assert error["code"] == "TICKET_REJECTED"
    assert error["message"] == "rejected: over budget"


async def test_ticket_approval_decision_must_match_the_form() -> None:
    h = await open_example("ticket_approval")
    _, task_id = await waiting_for_manager(h)

    with pytest.raises(InputValidationError) as caught:
        await h.runtime.decide_task(TENANT, task_id, "approve", {})
    assert caught.value.code == "DECISION_INVALID"
    assert caught.value.path == "$.comment"


# -- employee onboarding -------------------------------------------------------------------


async def test_employee_onboarding_provisions_three_accounts() -> None:
    h = await open_example("employee_onboarding")
    run_id = await h.start()

    run = await h.drive(run_id)

    assert run.status == "completed"
    output = (await h.state(run_id)).output
    assert output["employee"] == "emp-314"
    assert [a["system"] for a in output["accounts"]] == ["github", "slack", "jira"]
    assert all(a["role"] == "member" for a in output["accounts"])
    assert output["welcome"].startswith("welcome-3-")
    children = await h.runtime.list_runs(TENANT)
    assert sorted(r.definition_id for r in children if r.parent_run_id == run_id) == [
        "provision_account"
    ] * 3
    assert all(r.status == "completed" for r in children)


# -- the wf command ------------------------------------------------------------------------


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


CLI_ENV = {"WF_ENGINE_URL": "memory://", "WF_TENANT": "default"}


@pytest.mark.parametrize("view", [[], ["--events"]], ids=["steps", "events"])
def test_cli_runs_order_fulfilment_and_masks_the_card_token(
    cli: CliRunner, view: list[str]
) -> None:
    result = cli.invoke(app, ["run", str(EXAMPLES / "order_fulfilment"), *view], env=CLI_ENV)

    assert result.exit_code == 0, result.output
    assert "status: completed" in result.output
    assert "ord-1042" in result.output
    # Table cells fold long values over several lines: compare with the borders removed.
    flat = re.sub(r"[\s│]", "", result.output)
    assert CARD_TOKEN not in flat
    if view:
        assert '"card_token":"***"' in flat  # the charge's input is listed, masked


def test_cli_validates_every_example(cli: CliRunner) -> None:
    result = cli.invoke(app, ["validate", *map(str, WORKFLOW_FOLDERS)])

    assert result.exit_code == 0, result.output
    assert "invalid" not in result.output
    for folder in WORKFLOW_FOLDERS:
        assert f"{folder}: ok" in result.output


def test_cli_validate_reports_a_refused_function_with_its_path(
    cli: CliRunner, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "id: broken\n"
        "version: 1\n"
        "steps:\n"
        "  - id: stamp\n"
        "    type: assign\n"
        "    values: {stamped_at: '$now()'}\n",
        encoding="utf-8",
    )

    result = cli.invoke(app, ["validate", str(broken)])

    assert result.exit_code == 1, result.output
    assert "EXPR_FUNCTION_NOT_ALLOWED" in result.output
    assert "steps[0].values.stamped_at" in result.output


# -- the embedding example -----------------------------------------------------------------


def test_embedding_example_runs_to_completion() -> None:
    env = {**os.environ, **CLI_ENV}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "embedding" / "service.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "status: completed" in result.stdout
