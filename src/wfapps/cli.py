"""The ``wf`` command. Thin: parse, open the engine, call the runtime, render.

Exit codes: 0 success, 1 the run failed or was cancelled (or validation found errors),
2 a usage error (bad option or argument), 3 an engine error (printed with its stable
code), 4 the run is still waiting (for an event, a person, or a timer past ``--timeout``).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from wfadapters.sql.database import Database
from wfadapters.sql.migrate import check_schema, head_revision, upgrade
from wfapps.bootstrap import open_engine
from wfapps.check import check_definition, progress_due, render_line
from wfapps.cli_common import JsonOption, emit_json, settings_for
from wfapps.cli_keys import keys_app
from wfapps.cli_move import move
from wfapps.cli_runs import register as register_run_commands
from wfapps.cli_serve import serve
from wfapps.loading import load_package
from wfapps.settings import Settings
from wfapps.timeline import event_rows, step_rows
from wfapps.views import check_json, public_url
from wfdomain.actions import ActionRegistry
from wfdomain.errors import UnsupportedOperationError, WorkflowEngineError
from wfdomain.redaction import mask, secret_values
from wfdomain.runtime import Runtime

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run and inspect event-sourced workflows.")
out = Console(highlight=False, width=160)
err = Console(stderr=True, highlight=False)


def _fail(e: WorkflowEngineError) -> typer.Exit:
    where = f" at {e.path}" if e.path else ""
    err.print(f"[bold red]error[/] [{e.code}]{where}: {e.message}", markup=True)
    return typer.Exit(3)


def _parse_input(raw: str | None, default: Any) -> Any:
    if raw is None:
        return default
    text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"--input is not JSON: {e}") from None


def _settings(engine: str | None, tenant: str | None) -> Settings:
    return settings_for(engine, tenant)  # a bad setting exits 3 with its one line


async def _run(path: Path, run_input: str | None, settings: Settings, wait_s: float,
               as_json: bool, events: bool) -> int:
    package = load_package(path)
    # On temporal:// a worker in this process executes the run (as the local runtime does).
    async with open_engine(settings, package.actions, embedded_worker=True) as engine:
        for definition in package.definitions:
            await engine.register_definition(settings.tenant, definition)
        document = _parse_input(run_input, package.sample_input)
        run_id = None
        if isinstance(engine, Runtime):
            run_id = await _unfinished_run(engine, settings, package.main.id, document)
        if run_id is not None and isinstance(engine, Runtime):
            # A durable engine still holds this run, cut off mid-way (a crash, kill -9):
            # finish it. Finished actions are in the ledger and are not executed again.
            err.print(f"resuming unfinished run {run_id} of {package.main.id}")
            await engine.resume_run(settings.tenant, run_id)
        else:
            # Carried through in this process until it waits or ends (a timer, a fan-out
            # sent to the stream, an event): then driven here as a worker would.
            run_id = (await engine.execute_run(settings.tenant, package.main.id,
                                               document)).run_id
        run = await engine.run_until_finished(settings.tenant, run_id, timeout_s=wait_s)
        history = await engine.history(settings.tenant, run.run_id)
        state = await engine.get_state(settings.tenant, run.run_id)
    secrets = (secret_values(history[0].data["input"], "input", package.main.secret_fields)
               | secret_values(state.vars, "state", package.main.secret_fields))
    result = mask(state.output, secrets)
    if as_json:
        out.print_json(data={"run_id": run.run_id, "status": run.status, "output": result,
                             "error": state.error, "events": len(history)})
    else:
        title = (f"run {run.run_id} · {package.main.id} v{package.main.version} · "
                 f"{settings.engine_url} · {len(history)} events")
        table = Table(title=title)
        if events:
            for column in ("v", "t+s", "event", "step", "data"):
                table.add_column(column, overflow="fold")
            for r in event_rows(history, package.main):
                table.add_row(str(r.version), f"{r.offset_s:.3f}", r.type, r.key, r.data)
        else:
            for column in ("step", "type", "id", "t+s", "took", "tries", "status", "detail"):
                table.add_column(column, overflow="fold")
            for s in step_rows(history, package.main):
                took = "" if s.duration_s is None else f"{s.duration_s:.3f}s"
                table.add_row(s.key, s.step_type, s.step_id or "", f"{s.started_s:.3f}", took,
                              str(s.attempts or ""), s.status, s.detail)
        out.print(table)
        out.print(f"status: [bold]{run.status}[/]")
        for task in run.human_tasks:
            due = f", due {task.deadline.isoformat()}" if task.deadline else ""
            out.print(f"waiting for a person: task {task.task_id} {task.title!r} "
                      f"(assignee {task.assignee or 'anyone'}{due}, outcomes "
                      f"{'/'.join(task.outcomes)})")
        for wait in run.waits:
            out.print(f"waiting for event {wait.event_name!r} with correlation key "
                      f"{wait.correlation_key!r}")
        if state.error:
            out.print(f"error: {json.dumps(state.error)}")
        out.print("result:")
        out.print_json(data=result)
    if run.status == "completed":
        return 0
    return 4 if run.status in ("waiting", "running") else 1


async def _unfinished_run(runtime: Runtime, settings: Settings, definition_id: str,
                          document: Any) -> str | None:
    """The newest unfinished run of this definition with this very input, if any."""
    if settings.backend == "memory":
        return None  # nothing survives the process
    for candidate in await runtime.list_runs(settings.tenant, statuses=["running", "waiting"],
                                             limit=50):
        if candidate.definition_id != definition_id or candidate.parent_run_id is not None:
            continue
        first = (await runtime.ports.events.read(settings.tenant, candidate.run_id, upto=1))
        if first and first[0].data.get("input") == document:
            return candidate.run_id
    return None


@app.command()
def run(
    path: Annotated[Path, typer.Argument(help="Workflow folder (definition.yaml, actions.py, "
                                               "input.json) or a definition file.")],
    run_input: Annotated[str | None, typer.Option("--input", help="JSON input, or @file.")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine URL (default: WF_ENGINE_URL or "
                                                     "sqlite:///wf.db).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: WF_TENANT).")] = None,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds.")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    events: Annotated[bool, typer.Option("--events", help="List every history event "
                                                          "instead of one row per step.")] = False,
) -> None:
    """Run a workflow to completion in this process, then print its timeline and result."""
    try:
        code = asyncio.run(_run(path, run_input, _settings(engine, tenant), timeout, as_json,
                                events))
    except WorkflowEngineError as e:
        raise _fail(e) from None
    raise typer.Exit(code)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Definition files or workflow folders.")],
    as_json: JsonOption = False,
) -> None:
    """Validate definitions (shape, expressions, actions); print each error's code and path."""
    failed = False
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            package = load_package(path)
            if (path / "actions.py").exists():
                for definition in package.definitions:
                    package.actions.check_definition(definition)
        except WorkflowEngineError as e:
            failed = True
            results.append({"path": str(path), "ok": False, "error": e.to_dict()})
            where = f" at {e.path}" if e.path else ""
            if not as_json:
                out.print(f"{path}: [red]invalid[/] [{e.code}]{where}: {e.message}")
            continue
        for d in package.definitions:
            results.append({"path": str(path), "ok": True, "id": d.id, "version": d.version,
                            "content_hash": d.content_hash})
            if not as_json:
                out.print(f"{path}: [green]ok[/] {d.id} v{d.version} "
                          f"sha256:{d.content_hash[:12]}")
    if as_json:
        emit_json(results)
    raise typer.Exit(1 if failed else 0)


async def _export(settings: Settings, run_id: str) -> dict[str, Any]:
    async with open_engine(settings, ActionRegistry()) as engine:
        return await engine.export_run(settings.tenant, run_id)


@app.command("export")
def export_run(
    run_id: Annotated[str, typer.Argument(help="The run to export.")],
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write here (default: stdout).")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine URL (default: WF_ENGINE_URL).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: WF_TENANT).")] = None,
) -> None:
    """Write a run's portable archive (definition, history, snapshots, action results)."""
    try:
        with err.status(f"exporting run {run_id}..."):
            archive = asyncio.run(_export(_settings(engine, tenant), run_id))
    except WorkflowEngineError as e:
        raise _fail(e) from None
    text = json.dumps(archive, indent=2)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err.print(f"wrote {output} ({len(archive['history'])} events)")


async def _import(settings: Settings, archive: dict[str, Any], actions: ActionRegistry | None,
                  resume: bool, wait_s: float) -> int:
    async with open_engine(settings, actions or ActionRegistry(),
                           embedded_worker=actions is not None) as engine:
        run = await engine.import_run(archive, tenant=settings.tenant, resume=resume)
        out.print(f"imported run {run.run_id} ({run.status}) into "
                  f"{public_url(settings.engine_url)}")
        if resume and not run.finished and actions is not None:
            run = await engine.run_until_finished(settings.tenant, run.run_id, timeout_s=wait_s)
            out.print(f"run {run.run_id} is {run.status}")
    if run.finished:
        return 0 if run.status == "completed" else 1
    return 4


@app.command("import")
def import_run(
    path: Annotated[Path, typer.Argument(help="An archive written by `wf export`.")],
    actions: Annotated[Path | None, typer.Option(
        help="Workflow folder whose actions.py can execute the run: then the run is "
             "driven here until it finishes or waits.")] = None,
    resume: Annotated[bool, typer.Option(help="Re-issue the work an unfinished run is "
                                              "owed (default).")] = True,
    engine: Annotated[str | None, typer.Option(help="Engine URL (default: WF_ENGINE_URL).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: WF_TENANT).")] = None,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds.")] = 60.0,
) -> None:
    """Store an archived run on this engine; an unfinished run continues here."""
    try:
        archive = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        err.print(f"[bold red]error[/] cannot read {path}: {e}", markup=True)
        raise typer.Exit(3) from None
    try:
        registry = load_package(actions).actions if actions else None
        with err.status(f"importing run from {path}..."):
            code = asyncio.run(_import(_settings(engine, tenant), archive, registry, resume,
                                       timeout))
    except WorkflowEngineError as e:
        raise _fail(e) from None
    raise typer.Exit(code)


db_app = typer.Typer(no_args_is_help=True, help="Create and migrate a SQL engine's schema.")
app.add_typer(db_app, name="db")


async def _db(engine_url: str, apply: bool) -> str:
    settings = Settings.from_url(engine_url, source="--engine/WF_ENGINE_URL")
    if settings.backend not in ("sqlite", "postgres", "postgres+redis"):
        raise UnsupportedOperationError(
            f"{settings.backend!r} has no schema to migrate (only sqlite:// and postgres://)")
    db = Database.open(settings.engine_url)
    try:
        if apply:
            return await upgrade(db)
        await check_schema(db)
        return head_revision()
    finally:
        await db.dispose()


@db_app.command("upgrade")
def db_upgrade(
    engine: Annotated[str | None, typer.Option(help="Engine URL (default: WF_ENGINE_URL).")] = None,
) -> None:
    """Apply every missing migration (safe to repeat); print the schema revision."""
    url = engine or _settings(None, None).engine_url
    try:
        revision = asyncio.run(_db(url, apply=True))
    except WorkflowEngineError as e:
        raise _fail(e) from None
    out.print(f"{url}: schema at revision {revision}")


@db_app.command("status")
def db_status(
    engine: Annotated[str | None, typer.Option(help="Engine URL (default: WF_ENGINE_URL).")] = None,
) -> None:
    """Check that the schema is current; exit 3 with the reason when it is not."""
    url = engine or _settings(None, None).engine_url
    try:
        revision = asyncio.run(_db(url, apply=False))
    except WorkflowEngineError as e:
        raise _fail(e) from None
    out.print(f"{url}: schema is current (revision {revision})")


@app.command("check")
def check(
    path: Annotated[Path, typer.Argument(help="The changed workflow folder or definition "
                                               "file (its main definition is checked).")],
    engine: Annotated[str | None, typer.Option(help="Engine URL (default: WF_ENGINE_URL).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: WF_TENANT).")] = None,
    include_finished: Annotated[bool, typer.Option(
        "--all", help="Check finished runs too, not only running and waiting ones.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Before a deploy: list the stored runs a changed definition would break, and where.

    Works on every engine; on temporal:// a `wf temporal-worker` must serve the task queue
    (histories are workflow queries; this command runs no worker, so it executes nothing).
    Exit 0 when none breaks, 1 when some would, 3 on an engine error.
    """
    settings = _settings(engine, tenant)

    def progress(checked: int, total: int) -> None:
        if progress_due(checked, total):
            err.print(f"checked {checked}/{total} runs", markup=False)

    try:
        definition, checks = asyncio.run(
            check_definition(path, settings, include_finished=include_finished,
                             progress=progress))
    except WorkflowEngineError as e:
        raise _fail(e) from None
    broken = sum(1 for result in checks if not result.report.ok)
    if as_json:
        emit_json({"definition_id": definition.id, "version": definition.version,
                   "runs": [check_json(result) for result in checks], "broken": broken})
        raise typer.Exit(1 if broken else 0)
    for result in checks:
        out.print(render_line(result), markup=False, soft_wrap=True)
    which = "runs" if include_finished else "in-flight runs"
    out.print(f"{definition.id} v{definition.version} sha256:{definition.content_hash[:12]}: "
              f"checked {len(checks)} {which} in tenant {settings.tenant!r}, "
              f"{broken} would break", markup=False)
    raise typer.Exit(1 if broken else 0)


@app.command("worker")
def worker(
    paths: Annotated[list[Path], typer.Argument(
        help="Workflow folders whose actions.py this worker executes (definitions are "
             "registered).")],
    engine: Annotated[str | None, typer.Option(help="Engine URL (default: WF_ENGINE_URL).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: WF_TENANT).")] = None,
    concurrency: Annotated[int | None, typer.Option(
        help="Consumers in this process (default: WF_WORKER_CONCURRENCY or 4).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Loopback port of /healthz and /metrics (default: WF_WORKER_METRICS_PORT).")] = None,
) -> None:
    """Serve the engine's queue until SIGTERM (then finish in-flight work and exit 0)."""
    from wfapps.settings import WorkerSettings  # the worker extra is needed only here
    from wfapps.worker import load_packages, serve

    env = dict(os.environ)
    if concurrency is not None:
        env["WF_WORKER_CONCURRENCY"] = str(concurrency)
    if metrics_port is not None:
        env["WF_WORKER_METRICS_PORT"] = str(metrics_port)
    try:
        actions, definitions = load_packages(paths)
        code = asyncio.run(serve(_settings(engine, tenant), WorkerSettings.from_env(env),
                                 actions, definitions))
    except WorkflowEngineError as e:
        raise _fail(e) from None
    raise typer.Exit(code)


@app.command("temporal-worker")
def temporal_worker(
    paths: Annotated[list[Path], typer.Argument(
        help="Workflow folders whose actions.py this worker executes (definitions are "
             "registered).")],
    engine: Annotated[str | None, typer.Option(
        help="temporal://host:port/namespace?task_queue=q (default: WF_ENGINE_URL).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: WF_TENANT).")] = None,
) -> None:
    """Poll the Temporal task queue of the engine URL until SIGTERM (docs/temporal.md).

    Every WF_WORKER_STUCK_CHECK_S it logs the stuck runs of WF_WORKER_TENANTS (default:
    the tenant) as `run.stuck` JSON lines on stderr.
    """
    from wfapps.settings import WorkerSettings
    from wfapps.temporal_worker import load_actions, serve_temporal_worker  # temporal extra

    env = dict(os.environ)
    if tenant is not None:
        env.setdefault("WF_WORKER_TENANTS", tenant)
    try:
        actions, definitions = load_actions(paths)
        code = asyncio.run(serve_temporal_worker(_settings(engine, tenant), actions,
                                                 definitions,
                                                 worker=WorkerSettings.from_env(env)))
    except WorkflowEngineError as e:
        raise _fail(e) from None
    raise typer.Exit(code)


register_run_commands(app)
app.command("serve")(serve)
app.command("move")(move)
app.add_typer(keys_app, name="keys")


def main() -> None:
    """Entry point of the ``wf`` script."""
    app()
