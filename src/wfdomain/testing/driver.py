"""A deterministic driver that turns a definition and a list of choices into a history.

The driver starts a run, sends ``Advance`` and then feeds inputs chosen from what the run
is waiting for (open action attempts, timers, waits, tasks, child runs) plus ``Cancel``.
A *choice* is an integer: it picks one of the open inputs (``choice % len(options)``), or
``Cancel`` when it is at least ``CANCEL_FROM``. Choices are plain data, so one choice list
can drive the same run under two clocks, two run ids, or with every input delivered twice.

Pure: ``decide`` and ``replay`` only, with the logical time held by the driver.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import Definition
from wfdomain.errors import WorkflowEngineError
from wfdomain.starting import run_started
from wfdomain.state import RunState, replay

__all__ = ["CANCEL_FROM", "T0", "Driver", "Fed", "drive", "open_inputs", "shift_time"]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CANCEL_FROM = 960
"""Choices in ``[CANCEL_FROM, 1000)`` cancel the run (4% of uniformly drawn choices)."""

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
        started = run_started(definition, run_input, at=start, tenant=tenant, run_id=run_id,
                              engine="local", queue="default")
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
