"""``wf check``: would a changed definition break the stored runs of its definition id?

Reads each run's history from the engine and re-decides it under the changed definition
with ``wfdomain.check_replay``; the result lists the runs that would break and where.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wfapps.bootstrap import open_runtime
from wfapps.loading import load_package
from wfapps.settings import Settings
from wfdomain.actions import ActionRegistry
from wfdomain.codec import decode_envelope
from wfdomain.definition import Definition
from wfdomain.replay_check import ReplayReport, check_replay
from wfdomain.runtime import Runtime

__all__ = ["IN_FLIGHT", "RunCheck", "check_definition", "check_runs", "render_line"]

IN_FLIGHT = ("running", "waiting")
_PAGE = 200


@dataclass(frozen=True, slots=True)
class RunCheck:
    """One run's replay check."""

    run_id: str
    status: str
    definition_version: int
    report: ReplayReport


def render_line(check: RunCheck) -> str:
    """``<run> (<status>, v<n>): ok`` or ``... BREAKS at v<version> (<step>): <message>``."""
    head = f"{check.run_id} ({check.status}, definition v{check.definition_version})"
    divergence = check.report.divergence
    if check.report.ok or divergence is None:
        return f"{head}: ok ({check.report.events_checked} events)"
    return (f"{head}: BREAKS at v{divergence.version} ({divergence.step_path or '-'}): "
            f"{divergence.message}")


async def check_runs(runtime: Runtime, tenant: str, definition: Definition, *,
                     include_finished: bool = False) -> list[RunCheck]:
    """Check every run of ``definition.id`` in ``tenant`` (in-flight ones unless told)."""
    statuses = None if include_finished else list(IN_FLIGHT)
    results: list[RunCheck] = []
    offset = 0
    while True:
        page = await runtime.ports.events.list_runs(
            tenant, statuses=statuses, definition_id=definition.id, limit=_PAGE, offset=offset)
        for summary in page:
            if summary.definition_id != definition.id:
                continue
            history = [decode_envelope(e) for e in await runtime.history(tenant, summary.run_id)]
            results.append(RunCheck(summary.run_id, summary.status, summary.definition_version,
                                    check_replay(definition, history)))
        if len(page) < _PAGE:
            return results
        offset += _PAGE


async def check_definition(path: Path, settings: Settings, *,
                           include_finished: bool = False) -> tuple[Definition, list[RunCheck]]:
    """Load the changed definition at ``path`` and check the tenant's runs of it."""
    package = load_package(path)
    async with open_runtime(settings, ActionRegistry()) as runtime:  # executes nothing
        checks = await check_runs(runtime, settings.tenant, package.main,
                                  include_finished=include_finished)
    return package.main, checks
