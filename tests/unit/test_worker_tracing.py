"""OpenTelemetry spans from submit_event through processing to each action, continued
through the trace context stored in each message (two runtimes, one SQLite file)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from wfadapters.system import SystemClock
from wfapps.bootstrap import sql_ports
from wfapps.settings import Settings
from wfapps.tracing import SENT_AT, OpenTelemetryHooks, message_lag_s
from wfdomain.actions import ActionContext, ActionRegistry
from wfdomain.definition import parse_definition
from wfdomain.runtime import Ports, Runtime, RuntimeSettings
from wfdomain.telemetry import HEADERS_KEY

TENANT = "acme"
DEFINITION = parse_definition({
    "id": "paid_then_ship", "version": 1,
    "steps": [
        {"type": "wait_event", "id": "w", "event": "paid", "correlation": "input.order"},
        {"id": "ship", "type": "action", "action": "ship", "input": {"n": "1"}},
    ],
    "output": "steps.ship.n",
})


class N(BaseModel):
    n: int


def _actions() -> ActionRegistry:
    registry = ActionRegistry()

    async def ship(inp: N, ctx: ActionContext) -> N:
        return inp

    registry.register("ship", ship)
    return registry


@pytest.fixture
async def ports(tmp_path: Path) -> AsyncIterator[Ports]:
    async with sql_ports(Settings.from_url(f"sqlite:///{tmp_path / 'wf.db'}"),
                         SystemClock()) as ports:
        yield ports


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


@pytest.mark.parametrize("in_place", [False, True], ids=["as-message", "in-place"])
async def test_trace_runs_from_submit_event_through_workers_to_the_action(
    ports: Ports, in_place: bool,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = RuntimeSettings(engine="sqlite", run_actions_in_place=in_place)
    producer = Runtime(ports, _actions(), settings, telemetry=OpenTelemetryHooks(provider))
    worker = Runtime(ports, _actions(), settings, telemetry=OpenTelemetryHooks(provider))
    await producer.register_definition(TENANT, DEFINITION)
    run = await producer.start_run(TENANT, "paid_then_ship", {"order": "o1"})
    await worker.run_until_idle()
    exporter.clear()
    await producer.submit_event(TENANT, "paid", {"ok": True}, correlation_key="o1")
    # A fresh context: nothing links the worker to the producer but the stored messages.
    await asyncio.create_task(worker.run_until_idle(), context=contextvars.Context())
    assert (await producer.get_run(TENANT, run.run_id)).status == "completed"

    spans = exporter.get_finished_spans()
    submit = _by_name(spans, "wf.submit_event")
    route = _by_name(spans, "wf.process route_event")
    # In place, the worker that routed the event runs the action it scheduled itself.
    execute = route if in_place else _by_name(spans, "wf.process execute_action")
    assert in_place == all(s.name != "wf.process execute_action" for s in spans)
    action = _by_name(spans, "wf.action ship")
    assert submit.context is not None
    assert route.parent is not None
    trace_id = submit.context.trace_id
    assert {s.context.trace_id for s in (route, execute, action) if s.context} == {trace_id}
    assert route.parent.span_id == submit.context.span_id
    assert execute.parent is not None
    assert route.context is not None
    if not in_place:
        assert execute.parent.span_id == route.context.span_id
    assert action.parent is not None
    assert execute.context is not None
    assert action.parent.span_id == execute.context.span_id
    assert action.attributes is not None
    assert action.attributes["wf.idempotency_key"]
    assert action.attributes["wf.run_id"] == run.run_id


async def test_messages_carry_no_headers_without_telemetry(ports: Ports) -> None:
    runtime = Runtime(ports, _actions(), RuntimeSettings(engine="sqlite"))
    await runtime.register_definition(TENANT, DEFINITION)
    await runtime.start_run(TENANT, "paid_then_ship", {"order": "o1"})
    deliveries = await ports.stream.consume("probe", "c")
    assert deliveries
    assert all(HEADERS_KEY not in d.message.body for d in deliveries)


async def test_headers_carry_send_time_for_the_lag_measure(ports: Ports) -> None:
    hooks = OpenTelemetryHooks(TracerProvider())
    runtime = Runtime(ports, _actions(), RuntimeSettings(engine="sqlite"), telemetry=hooks)
    await runtime.register_definition(TENANT, DEFINITION)
    await runtime.start_run(TENANT, "paid_then_ship", {"order": "o1"})
    [delivery] = await ports.stream.consume("probe", "c")
    headers = delivery.message.body[HEADERS_KEY]
    assert isinstance(headers, dict)
    assert SENT_AT in headers
    lag = message_lag_s(delivery.message.body)
    assert lag is not None
    assert lag >= 0
