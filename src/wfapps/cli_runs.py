"""``wf`` commands over stored runs, and the human-task inbox.

list, show, timeline, state, cancel, replay, submit, stuck, tasks and decide. Every read
command takes ``--json``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wfapps.bootstrap import open_engine
from wfapps.cli_common import (
    EXIT_NEGATIVE,
    EngineOption,
    JsonOption,
    TenantOption,
    emit_json,
    out,
    parse_json,
    run_command,
    settings_for,
)
from wfapps.loading import load_package
from wfapps.settings import Settings
from wfapps.stuck import find_stuck, stuck_report, unserved, unserved_json
from wfapps.views import list_runs as list_views
from wfapps.views import (
    list_tasks,
    load_view,
    now_of,
    run_json,
    state_json,
    task_json,
    timeline_json,
)
from wfdomain.actions import ActionRegistry

__all__ = ["register"]

RunArg = Annotated[str, typer.Argument(help="The run id.")]


async def _list(settings: Settings, statuses: list[str] | None, definition: str | None,
                limit: int) -> list[dict[str, Any]]:
    async with open_engine(settings, ActionRegistry()) as engine:
        runs = await list_views(engine, settings.tenant, statuses=statuses,
                                definition_id=definition, limit=limit)
        now = now_of(engine)
        return [run_json(r, now) for r in runs]


def list_runs(
    status: Annotated[list[str] | None, typer.Option(
        "--status", help="Only runs in this status (repeatable).")] = None,
    definition: Annotated[str | None, typer.Option(help="Only runs of this definition.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    engine: EngineOption = None, tenant: TenantOption = None, as_json: JsonOption = False,
) -> None:
    """List runs, newest first."""
    runs = run_command(_list(settings_for(engine, tenant), status, definition, limit))
    if as_json:
        emit_json(runs)
        return
    table = Table()
    for column in ("run", "definition", "status", "version", "created", "last progress"):
        table.add_column(column, overflow="fold")
    for r in runs:
        table.add_row(r["run_id"], f"{r['definition_id']} v{r['definition_version']}",
                      r["status"], str(r["version"]), r["created_at"], r["last_progress_at"])
    out.print(table)


async def _show(settings: Settings, run_id: str) -> dict[str, Any]:
    threshold = timedelta(seconds=settings.stuck_after_s)
    async with open_engine(settings, ActionRegistry()) as engine:
        run = await engine.get_run(settings.tenant, run_id)
        if await unserved(engine, run) is not None:
            # A Temporal run no worker serves cannot be queried: show its summary.
            definition = await engine.definition(settings.tenant, run.definition_id,
                                                 run.definition_version)
            return unserved_json(run, definition, now_of(engine),
                                 await stuck_report(engine, run, threshold=threshold))
        view = await load_view(engine, settings.tenant, run_id)
        state = await engine.get_state(settings.tenant, run_id)
        stuck = await stuck_report(engine, view.run, threshold=threshold)
        data = run_json(view.run, now_of(engine), view.secrets)
        masked = state_json(state, view.secrets)
        return {**data, "input": masked["input"], "output": masked["output"],
                "moved_to": view.moved_to if view.run.status == "moved" else None,
                "stuck": None if stuck is None else stuck.to_json()}


def show(run_id: RunArg, engine: EngineOption = None, tenant: TenantOption = None,
         as_json: JsonOption = False) -> None:
    """Show a run: status, where it executes, open waits and tasks, input and output."""
    data = run_command(_show(settings_for(engine, tenant), run_id))
    if as_json:
        emit_json(data)
        return
    out.print(f"run {data['run_id']} · {data['definition_id']} v{data['definition_version']} · "
              f"{data['status']} · version {data['version']} · {data['engine']}/{data['queue']}",
              markup=False)
    if data["moved_to"]:
        out.print(f"MOVED to {data['moved_to']}: this engine refuses it (RUN_MOVED)",
                  markup=False)
    if data["stuck"]:
        out.print(f"STUCK ({data['stuck']['kind']}): {data['stuck']['reason']}", markup=False)
    if data.get("history_available") is False:
        out.print("history, input and output unavailable: Temporal answers queries about a "
                  "run only through a worker, and none serves its task queue", markup=False)
    for wait in data["waits"]:
        out.print(f"waiting for event {wait['event_name']!r} key {wait['correlation_key']!r}",
                  markup=False)
    for task in data["human_tasks"]:
        overdue = " OVERDUE" if task["overdue"] else ""
        out.print(f"task {task['task_id']} {task['title']!r} for {task['assignee'] or 'anyone'}"
                  f" due {task['deadline']}{overdue}", markup=False)
    if data["error"]:
        out.print(f"error: {data['error']}", markup=False)
    out.print("input:")
    out.print_json(data=data["input"])
    out.print("output:")
    out.print_json(data=data["output"])


async def _timeline(settings: Settings, run_id: str) -> dict[str, Any]:
    async with open_engine(settings, ActionRegistry()) as engine:
        view = await load_view(engine, settings.tenant, run_id)
        return timeline_json(view.history, view.definition)


def timeline(run_id: RunArg, events: Annotated[bool, typer.Option(
                 "--events", help="One row per history event instead of per step.")] = False,
             engine: EngineOption = None, tenant: TenantOption = None,
             as_json: JsonOption = False) -> None:
    """Show a run's step timeline (or every event), secrets masked."""
    data = run_command(_timeline(settings_for(engine, tenant), run_id))
    if as_json:
        emit_json(data)
        return
    table = Table(title=f"run {run_id}")
    if events:
        for column in ("v", "t+s", "event", "step", "data"):
            table.add_column(column, overflow="fold")
        for e in data["events"]:
            table.add_row(str(e["version"]), f"{e['offset_s']:.3f}", e["type"], e["key"],
                          e["data"])
    else:
        for column in ("step", "type", "t+s", "took", "tries", "status", "detail"):
            table.add_column(column, overflow="fold")
        for s in data["steps"]:
            took = "" if s["duration_s"] is None else f"{s['duration_s']:.3f}s"
            table.add_row(s["key"], s["step_type"], f"{s['started_s']:.3f}", took,
                          str(s["attempts"] or ""), s["status"], s["detail"])
    out.print(table)


async def _state(settings: Settings, run_id: str, version: int | None) -> dict[str, Any]:
    async with open_engine(settings, ActionRegistry()) as engine:
        view = await load_view(engine, settings.tenant, run_id)
        at = view.run.version if version is None else min(version, view.run.version)
        state = await engine.state_at(settings.tenant, run_id, at)
        return state_json(state, view.secrets)


def state(run_id: RunArg, version: Annotated[int | None, typer.Option(
              min=1, help="The state after this event (default: the newest).")] = None,
          engine: EngineOption = None, tenant: TenantOption = None) -> None:
    """Print a run's state as JSON, now or as it was after event --version."""
    emit_json(run_command(_state(settings_for(engine, tenant), run_id, version)))


async def _cancel(settings: Settings, run_id: str, reason: str | None) -> dict[str, Any]:
    async with open_engine(settings, ActionRegistry()) as engine:
        run = await engine.cancel_run(settings.tenant, run_id, reason=reason,
                                       requested_by="wf cancel")
        return run_json(run, now_of(engine))


def cancel(run_id: RunArg, reason: Annotated[str | None, typer.Option(help="Why.")] = None,
           engine: EngineOption = None, tenant: TenantOption = None,
           as_json: JsonOption = False) -> None:
    """Cancel a run; report the status the engine recorded (exit 1 unless cancelled)."""
    run = run_command(_cancel(settings_for(engine, tenant), run_id, reason))
    if as_json:
        emit_json(run)
    else:
        out.print(f"run {run_id} is {run['status']}", markup=False)
    if run["status"] != "cancelled":
        raise typer.Exit(EXIT_NEGATIVE)


async def _replay(settings: Settings, run_id: str, actions: ActionRegistry,
                  run_input: Any, edited: bool) -> dict[str, Any]:
    async with open_engine(settings, actions) as engine:
        run = await engine.replay_run(settings.tenant, run_id, run_input=run_input,
                                       use_original_input=not edited)
        return run_json(run, now_of(engine))


def replay(
    run_id: RunArg,
    actions: Annotated[Path, typer.Option(help="Workflow folder whose actions.py the "
                                               "definition calls.")],
    run_input: Annotated[str | None, typer.Option(
        "--input", help="Start from this JSON input (or @file) instead of the original.")] = None,
    engine: EngineOption = None, tenant: TenantOption = None, as_json: JsonOption = False,
) -> None:
    """Start a new run of the same definition version from the original (unredacted) input."""
    document = parse_json(run_input, "--input")

    async def go() -> dict[str, Any]:
        registry = load_package(actions).actions
        return await _replay(settings_for(engine, tenant), run_id, registry, document,
                             run_input is not None)

    run = run_command(go())
    if as_json:
        emit_json(run)
    else:
        out.print(f"started run {run['run_id']} replaying {run_id}", markup=False)


async def _submit(settings: Settings, name: str, payload: Any, key: str | None,
                  run_id: str | None) -> str:
    async with open_engine(settings, ActionRegistry()) as engine:
        return await engine.submit_event(settings.tenant, name, payload, correlation_key=key,
                                          run_id=run_id)


def submit(
    name: Annotated[str, typer.Argument(help="Event name, e.g. payment.received.")],
    payload: Annotated[str | None, typer.Option(help="JSON payload, or @file.")] = None,
    key: Annotated[str | None, typer.Option(help="Explicit correlation key.")] = None,
    run: Annotated[str | None, typer.Option(help="Deliver only to this run.")] = None,
    engine: EngineOption = None, tenant: TenantOption = None, as_json: JsonOption = False,
) -> None:
    """Submit an external event; print its id at once (workers route it)."""
    document = parse_json(payload, "--payload")
    event_id = run_command(_submit(settings_for(engine, tenant), name, document, key, run))
    if as_json:
        emit_json({"event_id": event_id})
    else:
        out.print(event_id, markup=False)


async def _tasks(settings: Settings, assignee: str | None) -> list[dict[str, Any]]:
    async with open_engine(settings, ActionRegistry()) as engine:
        now = now_of(engine)
        tasks = await list_tasks(engine, settings.tenant, assignee)
        return [task_json(t, now) for t in tasks]


def tasks(assignee: Annotated[str | None, typer.Option(help="Only this person's.")] = None,
          engine: EngineOption = None, tenant: TenantOption = None,
          as_json: JsonOption = False) -> None:
    """List open human tasks (the inbox), oldest first; overdue ones are marked."""
    found = run_command(_tasks(settings_for(engine, tenant), assignee))
    if as_json:
        emit_json(found)
        return
    table = Table()
    for column in ("task", "run", "title", "assignee", "outcomes", "deadline", ""):
        table.add_column(column, overflow="fold")
    for t in found:
        table.add_row(t["task_id"], t["run_id"], t["title"], t["assignee"] or "anyone",
                      "/".join(t["outcomes"]), t["deadline"] or "",
                      "OVERDUE" if t["overdue"] else "")
    out.print(table)


async def _decide(settings: Settings, task_id: str, outcome: str, data: Any,
                  by: str | None) -> str:
    async with open_engine(settings, ActionRegistry()) as engine:
        return await engine.decide_task(settings.tenant, task_id, outcome, data, decided_by=by)


def decide(
    task_id: Annotated[str, typer.Argument(help="The task id (see `wf tasks`).")],
    outcome: Annotated[str, typer.Argument(help="One of the task's outcomes.")],
    data: Annotated[str | None, typer.Option(help="Form data as JSON, or @file.")] = None,
    by: Annotated[str | None, typer.Option(help="Who decides.")] = None,
    engine: EngineOption = None, tenant: TenantOption = None, as_json: JsonOption = False,
) -> None:
    """Decide a human task; the decision is checked against its form, then queued."""
    document = parse_json(data, "--data")
    message_id = run_command(_decide(settings_for(engine, tenant), task_id, outcome,
                                     document, by))
    if as_json:
        emit_json({"task_id": task_id, "message_id": message_id})
    else:
        out.print(f"decision on {task_id} queued ({message_id})", markup=False)


async def _stuck(settings: Settings) -> list[dict[str, Any]]:
    async with open_engine(settings, ActionRegistry()) as engine:
        found = await find_stuck(engine, settings.tenant,
                                 threshold=timedelta(seconds=settings.stuck_after_s))
        return [r.to_json() for r in found]


def stuck(engine: EngineOption = None, tenant: TenantOption = None,
          as_json: JsonOption = False) -> None:
    """List stuck runs with the reason (exit 1 when there are any)."""
    found = run_command(_stuck(settings_for(engine, tenant)))
    if as_json:
        emit_json(found)
    else:
        for r in found:
            out.print(f"{r['run_id']} {r['kind']}: {r['reason']}", markup=False)
        if not found:
            out.print("no stuck runs")
    if found:
        raise typer.Exit(EXIT_NEGATIVE)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``wf`` app."""
    app.command("list")(list_runs)
    for command in (show, timeline, state, cancel, replay, submit, tasks, decide, stuck):
        app.command()(command)
