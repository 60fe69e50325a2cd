"""The worker's Prometheus metrics, in a registry of its own (one per service)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["LATENCY_BUCKETS", "WorkerMetrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 300.0)
"""Histogram buckets in seconds: from a cached-state append to a slow action."""


class WorkerMetrics:
    """Counters and gauges of one worker service.

    Attributes:
        processed: ``wf_messages_processed_total{kind,outcome}``: every handled message.
        failed: ``wf_messages_failed_total{kind,outcome}``: outcomes other than ``acked``
            (``rejected``: acked with an audited error; ``retry``/``failed``: left
            pending for a later delivery).
        in_flight: ``wf_messages_in_flight``: messages taken and not yet handled.
        latency: ``wf_processing_seconds{kind}``: time to handle one message.
        lag: ``wf_stream_lag_seconds``: publish to start of handling, newest message.
        pending: ``wf_stream_pending``: delivered and unacknowledged in the group.
        dead_letters: ``wf_dead_letters``: messages the group gave up on (dead-lettered).
        stuck: ``wf_stuck_runs{tenant}``: runs without progress past the threshold.
        fired: ``wf_scheduler_fired_total``: due timers, timeouts and backoffs published.
        errors: ``wf_worker_loop_errors_total{loop}``: failures of the loops themselves.
        actions: ``wf_actions_total{action,outcome,in_place}``: action attempts run
            (``outcome`` ``ok`` or ``failed``; ``in_place`` ``true`` when the worker ran
            the action its own decision scheduled instead of taking it as a message).
        action_latency: ``wf_action_seconds{action}``: time one action attempt took.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.processed = Counter("wf_messages_processed", "Messages handled",
                                 ["kind", "outcome"], registry=r)
        self.failed = Counter("wf_messages_failed", "Messages not handled cleanly",
                              ["kind", "outcome"], registry=r)
        self.in_flight = Gauge("wf_messages_in_flight", "Messages being handled", registry=r)
        self.latency = Histogram("wf_processing_seconds", "Time to handle one message",
                                 ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("wf_stream_lag_seconds",
                         "Publish to start of handling, newest message", registry=r)
        self.pending = Gauge("wf_stream_pending", "Delivered, unacknowledged messages",
                             registry=r)
        self.dead_letters = Gauge("wf_dead_letters", "Dead-lettered messages of the group",
                                  registry=r)
        self.stuck = Gauge("wf_stuck_runs", "Runs without progress past the threshold",
                           ["tenant"], registry=r)
        self.fired = Counter("wf_scheduler_fired", "Due scheduled messages published",
                             registry=r)
        self.errors = Counter("wf_worker_loop_errors", "Failures of the worker's loops",
                              ["loop"], registry=r)
        self.actions = Counter("wf_actions", "Action attempts run",
                               ["action", "outcome", "in_place"], registry=r)
        self.action_latency = Histogram("wf_action_seconds", "Time one action attempt took",
                                        ["action"], buckets=LATENCY_BUCKETS, registry=r)

    def render(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        return generate_latest(self.registry)
