"""Hypothesis strategies for definitions, and a deterministic driver that produces histories.

The driver starts a run, sends ``Advance`` and then feeds inputs chosen from what the run
is waiting for (open action attempts, timers, waits, tasks, child runs) plus ``Cancel``.
A *choice* is an integer: it picks one of the open inputs (``choice % len(options)``), or
``Cancel`` when it is at least ``CANCEL_FROM``. Choices are plain data, so one choice list
can drive the same run under two clocks, two run ids, or with every input delivered twice.

The unit and golden-history tests use ``Driver`` directly with scripted inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import Definition, parse_definition
from wfdomain.errors import WorkflowEngineError
from wfdomain.state import RunState, replay

__all__ = [
    "CANCEL_FROM",
    "T0",
    "Driver",
    "Fed",
    "Scenario",
    "definition_documents",
    "definitions",
    "drive",
    "open_inputs",
    "run_inputs",
    "scenarios",
    "shift_time",
]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CANCEL_FROM = 960
"""Choices in ``[CANCEL_FROM, 1000)`` cancel the run (4% of uniformly drawn choices)."""

# ------------------------------------------------------------------------------- the driver


@dataclass(frozen=True, slots=True)
class Fed:
    """One decided input: the state it was decided on, the input, the time, the decision."""

    before: RunState
    inp: cmd.Input
    now: datetime
    decision: cmd.Decision


@dataclass(slots=True)
class Driver:
    """Feeds inputs to ``decide`` and folds the decisions, like the runtime without I/O."""

    definition: Definition
    state: RunState
    history: list[ev.WorkflowEvent]
    now: datetime
    step: timedelta
    fed: list[Fed] = field(default_factory=list)
    commands: list[cmd.Command] = field(default_factory=list)
    redeliveries: list[tuple[cmd.Input, cmd.Decision | WorkflowEngineError]] = field(
        default_factory=list
    )

    @classmethod
    def start(
        cls,
        definition: Definition,
        run_input: Any,
        *,
        tenant: str = "t1",
        run_id: str = "r1",
        start: datetime = T0,
        step: timedelta = timedelta(minutes=1),
    ) -> Driver:
        """Record ``RunStarted`` at ``start``; each later input is ``step`` later."""
        started = ev.RunStarted(
            at=start, run_id=run_id, tenant=tenant, definition_id=definition.id,
            definition_version=definition.version, definition_hash=definition.content_hash,
            input=run_input, engine="local", queue="default",
        )
        return cls(definition=definition, state=replay([started]), history=[started],
                   now=start, step=step)

    def feed(self, inp: cmd.Input, *, now: datetime | None = None) -> cmd.Decision:
        """Decide ``inp`` at ``now`` (the driver's clock when None) and fold the result."""
        at = self.now if now is None else now
        decision = decide(self.definition, self.state, inp, DecisionContext(now=at))
        self.fed.append(Fed(before=self.state, inp=inp, now=at, decision=decision))
        self.state = replay(decision.events, self.state)
        self.history.extend(decision.events)
        self.commands.extend(decision.commands)
        return decision

    def tick(self, inp: cmd.Input) -> cmd.Decision:
        """Advance the clock (to a timer's due time at least) and feed ``inp``."""
        self.now += self.step
        if isinstance(inp, cmd.FireTimer):
            self.now = max(self.now, self.state.timers[inp.timer_id].fire_at)
        return self.feed(inp)

    def redeliver(self, inp: cmd.Input) -> None:
        """Decide ``inp`` again one second later and record what that decided."""
        try:
            decision = self.feed(inp, now=self.now + timedelta(seconds=1))
        except WorkflowEngineError as e:
            self.redeliveries.append((inp, e))
        else:
            self.redeliveries.append((inp, decision))

    def action_commands(self) -> list[cmd.ExecuteAction]:
        """Every ``ExecuteAction`` decided so far, in order."""
        return [c for c in self.commands if isinstance(c, cmd.ExecuteAction)]


_ERRORS: tuple[dict[str, Any], ...] = (
    {"code": "BOOM", "message": "transient", "retryable": True},
    {"code": "DECLINED", "message": "card declined", "retryable": True},
    {"code": "FATAL", "message": "permanent", "retryable": False},
)


def open_inputs(state: RunState, serial: int) -> list[cmd.Input]:
    """Every input the run is waiting for, in a deterministic order.

    Outputs, payloads and ids depend only on the state and ``serial``, never on a clock.
    """
    options: list[cmd.Input] = []
    for key, step in sorted(state.steps.items()):
        if step.awaiting == "action":
            options.append(cmd.ReportOutcome(key=key, attempt=step.attempt, ok=True,
                                             output={"key": key, "attempt": step.attempt}))
            options.extend(cmd.ReportOutcome(key=key, attempt=step.attempt, ok=False,
                                             error=dict(error)) for error in _ERRORS)
    options.extend(cmd.FireTimer(timer_id=t) for t in sorted(state.timers))
    for key, (name, correlation) in sorted(state.waits.items()):
        for ok in (True, False):
            options.append(cmd.DeliverEvent(
                key=key, event_id=f"evt-{serial}", event_name=name,
                payload={"order": correlation, "ok": ok},
            ))
    for task_id, task in sorted(state.tasks.items()):
        data = None if task.form is None else {"note": "looks fine"}
        options.extend(cmd.DecideTask(task_id=task_id, outcome=outcome, data=data,
                                      decided_by="alice") for outcome in task.outcomes)
    for child in sorted(state.children):
        options.append(cmd.ChildFinished(child_run_id=child, status="completed",
                                         output={"child": child}))
        options.append(cmd.ChildFinished(child_run_id=child, status="failed",
                                         error={"code": "CHILD", "message": "child failed"}))
    return options


def drive(
    definition: Definition,
    run_input: Any,
    choices: Sequence[int],
    *,
    tenant: str = "t1",
    run_id: str = "r1",
    start: datetime = T0,
    step: timedelta = timedelta(minutes=1),
    redeliver: bool = False,
    settle: bool = True,
    max_inputs: int = 300,
) -> Driver:
    """Start a run and feed the inputs that ``choices`` pick.

    After the choices, ``settle`` keeps feeding the first open input until the run
    finishes (at most ``max_inputs`` inputs in all). With ``redeliver`` every input is
    decided a second time right after the first (see ``Driver.redeliver``).
    """
    driver = Driver.start(definition, run_input, tenant=tenant, run_id=run_id, start=start,
                          step=step)
    sent = 0

    def send(inp: cmd.Input, *, first: bool = False) -> None:
        nonlocal sent
        sent += 1
        if first:
            driver.feed(inp)
        else:
            driver.tick(inp)
        if redeliver:
            driver.redeliver(inp)

    send(cmd.Advance(), first=True)
    script: Iterator[int] = iter(choices)
    for _ in range(max_inputs):
        if driver.state.finished:
            break
        choice = next(script, None)
        if choice is None and not settle:
            break
        if choice is not None and choice >= CANCEL_FROM:
            send(cmd.Cancel(reason="changed my mind", requested_by="bob"))
            continue
        options = open_inputs(driver.state, serial=sent)
        if not options:
            break
        send(options[0 if choice is None else choice % len(options)])
    return driver


def shift_time(value: Any, delta: timedelta) -> Any:
    """Return an event or command with every datetime field moved by ``delta``."""
    changes = {
        f.name: getattr(value, f.name) + delta
        for f in dataclasses.fields(value)
        if isinstance(getattr(value, f.name), datetime)
    }
    return dataclasses.replace(value, **changes)


# --------------------------------------------------------------------------- definitions

_CONDITIONS = ("input.amount > 10", "$count(input.items) > 1", "state.flag", "true", "false",
               "item = 2", "item.qty > 1")
_ITEMS = ("input.items", "[1, 2]", "[]", "input.amount",
          "[{'sku': 'a', 'qty': 2}, {'sku': 'b', 'qty': 1}]")
_ASSIGNS = (("total", "input.amount * 2"), ("flag", "input.amount > 5"), ("last", "item"),
            ("count", "$count(input.items)"), ("label", "'order-' & input.order"))
_NOW = ("stamp", "$nowIso()")
_ACTION_INPUTS: tuple[Any, ...] = (None, {"amount": "input.amount"},
                                   {"item": "item", "index": "index", "fixed": 1},
                                   ["input.order", 2])
_BLOCK_KEYS = ("then", "else", "default", "do", "on_error", "on_timeout", "on_deadline")

Block = st.SearchStrategy[list[dict[str, Any]]]


def _marked(strategy: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Mark some steps to receive an id (``_finish_document`` numbers them)."""
    return st.tuples(strategy, st.booleans()).map(
        lambda pair: {**pair[0], "_id": True} if pair[1] else pair[0]
    )


def _retry() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"max_attempts": st.integers(1, 3), "initial_interval_s": st.sampled_from([0, 1, 30])},
        optional={"non_retryable_codes": st.just(["DECLINED"])},
    )


def _action(on_error: Block | None = None) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {
        "type": st.just("action"),
        "action": st.sampled_from(["charge", "ship", "notify"]),
        "input": st.sampled_from(_ACTION_INPUTS),
        "retry": _retry(),
    }
    if on_error is not None:
        required["on_error"] = on_error
    return st.fixed_dictionaries(
        required,
        optional={"timeout_s": st.just(30), "save_as": st.sampled_from(["saved", "result"])},
    )


def _wait(on_timeout: Block | None = None) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {
        "type": st.just("wait_event"),
        "event": st.sampled_from(["paid", "shipped"]),
        "correlation": st.just("input.order"),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "filter": st.just("event.ok = true"),
        "timeout_s": st.sampled_from([60, 3600]),
    }
    if on_timeout is not None:
        required["on_timeout"] = on_timeout
        required["timeout_s"] = optional.pop("timeout_s")
    return st.fixed_dictionaries(required, optional=optional)


def _task(on_deadline: Block | None = None) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {
        "type": st.just("human_task"),
        "task": st.just("Approve the order"),
        "outcomes": st.sampled_from([["approve", "reject"], ["ok"]]),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "assignee": st.just("'alice'"),
        "form": st.just({"type": "object", "properties": {"note": {"type": "string"}}}),
        "deadline_s": st.just(3600),
    }
    if on_deadline is not None:
        required["on_deadline"] = on_deadline
        required["deadline_s"] = optional.pop("deadline_s")
    return st.fixed_dictionaries(required, optional=optional)


def _leaf(with_now_iso: bool) -> st.SearchStrategy[dict[str, Any]]:
    assigns = (*_ASSIGNS, _NOW) if with_now_iso else _ASSIGNS
    assign = st.lists(st.sampled_from(assigns), min_size=1, max_size=2,
                      unique_by=lambda pair: pair[0]).map(
        lambda pairs: {"type": "assign", "values": dict(pairs)}
    )
    sleep = st.fixed_dictionaries({"type": st.just("sleep"),
                                   "seconds": st.sampled_from([0.5, 60, 3600])})
    ret = st.fixed_dictionaries(
        {"type": st.just("return")},
        optional={"output": st.sampled_from(["state", "steps", "{'amount': input.amount}"])},
    )
    fail = st.fixed_dictionaries({"type": st.just("fail"),
                                  "message": st.just("'rejected ' & input.order")},
                                 optional={"code": st.just("ORDER_REJECTED")})
    child = st.just({"type": "child_run", "definition": "child",
                     "input": {"order": "input.order"}})
    # return and fail end the run: drawn a quarter as often as the other kinds
    common = (assign, _action(), _wait(), _task(), sleep, child)
    return _marked(st.one_of(*common, *common, *common, *common, ret, fail))


def _compound(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    block: Block = st.lists(children, max_size=3)
    if_ = st.fixed_dictionaries(
        {"type": st.just("if"), "condition": st.sampled_from(_CONDITIONS), "then": block},
        optional={"else": block},
    )
    switch = st.fixed_dictionaries({
        "type": st.just("switch"),
        "cases": st.lists(st.fixed_dictionaries({"when": st.sampled_from(_CONDITIONS),
                                                 "steps": block}), min_size=1, max_size=2),
        "default": block,
    })
    for_each = st.fixed_dictionaries(
        {"type": st.just("for_each"), "items": st.sampled_from(_ITEMS), "do": block},
        optional={"max_concurrency": st.integers(1, 2)},
    )
    parallel = st.lists(block, min_size=1, max_size=3).map(
        lambda blocks: {"type": "parallel",
                        "branches": [{"name": f"b{i}", "steps": b} for i, b in enumerate(blocks)]}
    )
    return _marked(st.one_of(if_, for_each, parallel, switch, _action(on_error=block),
                             _wait(on_timeout=block), _task(on_deadline=block)))


def _finish_document(steps: list[dict[str, Any]], output: str | None) -> dict[str, Any]:
    """Copy the steps, giving every marked one a unique id (``s1``, ``s2``... in order)."""
    counter = 0

    def number(block: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal counter
        result = []
        for marked in block:
            step = {k: v for k, v in marked.items() if k != "_id"}
            if marked.get("_id"):
                counter += 1
                step["id"] = f"s{counter}"
            for key in _BLOCK_KEYS:
                if key in step:
                    step[key] = number(step[key])
            for container in ("cases", "branches"):
                if container in step:
                    step[container] = [{**item, "steps": number(item["steps"])}
                                       for item in step[container]]
            result.append(step)
        return result

    document: dict[str, Any] = {"id": "generated", "version": 1, "steps": number(steps)}
    if output is not None:
        document["output"] = output
    return document


def definition_documents(
    *, with_now_iso: bool = True, max_leaves: int = 8
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid definition documents with nested steps of every kind.

    Args:
        with_now_iso: Whether ``assign`` steps may evaluate ``$nowIso()``.
        max_leaves: Bound on the number of leaf steps per document (roughly).
    """
    step = st.recursive(_leaf(with_now_iso), _compound, max_leaves=max_leaves)
    return st.builds(
        _finish_document,
        st.lists(step, min_size=1, max_size=5),
        st.sampled_from([None, "state", "{'vars': state, 'steps': steps}"]),
    )


def definitions(*, with_now_iso: bool = True, max_leaves: int = 8) -> st.SearchStrategy[Definition]:
    """Parsed definitions drawn from ``definition_documents``."""
    return definition_documents(with_now_iso=with_now_iso, max_leaves=max_leaves).map(
        parse_definition
    )


def run_inputs() -> st.SearchStrategy[dict[str, Any]]:
    """Run inputs the generated expressions read (``amount``, ``items``, ``order``)."""
    return st.fixed_dictionaries({
        "amount": st.integers(0, 20),
        "items": st.lists(st.integers(1, 3), max_size=3),
        "order": st.sampled_from(["o-1", "o-2"]),
    })


@dataclass(frozen=True, slots=True)
class Scenario:
    """A definition, a run input and the choices that drive one run of it."""

    definition: Definition
    run_input: dict[str, Any]
    choices: tuple[int, ...]
    step_s: int

    def run(self, **options: Any) -> Driver:
        """Drive the scenario (``options`` go to ``drive``)."""
        options.setdefault("step", timedelta(seconds=self.step_s))
        return drive(self.definition, self.run_input, self.choices, **options)


def scenarios(
    *, with_now_iso: bool = True, max_leaves: int = 8, max_choices: int = 30
) -> st.SearchStrategy[Scenario]:
    """Scenarios: a generated definition, input, choice list and clock step."""
    return st.builds(
        Scenario,
        definitions(with_now_iso=with_now_iso, max_leaves=max_leaves),
        run_inputs(),
        st.lists(st.integers(0, 999), max_size=max_choices).map(tuple),
        st.integers(1, 7200),
    )

