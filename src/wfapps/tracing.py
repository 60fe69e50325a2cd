"""Telemetry for the runtime: publish times, and OpenTelemetry spans when installed.

``SendTime`` stamps each published message with its publish time (the worker's stream-lag
measure). ``OpenTelemetryHooks`` adds spans and carries the W3C ``traceparent`` in every
message, so a trace continues across processes: ``wf.submit_event`` -> ``wf.process
route_event`` (in some worker) -> ``wf.process execute_action`` (maybe another worker)
-> ``wf.action <name>``. It needs the ``tracing`` extra (``opentelemetry-api``/``-sdk``),
imported only when asked for. The domain only knows ``wfdomain.telemetry.Telemetry``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from wfdomain.errors import ErrorCode, WorkflowEngineError
from wfdomain.telemetry import HEADERS_KEY, SpanAttributes, Telemetry

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import TracerProvider

__all__ = ["SENT_AT", "OpenTelemetryHooks", "SendTime", "message_lag_s", "telemetry_for"]

SENT_AT = "sent_at"
"""Header with the publish time (Unix seconds, as text)."""


def message_lag_s(body: Mapping[str, Any]) -> float | None:
    """Seconds since the message with this body was published (None: not stamped)."""
    headers = body.get(HEADERS_KEY)
    if not isinstance(headers, dict) or not isinstance(headers.get(SENT_AT), str):
        return None
    try:
        return max(0.0, time.time() - float(headers[SENT_AT]))
    except ValueError:
        return None


class SendTime:
    """``Telemetry`` without spans: stamps each message with its publish time."""

    def headers(self) -> dict[str, str]:
        """Return the publish time."""
        return {SENT_AT: repr(time.time())}

    def span(self, name: str, attributes: SpanAttributes, *,
             headers: Mapping[str, str] | None = None) -> AbstractContextManager[None]:
        """Return a context manager that does nothing."""
        return nullcontext()


class OpenTelemetryHooks:
    """``Telemetry`` over OpenTelemetry.

    Args:
        provider: The tracer provider (the global one when None).
        send_time: Also stamp messages with their publish time (see ``SENT_AT``).

    Raises:
        WorkflowEngineError: code ``SETTINGS_INVALID`` when the packages are missing.
    """

    def __init__(self, provider: TracerProvider | None = None, *,
                 send_time: bool = True) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError as e:
            raise WorkflowEngineError(
                "tracing needs the opentelemetry packages: install the 'tracing' extra",
                code=ErrorCode.SETTINGS_INVALID,
            ) from e
        self._tracer = trace.get_tracer("wf", tracer_provider=provider)
        self._propagator = TraceContextTextMapPropagator()
        self._send_time = send_time

    def headers(self) -> dict[str, str]:
        """Return the current trace context (``traceparent``) and the publish time."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        if self._send_time:
            carrier[SENT_AT] = repr(time.time())
        return carrier

    def span(self, name: str, attributes: SpanAttributes, *,
             headers: Mapping[str, str] | None = None) -> AbstractContextManager[None]:
        """Open a span, continuing the trace in ``headers`` when they carry one."""
        parent: Context | None = None
        if headers is not None and "traceparent" in headers:
            parent = self._propagator.extract(dict(headers))
        return self._span(name, attributes, parent)

    @contextmanager
    def _span(self, name: str, attributes: SpanAttributes,
              parent: Context | None) -> Iterator[None]:
        # context=None: a child of the current span (or the root of a new trace).
        with self._tracer.start_as_current_span(name, context=parent,
                                                attributes=dict(attributes)):
            yield


def telemetry_for(mode: str) -> Telemetry:
    """Return the telemetry for ``WF_TRACING``: ``off``, ``on`` or ``console``."""
    if mode == "off":
        return SendTime()
    if mode == "on":
        return OpenTelemetryHooks()
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    provider = SdkTracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    return OpenTelemetryHooks(provider)
