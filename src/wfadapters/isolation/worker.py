"""The worker process of the isolated evaluator: one request at a time, through the contract.

A worker sets its address-space limit, says it is ready, then answers requests until its
pipe closes. Each request is evaluated by the contract's own code
(:meth:`wfdomain.expressions.CompiledExpression.evaluate_checked`, the in-process
evaluation minus the input check its caller has already made), so the two modes give the
same results and errors.

Wire format (never pickle):

* request, in :mod:`marshal` format: ``(source, path, document, now_iso, limits)``, where
  ``document`` is what :func:`~wfdomain.expressions.evaluation_input` returned (exactly
  dicts, lists, str, int, finite float, bool and None) and ``limits`` is ``None`` or the
  values of :class:`~wfdomain.expressions.ExpressionLimits` in field order. marshal
  encodes these types two to three times faster than JSON and decodes them twice as
  fast, and copies them exactly. It is not safe on untrusted bytes, and it is only read
  by the worker, from the pool that started it: the pool never reads it.
* reply, in JSON: ``[0, result]`` or ``[1, code, message, path, details]``. A reply comes
  from a process that ran an untrusted expression, so the pool decodes it with a parser
  that can only build plain values.

Messages are framed as ``multiprocessing.connection.Connection`` frames them (a 4-byte
length first), but written and read with one system call each (:func:`send_message`,
:func:`recv_message`): the connection's methods make two, through several layers.

Waiting: both ends first poll the pipe without blocking for a short, bounded time
(:func:`wait_readable`), then block. On a virtual machine, waking a process blocked on a
pipe from another CPU costs tens of microseconds, more than evaluating a simple condition.
"""

from __future__ import annotations

import functools
import gc
import json
import marshal
import os
import resource
import select
import signal
import struct
import time
from dataclasses import fields
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Final

from wfdomain.errors import ExpressionError
from wfdomain.expressions import ExpressionCode, ExpressionLimits, compile_expression

__all__ = [
    "LIMIT_FIELDS",
    "READY",
    "decode_reply",
    "encode_request",
    "readable_poller",
    "recv_message",
    "send_message",
    "serve",
    "wait_readable",
]

READY: Final = b"ready"
LIMIT_FIELDS: Final = tuple(field.name for field in fields(ExpressionLimits))
_REPLY_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))
_ERROR_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), default=str)
_HEADER: Final = struct.Struct("!i")
_LONG_HEADER: Final = struct.Struct("!iQ")  # -1, then the length: messages over 2 GiB
_READ_SIZE: Final = 1 << 16
# One spin step (a yield and a poll) takes about a microsecond on a free CPU.
_CONTENDED_S: Final = 50e-6


def encode_request(
    source: str, path: str | None, document: Any, now: datetime, limits: ExpressionLimits | None
) -> bytes:
    """Encode one evaluation request; ``document`` must be what ``evaluation_input`` returned.

    Raises:
        ExpressionError: ``EXPR_DEPTH_EXCEEDED`` for a document nested deeper than marshal
            writes (about 2,000 levels; the input checks refuse far less by default).
    """
    values = None if limits is None else tuple(getattr(limits, name) for name in LIMIT_FIELDS)
    try:
        return marshal.dumps((source, path, document, now.isoformat(), values))
    except ValueError:
        raise ExpressionError(
            "the input nests too deeply to send to an expression worker",
            code=ExpressionCode.DEPTH_EXCEEDED,
            path=path,
        ) from None


def decode_reply(raw: bytes) -> Any:
    """Decode a reply: return the result or raise the ExpressionError it carries."""
    reply = json.loads(raw)
    if reply[0] == 0:
        return reply[1]
    _, code, message, path, details = reply
    raise ExpressionError(message, code=code, path=path, details=details)


def send_message(fd: int, payload: bytes) -> None:
    """Write one message framed as ``Connection.send_bytes`` frames it (length first).

    One ``os.write`` for a message that fits the pipe, where the connection makes two
    calls through several layers of Python.
    """
    size = len(payload)
    header = _HEADER.pack(size) if size <= 0x7FFFFFFF else _LONG_HEADER.pack(-1, size)
    view = memoryview(header + payload)
    while view:
        view = view[os.write(fd, view) :]


def recv_message(fd: int) -> bytes:
    """Read one message framed as :func:`send_message` and ``Connection.send_bytes`` do.

    Raises:
        EOFError: The other end closed before a whole message arrived.
        OSError: The pipe failed, or held more than one message (the protocol never
            sends a second before the first is answered).
    """
    data = _read_at_least(fd, b"", _HEADER.size)
    (size,) = _HEADER.unpack_from(data)
    start = _HEADER.size
    if size == -1:
        data = _read_at_least(fd, data, _LONG_HEADER.size)
        size, start = _LONG_HEADER.unpack_from(data)[1], _LONG_HEADER.size
    end = start + size
    if len(data) < end:
        parts = [data]
        missing = end - len(data)
        while missing > 0:
            more = os.read(fd, min(missing, _READ_SIZE))
            if not more:
                raise EOFError
            parts.append(more)
            missing -= len(more)
        data = b"".join(parts)
    if len(data) != end:
        raise OSError("expression worker pipe: more than one message")
    return data[start:]


def _read_at_least(fd: int, data: bytes, size: int) -> bytes:
    while len(data) < size:
        more = os.read(fd, _READ_SIZE)
        if not more:
            raise EOFError
        data += more
    return data


def readable_poller(conn: Connection) -> select.poll:
    """A poll object watching ``conn`` for input (or its other end closing)."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return poller


def wait_readable(poller: select.poll, spin_s: float) -> bool:
    """Poll without blocking for up to ``spin_s`` seconds; whether input (or EOF) arrived.

    Between polls the process yields its CPU (``sched_yield``, a system call that also
    releases the GIL), so a spinning caller lets other threads and processes run; the
    spin is bounded, so an idle worker goes back to blocking and costs no CPU.
    """
    if poller.poll(0):
        return True
    if spin_s <= 0:
        return False
    now = time.perf_counter()
    end = now + spin_s
    while now < end:
        os.sched_yield()
        if poller.poll(0):
            return True
        last, now = now, time.perf_counter()
        if now - last > _CONTENDED_S:
            # Another process had this CPU meanwhile: the machine is busy, and each yield
            # would put this process behind it again. Blocking lets the kernel wake it.
            return False
    return False


@functools.lru_cache(maxsize=64)
def _limits(values: tuple[int, ...]) -> ExpressionLimits:
    return ExpressionLimits(**dict(zip(LIMIT_FIELDS, values, strict=True)))


def _error(code: str, message: str, path: str | None, details: Any = None) -> bytes:
    reply = [1, code, message, path, dict(details or {})]
    return _ERROR_ENCODER.encode(reply).encode("ascii")


def _answer(raw: bytes) -> bytes:
    path: str | None = None
    try:
        source, path, document, now_text, values = marshal.loads(raw)
        limits = None if values is None else _limits(values)
        now = datetime.fromisoformat(now_text)
        # As IN_PROCESS.evaluate does, without the input walk: the caller made it.
        compiled = compile_expression(source, path=path)
        result = compiled.evaluate_checked(document, now=now, limits=limits)
        return _REPLY_ENCODER.encode([0, result]).encode("ascii")
    except ExpressionError as error:
        return _error(error.code, error.message, error.path, error.details)
    except MemoryError:
        return _error(ExpressionCode.MEMORY_LIMIT, "evaluation ran out of memory", path)
    except RecursionError:
        return _error(ExpressionCode.DEPTH_EXCEEDED, "evaluation nested too deeply", path)
    except Exception as exc:  # a malformed request: the contract itself never raises these
        return _error(ExpressionCode.INVALID, f"{type(exc).__name__}: {exc}", path)


def serve(conn: Connection, memory_limit_bytes: int | None, spin_us: int = 0) -> None:
    """Run a worker: set the memory limit, report ready, answer until the pipe closes.

    Args:
        conn: The worker's end of a duplex pipe to the pool.
        memory_limit_bytes: ``RLIMIT_AS`` for this process, or None for no limit. An
            allocation beyond it raises ``MemoryError``, which the contract reports as
            ``EXPR_MEMORY_LIMIT``.
        spin_us: After each answer, how long to poll for the next request before blocking
            (a caller evaluating several expressions in a row sends them microseconds
            apart); 0 blocks at once.
    """
    # The pool owns the worker's life: a Ctrl-C in the terminal reaches the whole process
    # group, and the parent decides what happens to its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    poller = readable_poller(conn)
    spin_s = spin_us / 1e6
    # Everything imported so far lives as long as the worker: keep the collector off it.
    gc.freeze()
    conn.send_bytes(READY)
    fd = conn.fileno()
    while True:
        wait_readable(poller, spin_s)  # then the read blocks if nothing came
        try:
            raw = recv_message(fd)
        except (EOFError, OSError):
            return
        try:
            reply = _answer(raw)
        except MemoryError:  # even building the error reply failed; the pool sees EOF
            return
        try:
            send_message(fd, reply)
        except (OSError, MemoryError):
            return
