"""A logger that writes the worker services' JSON lines into memory, for tests to read."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from wfapps.json_logs import JsonFormatter

__all__ = ["json_logger", "records"]


def json_logger() -> tuple[logging.Logger, io.StringIO]:
    """A fresh logger (INFO and up, not propagated) and the buffer its JSON lines go to."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"wf.test.{id(buffer)}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, buffer


def records(buffer: io.StringIO, msg: str) -> list[dict[str, Any]]:
    """The JSON lines in ``buffer`` whose ``msg`` is ``msg``, decoded."""
    return [json.loads(line) for line in buffer.getvalue().splitlines()
            if f'"msg":"{msg}"' in line]
