"""``wf serve``: the HTTP API and the operator console, with uvicorn."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from wfapps.bootstrap import open_api_keys, open_engine
from wfapps.cli_common import EngineOption, err, run_command, settings_for
from wfapps.loading import load_package
from wfapps.settings import Settings
from wfdomain.actions import ActionRegistry
from wfdomain.definition import Definition

__all__ = ["serve"]


def _merge(folders: list[Path]) -> tuple[ActionRegistry, list[Definition]]:
    registry = ActionRegistry()
    definitions: list[Definition] = []
    for folder in folders:
        package = load_package(folder)
        registry.merge([package.actions])
        definitions.extend(package.definitions)
    return registry, definitions


def _targets(pairs: list[str]) -> dict[str, str]:
    targets: dict[str, str] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url:
            raise typer.BadParameter(f"--move-target {pair!r} is not NAME=URL")
        targets[name] = url
    return targets


async def _serve(settings: Settings, keys_settings: Settings, folders: list[Path], host: str,
                 port: int, worker: bool, max_body: int, targets: dict[str, str]) -> None:
    import uvicorn  # the api extra is needed only here

    from wfapps.api import ApiOptions, create_app

    actions, definitions = _merge(folders)
    async with (open_engine(settings, actions, embedded_worker=worker) as engine,
                open_api_keys(keys_settings) as keys):
        app = create_app(engine, keys, actions=actions, definitions=definitions,
                         options=ApiOptions(max_body_bytes=max_body, move_targets=targets,
                                            stuck_after=timedelta(seconds=settings.stuck_after_s)),
                         embedded_worker=worker)
        config = uvicorn.Config(app, host=host, port=port, log_level="info",
                                lifespan="on", access_log=True)
        err.print(f"serving {settings.engine_url} on http://{host}:{port} "
                  f"(console: http://{host}:{port}/console/, worker: {worker})")
        await uvicorn.Server(config).serve()


def serve(
    workflows: Annotated[list[Path] | None, typer.Option(
        "--workflows", help="Workflow folder whose definitions may be started "
                            "(repeatable); its actions.py must hold their actions.")] = None,
    host: Annotated[str, typer.Option(help="Interface (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    worker: Annotated[bool, typer.Option(help="Also work the engine's queue in this "
                                              "process (the one-process deployment).")] = False,
    max_body: Annotated[int, typer.Option(
        min=1, help="Largest request body in bytes.")] = 1_048_576,
    move_target: Annotated[list[str] | None, typer.Option(
        "--move-target", help="NAME=URL of an engine runs may be moved to from the API "
                              "and the console (repeatable).")] = None,
    keys_engine: Annotated[str | None, typer.Option(
        help="SQL engine URL holding the API keys (default: the engine's own; needed for "
             "temporal://, which keeps none).")] = None,
    engine: EngineOption = None,
) -> None:
    """Serve the HTTP API and the operator console until interrupted."""
    logging.basicConfig(level=logging.INFO)
    settings = settings_for(engine, None)
    keys_settings = settings_for(keys_engine, None) if keys_engine else settings
    run_command(_serve(settings, keys_settings, workflows or [], host, port, worker,
                       max_body, _targets(move_target or [])))
