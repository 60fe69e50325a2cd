"""The work a run is owed, derived from its state alone.

After a crash between appending a decision and carrying out its commands, nothing in
the history is lost but the commands are. They are all derivable: every action still
awaiting its outcome, every open timer, every requested child. Re-issuing them is safe
because each is idempotent (the ledger keys action attempts, the scheduler keys
timers, child run ids are derived), so ``Runtime.resume_run`` can re-drive a stuck run.
"""

from __future__ import annotations

from wfdomain import commands as cmd
from wfdomain.definition import ActionStep, ChildRunStep, Definition, definition_path
from wfdomain.state import RunState, block_of, position_of

__all__ = ["pending_commands"]


def _step(definition: Definition, key: str) -> object:
    return definition.block(definition_path(block_of(key)))[position_of(key)]


def pending_commands(definition: Definition, state: RunState) -> list[cmd.Command]:
    """Return the commands that keep an unfinished run moving (empty when finished)."""
    if state.finished:
        return []
    commands: list[cmd.Command] = []
    for key, step in state.steps.items():
        spec = _step(definition, key)
        if step.awaiting == "action" and isinstance(spec, ActionStep):
            assert step.idempotency_key is not None
            commands.append(cmd.ExecuteAction(
                key=key, action=spec.action, input=step.action_input,
                idempotency_key=step.idempotency_key, attempt=step.attempt,
                timeout_s=spec.timeout_s,
            ))
    for timer_id, timer in state.timers.items():
        commands.append(cmd.StartTimer(timer_id=timer_id, fire_at=timer.fire_at))
    for child_id, key in state.children.items():
        spec = _step(definition, key)
        if isinstance(spec, ChildRunStep):
            commands.append(cmd.StartChildRun(
                child_run_id=child_id, parent_step_key=key, definition_id=spec.definition,
                definition_version=spec.version, input=state.steps[key].action_input,
            ))
    return commands
