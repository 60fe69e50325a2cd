"""Deterministic identifiers derived from a run and a step instance, never from a clock.

A step instance key already holds the step path and the iteration of every enclosing
``for_each`` (``steps[3]@2.do[0]``), so tenant + run id + instance key is unique and the
same on every replay and every redelivery.
"""

from __future__ import annotations

__all__ = [
    "child_run_id",
    "idempotency_key",
    "result_key",
    "run_lock_key",
    "task_id",
    "timer_id",
    "timer_schedule_key",
]


def idempotency_key(tenant: str, run_id: str, step_key: str) -> str:
    """The key an action receives; the same for every attempt of one step instance."""
    return f"{tenant}:{run_id}:{step_key}"


def result_key(idempotency_key_: str, attempt: int) -> str:
    """The ledger key of one attempt: a retry is a new attempt, a redelivery is not."""
    return f"{idempotency_key_}#{attempt}"


def timer_id(step_key: str, purpose: str, attempt: int | None = None) -> str:
    """The id of a step's timer (``sleep``, ``timeout``, ``deadline``, ``retry``)."""
    return f"{step_key}#{purpose}" if attempt is None else f"{step_key}#{purpose}{attempt}"


def timer_schedule_key(tenant: str, run_id: str, timer: str) -> str:
    """The scheduler key of a run's timer, unique across tenants and runs."""
    return f"{tenant}:{run_id}:{timer}"


def task_id(run_id: str, step_key: str) -> str:
    """The id of the human task opened by a step instance."""
    return f"{run_id}:{step_key}"


def child_run_id(run_id: str, step_key: str) -> str:
    """The id of the child run started by a step instance."""
    return f"{run_id}:{step_key}"


def run_lock_key(tenant: str, run_id: str) -> str:
    """The lock key of a run's lease, taken while a worker processes one of its messages."""
    return f"run:{tenant}:{run_id}"
