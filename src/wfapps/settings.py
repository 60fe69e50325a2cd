"""Settings: one frozen value, parsed once from the environment, failing fast.

The engine is chosen by one URL-like value (``WF_ENGINE_URL``), so the API, the worker and
the CLI given the same value can never disagree about where a run executes:

- ``sqlite:///wf.db`` (the default) - one durable file, no server: the embedded engine;
- ``postgres://user@host:5432/db?queue=q`` - Postgres alone, many worker processes;
- ``memory://?queue=default`` - in-process, nothing persisted (tests, embedding);
- ``postgres://...?redis=redis://...`` and ``temporal://host:7233/ns?task_queue=q`` -
  recognised, and refused with ``UNSUPPORTED`` until their backends land.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Self
from urllib.parse import parse_qs, urlsplit

from wfdomain.errors import ErrorCode, WorkflowEngineError

__all__ = ["DEFAULT_ENGINE_URL", "KNOWN_SCHEMES", "Settings", "SettingsError"]

DEFAULT_ENGINE_URL = "sqlite:///wf.db"
"""The embedded default: a SQLite file in the working directory."""

KNOWN_SCHEMES = ("memory", "sqlite", "postgres", "postgresql", "temporal")


class SettingsError(WorkflowEngineError):
    """A setting is missing or malformed; the message names the variable."""

    default_code = ErrorCode.SETTINGS_INVALID


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where runs execute and as whom.

    Attributes:
        engine_url: The engine URL (see the module docstring).
        backend: The URL's scheme.
        queue: Task queue from the URL's ``queue`` (or ``task_queue``) parameter.
        tenant: Tenant used by the CLI.
        snapshot_every: Snapshot interval in events (``WF_SNAPSHOT_EVERY``).
        correlation_paths: Payload paths per event name (``WF_CORRELATION_PATHS``, JSON:
            ``{"payment.received": ["order.id"], "*": ["correlation_id"]}``).
        stuck_after_s: Seconds without progress before a run is reported stuck
            (``WF_STUCK_AFTER_S``).
    """

    engine_url: str = DEFAULT_ENGINE_URL
    backend: str = "sqlite"
    queue: str = "default"
    tenant: str = "default"
    snapshot_every: int = 100
    correlation_paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    stuck_after_s: float = 300.0

    @classmethod
    def from_url(cls, url: str, *, tenant: str = "default", snapshot_every: int = 100,
                 source: str = "engine URL") -> Self:
        """Parse an engine URL. ``source`` names where it came from, for errors."""
        parts = urlsplit(url)
        if parts.scheme not in KNOWN_SCHEMES:
            raise SettingsError(
                f"{source}: {url!r} has scheme {parts.scheme!r}; expected one of "
                f"{', '.join(s + '://' for s in KNOWN_SCHEMES)}"
            )
        query = parse_qs(parts.query)
        queue = (query.get("queue") or query.get("task_queue") or ["default"])[0]
        return cls(engine_url=url, backend=parts.scheme.replace("postgresql", "postgres"),
                   queue=queue, tenant=tenant, snapshot_every=snapshot_every)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Read the ``WF_*`` variables; an error names the variable at fault.

        ``WF_ENGINE_URL``, ``WF_TENANT``, ``WF_SNAPSHOT_EVERY``, ``WF_CORRELATION_PATHS``
        and ``WF_STUCK_AFTER_S``.
        """
        raw_every = env.get("WF_SNAPSHOT_EVERY", "100")
        try:
            every = int(raw_every)
        except ValueError:
            raise SettingsError(f"WF_SNAPSHOT_EVERY: {raw_every!r} is not an integer") from None
        if every < 0:
            raise SettingsError(f"WF_SNAPSHOT_EVERY: {every} must be >= 0")
        raw_stuck = env.get("WF_STUCK_AFTER_S", "300")
        try:
            stuck_after = float(raw_stuck)
        except ValueError:
            raise SettingsError(f"WF_STUCK_AFTER_S: {raw_stuck!r} is not a number") from None
        if stuck_after <= 0:
            raise SettingsError(f"WF_STUCK_AFTER_S: {stuck_after} must be > 0")
        settings = cls.from_url(env.get("WF_ENGINE_URL", DEFAULT_ENGINE_URL),
                                tenant=env.get("WF_TENANT", "default"), snapshot_every=every,
                                source="WF_ENGINE_URL")
        paths = _correlation_paths(env.get("WF_CORRELATION_PATHS", "{}"))
        return replace(settings, correlation_paths=paths, stuck_after_s=stuck_after)


def _correlation_paths(raw: str) -> dict[str, tuple[str, ...]]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise SettingsError(f"WF_CORRELATION_PATHS: not JSON: {e}") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(p, str) and p for p in v) for v in data.values()
    ):
        raise SettingsError('WF_CORRELATION_PATHS: expected {"event.name": ["dotted.path", ...]}')
    return {str(name): tuple(paths) for name, paths in data.items()}
