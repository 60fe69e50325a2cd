"""Build the Temporal worker that executes runs: workflows, activities, sandbox settings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from wfadapters.temporal.activities import Activities
from wfadapters.temporal.workflows import RunWorkflow, TenantWorkflow
from wfdomain.actions import ActionRegistry

__all__ = ["PASSTHROUGH_MODULES", "WORKFLOWS", "build_worker", "sandbox_runner"]

PASSTHROUGH_MODULES = ("wfdomain", "wfadapters", "jsonata", "pydantic", "re2")
"""Modules the sandbox shares instead of re-importing for every run.

The domain is pure (its purity is tested), so passing it through is safe. The workflow
module itself (``wfadapters.temporal.workflows``) is passed through too: it keeps no
module state and takes time, ids and effects only from ``temporalio.workflow``, and
re-importing it (compile + class decoration) was most of a short run's worker CPU
(``bench/temporal.py``). Determinism is still checked by every replay (tests replay the
suite's histories through ``Replayer``)."""

WORKFLOWS: Sequence[type[Any]] = (RunWorkflow, TenantWorkflow)


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox with the domain passed through (for workers and replayers)."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def build_worker(client: Client, actions: ActionRegistry, task_queue: str,
                 **options: Any) -> Worker:
    """Return a worker for ``task_queue`` running the run and tenant workflows.

    Args:
        client: A connected client (its namespace is the worker's).
        actions: The actions this worker can execute (the same registry as local engines).
        task_queue: The one task queue from configuration.
        **options: Further ``temporalio.worker.Worker`` options (concurrency limits...).
            Without an ``identity``, the worker gets the client's (``pid@host``) plus a
            suffix of its own.
    """
    activities = Activities(actions, client)
    # One identity per worker, not per process: the server lists pollers and worker
    # heartbeats by identity, and a producer tells a worker that shut down from one still
    # polling by it (``pollers.py``), also when both lived in one process.
    options.setdefault("identity", f"{client.identity}/{uuid.uuid4().hex[:8]}")
    return Worker(
        client, task_queue=task_queue, workflows=list(WORKFLOWS),
        activities=[activities.execute_action, activities.load_definition],
        workflow_runner=sandbox_runner(), **options,
    )
