"""JSON form of decide's inputs, for carrying them in stream messages."""

from __future__ import annotations

import dataclasses
from typing import Any

from wfdomain import commands as cmd
from wfdomain.errors import ErrorCode, InputValidationError

__all__ = ["decode_input", "encode_input"]

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (cmd.Advance, cmd.ReportOutcome, cmd.FireTimer, cmd.DeliverEvent,
                cmd.DecideTask, cmd.ChildFinished, cmd.Cancel)
}


def encode_input(inp: cmd.Input) -> dict[str, Any]:
    """Return ``inp`` as a JSON-ready mapping with its ``type``."""
    return {"type": type(inp).__name__, **dataclasses.asdict(inp)}


def decode_input(data: dict[str, Any]) -> cmd.Input:
    """Rebuild an input from ``encode_input`` output.

    Raises:
        InputValidationError: unknown type or fields (code ``EVENT_INVALID``).
    """
    fields = dict(data)
    cls = _TYPES.get(fields.pop("type", ""))
    if cls is None:
        raise InputValidationError(f"unknown input type {data.get('type')!r}",
                                   code=ErrorCode.EVENT_INVALID)
    try:
        inp: cmd.Input = cls(**fields)
    except TypeError as e:
        raise InputValidationError(str(e), code=ErrorCode.EVENT_INVALID) from None
    return inp
