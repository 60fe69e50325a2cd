"""Telemetry hooks: how the runtime reports spans without knowing any tracing library.

The runtime opens spans around ``start_run``, ``submit_event``, the processing of each
message and each action invocation, and attaches ``Telemetry.headers()`` to every message
it publishes (under the body key ``HEADERS_KEY``), so a worker in another process can
continue the trace. ``wfapps`` supplies an OpenTelemetry implementation; the default,
``NO_TELEMETRY``, does nothing and adds no headers, so messages stay unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

__all__ = ["HEADERS_KEY", "NO_TELEMETRY", "NoTelemetry", "SpanAttributes", "Telemetry"]

HEADERS_KEY = "_headers"
"""Body key of a message's telemetry headers (a mapping of strings), when there are any."""

SpanAttributes = Mapping[str, str | int | float | bool]


class Telemetry(Protocol):
    """Spans and message headers. Implementations must never raise into the runtime."""

    def headers(self) -> dict[str, str]:
        """Return headers to carry in a message published now (trace context, send time).

        An empty mapping means the message carries no headers.
        """
        ...

    def span(
        self,
        name: str,
        attributes: SpanAttributes,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[None]:
        """Return a context manager timing one span.

        Args:
            name: Span name (``wf.submit_event``, ``wf.process``, ``wf.action``...).
            attributes: Span attributes (run id, event id, idempotency key...).
            headers: The headers of the message being processed: the span continues the
                trace they carry. None: a child of the current span, if any.
        """
        ...


class NoTelemetry:
    """The default: no spans, no headers."""

    def headers(self) -> dict[str, str]:
        """Return no headers."""
        return {}

    def span(
        self,
        name: str,
        attributes: SpanAttributes,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[None]:
        """Return a context manager that does nothing."""
        return nullcontext()


NO_TELEMETRY = NoTelemetry()
"""The shared do-nothing ``Telemetry``."""
