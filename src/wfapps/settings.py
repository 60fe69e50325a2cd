"""Settings: one frozen value, parsed once from the environment, failing fast.

The engine is chosen by one URL-like value (``WF_ENGINE_URL``), so the API, the worker and
the CLI given the same value can never disagree about where a run executes:

- ``memory://?queue=default`` - in-process, nothing persisted (tests, embedding);
- ``sqlite:///wf.db``, ``postgres://...?redis=redis://...``, ``temporal://host:7233/ns?task_queue=q``
  - recognised, and refused with ``UNSUPPORTED`` until their backends land.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self
from urllib.parse import parse_qs, urlsplit

from wfdomain.errors import WorkflowEngineError

__all__ = ["KNOWN_SCHEMES", "Settings", "SettingsError"]

KNOWN_SCHEMES = ("memory", "sqlite", "postgres", "postgresql", "temporal")


class SettingsError(WorkflowEngineError):
    """A setting is missing or malformed; the message names the variable."""

    default_code = "SETTINGS_INVALID"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where runs execute and as whom.

    Attributes:
        engine_url: The engine URL (see the module docstring).
        backend: The URL's scheme.
        queue: Task queue from the URL's ``queue`` (or ``task_queue``) parameter.
        tenant: Tenant used by the CLI.
        snapshot_every: Snapshot interval in events (``WF_SNAPSHOT_EVERY``).
    """

    engine_url: str = "memory://"
    backend: str = "memory"
    queue: str = "default"
    tenant: str = "default"
    snapshot_every: int = 100

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
        """Read ``WF_ENGINE_URL``, ``WF_TENANT`` and ``WF_SNAPSHOT_EVERY``."""
        raw_every = env.get("WF_SNAPSHOT_EVERY", "100")
        try:
            every = int(raw_every)
        except ValueError:
            raise SettingsError(f"WF_SNAPSHOT_EVERY: {raw_every!r} is not an integer") from None
        if every < 0:
            raise SettingsError(f"WF_SNAPSHOT_EVERY: {every} must be >= 0")
        return cls.from_url(env.get("WF_ENGINE_URL", "memory://"),
                            tenant=env.get("WF_TENANT", "default"), snapshot_every=every,
                            source="WF_ENGINE_URL")
