"""Per-tenant concurrency limits: how many runs of a tenant may be active at once.

A run is *active* while its projected status is ``running`` or ``waiting``. Only top-level
runs count and are limited: a child run is part of its root run's work and holds its slot
(a parent waiting on its own paused child would otherwise deadlock). A run started
while its tenant is at the limit is recorded (``RunStarted`` then ``RunPaused``) with the
status ``paused_for_quota`` and does not execute; when capacity frees, the oldest paused
run of the tenant gets ``RunResumed`` and executes normally.

Why the check lives in the event store: two processes admitting runs of one tenant at
once could each count ``limit - 1`` active runs and both admit. The store evaluates an
``Admission`` inside the same atomic step as the append that makes the run active,
serialised per tenant, so the count it checks is the count it commits against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["ACTIVE_STATUSES", "PAUSED_FOR_QUOTA", "Admission", "QuotaPolicy"]

PAUSED_FOR_QUOTA = "paused_for_quota"
"""The status of a run held back by its tenant's concurrency limit."""

ACTIVE_STATUSES: frozenset[str] = frozenset({"running", "waiting"})
"""The statuses that take one of the tenant's slots."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """A condition an append must meet to make its run active.

    Attributes:
        limit: At most this many runs of the run's tenant may be active (the run itself
            excluded from the count before the append).
        behind_paused: Refuse while the tenant has any paused run. New runs pass it so they
            queue behind paused ones (FIFO); a resumption does not (it is the queue's head).
    """

    limit: int
    behind_paused: bool = False

    def admits(self, active: int, paused: int) -> bool:
        """Whether a tenant with ``active`` active and ``paused`` paused runs admits one more."""
        if self.behind_paused and paused > 0:
            return False
        return active < self.limit


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaPolicy:
    """The configured limits.

    Attributes:
        default: Active runs allowed per tenant (None: unlimited).
        per_tenant: Overrides by tenant; a None value makes that tenant unlimited.
    """

    default: int | None = None
    per_tenant: Mapping[str, int | None] | None = None

    def __post_init__(self) -> None:
        limits: Iterable[int | None] = [self.default, *(self.per_tenant or {}).values()]
        for limit in limits:
            if limit is not None and limit < 1:
                raise ValueError(f"a tenant's active-run limit must be at least 1, got {limit}")

    @property
    def configured(self) -> bool:
        """Whether any tenant has a limit."""
        return self.default is not None or any(
            v is not None for v in (self.per_tenant or {}).values())

    def limit_for(self, tenant: str) -> int | None:
        """The tenant's limit, or None when it is unlimited."""
        return (self.per_tenant or {}).get(tenant, self.default)
