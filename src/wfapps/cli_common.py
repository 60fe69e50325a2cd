"""What every ``wf`` command shares: options, settings, JSON output, errors as one line.

Exit codes (see docs/cli.md): 0 success; 1 a negative result (a run failed or was
cancelled, validation or a check found problems, cancel did not cancel); 2 a usage error;
3 an engine error, printed as ``error [CODE]: message``; 4 the run is still waiting.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from wfapps.settings import Settings
from wfdomain.errors import WorkflowEngineError

__all__ = [
    "EXIT_ENGINE_ERROR", "EXIT_NEGATIVE", "EXIT_OK", "EXIT_USAGE", "EXIT_WAITING",
    "EngineOption", "JsonOption", "TenantOption", "emit_json", "err", "fail", "out",
    "parse_json", "run_command", "settings_for",
]

EXIT_OK, EXIT_NEGATIVE, EXIT_USAGE, EXIT_ENGINE_ERROR, EXIT_WAITING = 0, 1, 2, 3, 4

out = Console(highlight=False, width=160)
err = Console(stderr=True, highlight=False)

EngineOption = Annotated[str | None, typer.Option(
    "--engine", help="Engine URL (default: WF_ENGINE_URL or sqlite:///wf.db).")]
TenantOption = Annotated[str | None, typer.Option(
    "--tenant", help="Tenant (default: WF_TENANT or 'default').")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

T = TypeVar("T")


def settings_for(engine: str | None, tenant: str | None) -> Settings:
    """Settings from the environment, with the command line's engine and tenant on top."""
    env = dict(os.environ)
    if engine:
        env["WF_ENGINE_URL"] = engine
    if tenant:
        env["WF_TENANT"] = tenant
    try:
        return Settings.from_env(env)
    except WorkflowEngineError as e:
        raise fail(e) from None


def fail(e: WorkflowEngineError) -> typer.Exit:
    """Print an engine error as one line with its code; return the exit to raise."""
    where = f" at {e.path}" if e.path else ""
    err.print(f"error [{e.code}]{where}: {e.message}", markup=False, soft_wrap=True)
    return typer.Exit(EXIT_ENGINE_ERROR)


def run_command(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an engine error exits 3 with its one line."""
    try:
        return asyncio.run(coroutine)
    except WorkflowEngineError as e:
        raise fail(e) from None


def emit_json(data: Any) -> None:
    """Write one JSON document to stdout (no colours, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def parse_json(raw: str | None, option: str) -> Any:
    """Parse an option holding JSON, or ``@file`` holding JSON; None stays None."""
    if raw is None:
        return None
    try:
        text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
        return json.loads(text)
    except (OSError, json.JSONDecodeError) as e:
        raise typer.BadParameter(f"{option} is not JSON: {e}") from None
