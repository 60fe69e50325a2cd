"""The worker process of the isolated evaluator: one request at a time, through the contract.

A worker sets its address-space limit, says it is ready, then answers requests until its
pipe closes. Each request is evaluated by :data:`wfdomain.expressions.IN_PROCESS`, the very
code the in-process mode runs, so the two modes give the same results and errors.

Wire format (JSON both ways, never pickle: a request carries workflow data and a reply
comes from a process that ran an untrusted expression):

* request: ``[source, path, document, now_iso, limits]``, where ``limits`` is ``None`` or
  the values of :class:`~wfdomain.expressions.ExpressionLimits` in field order;
* reply: ``[0, result]`` or ``[1, code, message, path, details]``.
"""

from __future__ import annotations

import functools
import gc
import json
import resource
import signal
from dataclasses import fields
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Final

from wfdomain.errors import ExpressionError
from wfdomain.expressions import IN_PROCESS, ExpressionCode, ExpressionLimits

__all__ = ["LIMIT_FIELDS", "READY", "decode_reply", "encode_request", "serve"]

READY: Final = b"ready"
LIMIT_FIELDS: Final = tuple(field.name for field in fields(ExpressionLimits))


def encode_request(
    source: str, path: str | None, document: Any, now: datetime, limits: ExpressionLimits | None
) -> bytes:
    """Encode one evaluation request; ``document`` must already be plain JSON."""
    values = None if limits is None else [getattr(limits, name) for name in LIMIT_FIELDS]
    return json.dumps([source, path, document, now.isoformat(), values]).encode("ascii")


def decode_reply(raw: bytes) -> Any:
    """Decode a reply: return the result or raise the ExpressionError it carries."""
    reply = json.loads(raw)
    if reply[0] == 0:
        return reply[1]
    _, code, message, path, details = reply
    raise ExpressionError(message, code=code, path=path, details=details)


@functools.lru_cache(maxsize=64)
def _limits(values: tuple[int, ...]) -> ExpressionLimits:
    return ExpressionLimits(**dict(zip(LIMIT_FIELDS, values, strict=True)))


def _error(code: str, message: str, path: str | None, details: Any = None) -> bytes:
    reply = [1, code, message, path, dict(details or {})]
    return json.dumps(reply, default=str).encode("ascii")


def _answer(raw: bytes) -> bytes:
    path: str | None = None
    try:
        source, path, document, now_text, values = json.loads(raw)
        limits = None if values is None else _limits(tuple(values))
        now = datetime.fromisoformat(now_text)
        result = IN_PROCESS.evaluate(source, document, now=now, path=path, limits=limits)
        return json.dumps([0, result]).encode("ascii")
    except ExpressionError as error:
        return _error(error.code, error.message, error.path, error.details)
    except MemoryError:
        return _error(ExpressionCode.MEMORY_LIMIT, "evaluation ran out of memory", path)
    except RecursionError:
        return _error(ExpressionCode.DEPTH_EXCEEDED, "evaluation nested too deeply", path)
    except Exception as exc:  # a malformed request: the contract itself never raises these
        return _error(ExpressionCode.INVALID, f"{type(exc).__name__}: {exc}", path)


def serve(conn: Connection, memory_limit_bytes: int | None) -> None:
    """Run a worker: set the memory limit, report ready, answer until the pipe closes.

    Args:
        conn: The worker's end of a duplex pipe to the pool.
        memory_limit_bytes: ``RLIMIT_AS`` for this process, or None for no limit. An
            allocation beyond it raises ``MemoryError``, which the contract reports as
            ``EXPR_MEMORY_LIMIT``.
    """
    # The pool owns the worker's life: a Ctrl-C in the terminal reaches the whole process
    # group, and the parent decides what happens to its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    # Everything imported so far lives as long as the worker: keep the collector off it.
    gc.freeze()
    conn.send_bytes(READY)
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            reply = _answer(raw)
        except MemoryError:  # even building the error reply failed; the pool sees EOF
            return
        try:
            conn.send_bytes(reply)
        except (OSError, MemoryError):
            return
