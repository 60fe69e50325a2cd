"""Settings: one frozen value, parsed once from the environment, failing fast.

The engine is chosen by one URL-like value (``WF_ENGINE_URL``), so the API, the worker and
the CLI given the same value can never disagree about where a run executes:

- ``sqlite:///wf.db`` (the default) - one durable file, no server: the embedded engine;
- ``postgres://user@host:5432/db?queue=q`` - Postgres alone, many worker processes;
- ``memory://?queue=default`` - in-process, nothing persisted (tests, embedding);
- ``postgres://user@host/db?redis=redis://host:6379/0&redis_prefix=wf`` - the production
  engine ``postgres+redis``: Postgres the source of truth, Redis the transport;
- ``temporal://host:7233/ns?task_queue=q`` - recognised, refused with ``UNSUPPORTED``
  until its backend lands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Self
from urllib.parse import parse_qs, urlsplit

from wfdomain.errors import ErrorCode, WorkflowEngineError

__all__ = [
    "DEFAULT_ENGINE_URL", "EXPRESSION_MODES", "KNOWN_SCHEMES", "Settings", "SettingsError",
    "WorkerSettings",
]

DEFAULT_ENGINE_URL = "sqlite:///wf.db"
"""The embedded default: a SQLite file in the working directory."""

KNOWN_SCHEMES = ("memory", "sqlite", "postgres", "postgresql", "temporal")

EXPRESSION_MODES = ("in_process", "isolated")
"""Values of ``WF_EXPRESSION_MODE``."""


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
        redis_url: The URL's ``redis`` parameter (``postgres+redis`` engine), else None.
        redis_prefix: The URL's ``redis_prefix`` parameter: namespace of every Redis key.
        expression_mode: ``in_process`` (default: expressions run in the worker's thread
            under cooperative guardrails) or ``isolated`` (in a pool of worker processes
            with a memory limit and a hard deadline; for untrusted authors)
            (``WF_EXPRESSION_MODE``).
        expression_timeout_ms: Time budget of one evaluation (``WF_EXPRESSION_TIMEOUT_MS``).
        expression_memory_mb: Memory limit of each isolated worker
            (``WF_EXPRESSION_MEMORY_MB``).
        expression_workers: Isolated worker processes (``WF_EXPRESSION_WORKERS``).
        max_active_runs_per_tenant: Active (running or waiting) runs one tenant may have
            at once; more are ``paused_for_quota`` until one finishes
            (``WF_TENANT_MAX_ACTIVE_RUNS``, >= 1; unset or empty: unlimited).
        tenant_max_active_runs: Per-tenant overrides (``WF_TENANT_MAX_ACTIVE_RUNS_JSON``,
            ``{"acme": 50, "internal": null}``; null: that tenant is unlimited).
    """

    engine_url: str = DEFAULT_ENGINE_URL
    backend: str = "sqlite"
    queue: str = "default"
    tenant: str = "default"
    snapshot_every: int = 100
    correlation_paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    stuck_after_s: float = 300.0
    redis_url: str | None = None
    redis_prefix: str = "wf"
    expression_mode: str = "in_process"
    expression_timeout_ms: int = 1000
    expression_memory_mb: int = 512
    expression_workers: int = 2
    max_active_runs_per_tenant: int | None = None
    tenant_max_active_runs: Mapping[str, int | None] = field(default_factory=dict)

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
        backend = parts.scheme.replace("postgresql", "postgres")
        redis_values = query.get("redis")
        redis_url = redis_values[0] if redis_values else None
        if redis_url is not None:
            if backend != "postgres" or not redis_url.startswith(("redis://", "rediss://")):
                raise SettingsError(f"{source}: redis=... needs a postgres:// URL and a "
                                    f"redis:// value, got {url!r}")
            # Its own engine name: runs started here are driven only by workers reading
            # the same Redis, never by Postgres-only workers polling another transport.
            backend = "postgres+redis"
        prefix = (query.get("redis_prefix") or ["wf"])[0]
        return cls(engine_url=url, backend=backend, queue=queue, tenant=tenant,
                   snapshot_every=snapshot_every, redis_url=redis_url, redis_prefix=prefix)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Read the ``WF_*`` variables; an error names the variable at fault.

        ``WF_ENGINE_URL``, ``WF_TENANT``, ``WF_SNAPSHOT_EVERY``, ``WF_CORRELATION_PATHS``,
        ``WF_STUCK_AFTER_S``, ``WF_EXPRESSION_MODE`` / ``_TIMEOUT_MS`` / ``_MEMORY_MB`` /
        ``_WORKERS`` and ``WF_TENANT_MAX_ACTIVE_RUNS`` / ``_JSON``.
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
        mode = env.get("WF_EXPRESSION_MODE", "in_process").strip().lower() or "in_process"
        if mode not in EXPRESSION_MODES:
            raise SettingsError(f"WF_EXPRESSION_MODE: {mode!r} is not one of "
                                f"{', '.join(EXPRESSION_MODES)}")
        return replace(
            settings, correlation_paths=paths, stuck_after_s=stuck_after, expression_mode=mode,
            expression_timeout_ms=int(_number(env, "WF_EXPRESSION_TIMEOUT_MS", 1000, 1,
                                              integer=True)),
            expression_memory_mb=int(_number(env, "WF_EXPRESSION_MEMORY_MB", 512, 64,
                                             integer=True)),
            expression_workers=int(_number(env, "WF_EXPRESSION_WORKERS", 2, 1, integer=True)),
            max_active_runs_per_tenant=(
                int(_number(env, "WF_TENANT_MAX_ACTIVE_RUNS", 0, 1, integer=True))
                if env.get("WF_TENANT_MAX_ACTIVE_RUNS", "").strip() else None),
            tenant_max_active_runs=_tenant_limits(
                env.get("WF_TENANT_MAX_ACTIVE_RUNS_JSON", "").strip() or "{}"),
        )


def _tenant_limits(raw: str) -> dict[str, int | None]:
    name = "WF_TENANT_MAX_ACTIVE_RUNS_JSON"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise SettingsError(f"{name}: not JSON: {e}") from None
    if not isinstance(data, dict) or not all(
        v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
        for v in data.values()
    ):
        raise SettingsError(f'{name}: expected {{"tenant": limit >= 1 or null, ...}}, got {raw!r}')
    return {str(tenant): limit for tenant, limit in data.items()}


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


TRACING_MODES = ("off", "on", "console")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """How a worker process (``wf worker``) runs; every field has a ``WF_WORKER_*`` variable.

    Attributes:
        concurrency: Consumers in this process (``WF_WORKER_CONCURRENCY``, >= 1).
        batch: Messages a consumer takes at once (``WF_WORKER_BATCH``, >= 1); all of them
            are in flight until handled, and a stopping worker finishes them.
        metrics_port: Port of the health and metrics endpoint (``WF_WORKER_METRICS_PORT``);
            None (unset or empty): no endpoint; 0: any free port (logged at start).
        metrics_host: Address it binds (``WF_WORKER_METRICS_HOST``, default loopback).
        poll_interval_s: Pause of an idle consumer (``WF_WORKER_POLL_INTERVAL_S``).
        tick_interval_s: Period of the scheduler loop (``WF_WORKER_TICK_INTERVAL_S``).
        claim_idle_s: A pending message idle this long belongs to a dead consumer and is
            taken over (``WF_WORKER_CLAIM_IDLE_S``); must exceed the longest action.
        claim_interval_s: How often a consumer looks for such messages
            (``WF_WORKER_CLAIM_INTERVAL_S``).
        lock_ttl_s: Lease on a run while one message is processed (``WF_WORKER_LOCK_TTL_S``).
        stuck_check_interval_s: Period of the stuck-run detector (``WF_WORKER_STUCK_CHECK_S``).
        tenants: Tenants the stuck-run detector scans (``WF_WORKER_TENANTS``, comma list;
            default ``WF_TENANT``).
        gauge_interval_s: Period of the pending and dead-letter gauges
            (``WF_WORKER_GAUGE_INTERVAL_S``).
        shutdown_grace_s: After SIGTERM, how long in-flight work may take before it is
            abandoned to another worker (``WF_WORKER_SHUTDOWN_GRACE_S``).
        log_level: ``debug``, ``info``, ``warning`` or ``error`` (``WF_WORKER_LOG_LEVEL``).
        tracing: ``off``, ``on`` (spans to the globally configured OpenTelemetry
            provider) or ``console`` (spans printed to stderr) (``WF_TRACING``).
    """

    concurrency: int = 4
    batch: int = 1
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    poll_interval_s: float = 0.05
    tick_interval_s: float = 0.2
    claim_idle_s: float = 60.0
    claim_interval_s: float = 1.0
    lock_ttl_s: float = 30.0
    stuck_check_interval_s: float = 60.0
    tenants: tuple[str, ...] = ("default",)
    gauge_interval_s: float = 5.0
    shutdown_grace_s: float = 30.0
    log_level: str = "info"
    tracing: str = "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Read the ``WF_WORKER_*`` variables (and ``WF_TRACING``, ``WF_TENANT``).

        Raises:
            SettingsError: a malformed or out-of-range value; the message names it.
        """
        port_raw = env.get("WF_WORKER_METRICS_PORT", "").strip()
        port = None if not port_raw else int(_number(env, "WF_WORKER_METRICS_PORT", 0, 0,
                                                     integer=True))
        if port is not None and port > 65535:
            raise SettingsError(f"WF_WORKER_METRICS_PORT: {port} is not a port number")
        level = env.get("WF_WORKER_LOG_LEVEL", "info").lower()
        if level not in ("debug", "info", "warning", "error"):
            raise SettingsError(f"WF_WORKER_LOG_LEVEL: {level!r} is not one of debug, info, "
                                "warning, error")
        tracing = env.get("WF_TRACING", "off").lower()
        if tracing not in TRACING_MODES:
            raise SettingsError(f"WF_TRACING: {tracing!r} is not one of {', '.join(TRACING_MODES)}")
        raw_tenants = env.get("WF_WORKER_TENANTS", env.get("WF_TENANT", "default"))
        tenants = tuple(t.strip() for t in raw_tenants.split(",") if t.strip())
        if not tenants:
            raise SettingsError("WF_WORKER_TENANTS: names no tenant")
        worker = cls(
            concurrency=int(_number(env, "WF_WORKER_CONCURRENCY", 4, 1, integer=True)),
            batch=int(_number(env, "WF_WORKER_BATCH", 1, 1, integer=True)),
            metrics_port=port,
            metrics_host=env.get("WF_WORKER_METRICS_HOST", "127.0.0.1"),
            poll_interval_s=_number(env, "WF_WORKER_POLL_INTERVAL_S", 0.05, 0.001),
            tick_interval_s=_number(env, "WF_WORKER_TICK_INTERVAL_S", 0.2, 0.001),
            claim_idle_s=_number(env, "WF_WORKER_CLAIM_IDLE_S", 60.0, 0.001),
            claim_interval_s=_number(env, "WF_WORKER_CLAIM_INTERVAL_S", 1.0, 0.001),
            lock_ttl_s=_number(env, "WF_WORKER_LOCK_TTL_S", 30.0, 0.001),
            stuck_check_interval_s=_number(env, "WF_WORKER_STUCK_CHECK_S", 60.0, 0.001),
            tenants=tenants,
            gauge_interval_s=_number(env, "WF_WORKER_GAUGE_INTERVAL_S", 5.0, 0.001),
            shutdown_grace_s=_number(env, "WF_WORKER_SHUTDOWN_GRACE_S", 30.0, 0.0),
            log_level=level,
            tracing=tracing,
        )
        return worker


def _number(env: Mapping[str, str], name: str, default: float, minimum: float,
            *, integer: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise SettingsError(f"{name}: {raw!r} is not {kind}") from None
    if value < minimum:
        raise SettingsError(f"{name}: {raw} must be >= {minimum:g}")
    return value
