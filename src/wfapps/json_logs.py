"""Structured logs: one JSON object per line, with the run, event and idempotency key.

Callers pass their fields as ``extra={"fields": {...}}``; the formatter merges them into
the line next to the time, level, logger and message, so log pipelines can index them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["JsonFormatter", "configure_logging", "log_fields"]


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line (``ts``, ``level``, ``logger``, ``msg``, fields)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def log_fields(**fields: Any) -> dict[str, Any]:
    """Return ``extra`` for a logging call, dropping fields that are None."""
    return {"fields": {k: v for k, v in fields.items() if v is not None}}


def configure_logging(level: str, stream: IO[str] | None = None) -> logging.Logger:
    """Send the ``wf`` loggers to ``stream`` (stderr) as JSON lines; return ``wf.worker``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("wf")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    return logging.getLogger("wf.worker")
