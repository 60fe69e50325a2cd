"""A pool of pre-started worker processes that evaluate expressions for untrusted authors.

The in-process guardrails are cooperative: jsonata checks its time and depth budget only
between AST steps, so native work inside one built-in (building a huge range, joining or
doubling a huge string) runs to the end and can take all the memory it wants. A worker
process is the only layer that bounds both: it runs under ``RLIMIT_AS``, and the pool
kills it by PID when it overruns the hard deadline (the expression timeout plus a grace
period), then starts a replacement before the failing call returns, so the next
evaluation finds a working pool.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import select
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Final, Self

from wfadapters.isolation.worker import (
    READY,
    decode_reply,
    encode_request,
    readable_poller,
    recv_message,
    send_message,
    serve,
    wait_readable,
)
from wfdomain.errors import ExpressionError
from wfdomain.expressions import (
    ExpressionCode,
    ExpressionLimits,
    compile_expression,
    evaluation_input,
)

__all__ = ["IsolationOptions", "ProcessPoolEvaluator"]

_WORKER_MODULE: Final = "wfadapters.isolation.worker"
# A spin holds a CPU (and, between system calls, the caller's GIL): keep it short.
_MAX_SPIN_US: Final = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class IsolationOptions:
    """How the worker pool is sized and bounded.

    Attributes:
        workers: Worker processes; at most this many evaluations run at once, further
            callers wait for a free worker.
        memory_limit_mb: Address-space limit (``RLIMIT_AS``) of each worker. The worker
            itself (interpreter, jsonata, RE2) takes about 100 MB of it.
        grace_ms: The hard deadline is the evaluation's ``timeout_ms`` plus this: the
            cooperative timeout gets the first chance to end the evaluation cleanly.
        start_timeout_s: Longest wait for a new worker to report ready.
        start_method: ``forkserver`` (default: workers fork from a small server process
            that has imported the contract, never from the threaded parent) or ``spawn``.
        spin_us: How long each end polls the pipe without blocking before it blocks: the
            caller waiting for a reply, a worker after answering (for the next request).
            Waking a blocked process costs tens of microseconds on a virtual machine, so
            a short spin halves a simple evaluation's round trip; while spinning a
            process yields its CPU between polls, and once the spin is over it blocks,
            so an idle worker costs nothing. 0 turns spinning off.
    """

    workers: int = 2
    memory_limit_mb: int = 512
    grace_ms: int = 500
    start_timeout_s: float = 30.0
    start_method: str = "forkserver"
    spin_us: int = 300

    def __post_init__(self) -> None:
        if self.workers < 1 or self.memory_limit_mb < 64 or self.grace_ms < 0:
            raise ExpressionError(
                "IsolationOptions: workers >= 1, memory_limit_mb >= 64 and grace_ms >= 0 "
                f"required, got {self.workers}, {self.memory_limit_mb}, {self.grace_ms}",
                code=ExpressionCode.INVALID,
            )
        if not 0 <= self.spin_us <= _MAX_SPIN_US:
            raise ExpressionError(
                f"IsolationOptions.spin_us: 0 to {_MAX_SPIN_US} required, got {self.spin_us}",
                code=ExpressionCode.INVALID,
            )
        if self.start_method not in ("forkserver", "spawn"):
            raise ExpressionError(
                f"IsolationOptions.start_method: {self.start_method!r} is not "
                "'forkserver' or 'spawn'",
                code=ExpressionCode.INVALID,
            )


class _Worker:
    __slots__ = ("conn", "pid", "poller", "process")

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.poller: select.poll = readable_poller(conn)
        self.pid: int = process.pid or 0


class ProcessPoolEvaluator:
    """An :class:`~wfdomain.expressions.ExpressionEvaluator` over worker processes.

    Results and errors are those of the in-process evaluator for every expression that
    finishes within its bounds (workers run the same contract code). On top of them: an
    evaluation still running at ``timeout_ms + grace_ms`` has its worker killed and fails
    with ``EXPR_TIMEOUT``; one that exceeds the memory limit fails with
    ``EXPR_MEMORY_LIMIT`` and its worker is replaced; a worker that dies without answering
    gives ``EXPR_ISOLATION_FAILED``. Load-time checks (syntax, allow-list...) and input
    checks run in the caller's process, so they never cost a round trip.

    ``evaluate`` waits on a pipe (``blocking`` is true): first up to ``spin_us`` polling
    it (releasing the GIL at every poll), then blocked. Call it from a worker thread in
    asyncio code. It is thread-safe. Use as a context manager, or call :meth:`start` and
    :meth:`close`.
    """

    blocking = True

    def __init__(self, options: IsolationOptions | None = None) -> None:
        self.options = options or IsolationOptions()
        self._context: BaseContext = multiprocessing.get_context(self.options.start_method)
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        self._live: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self._spin_s = self.options.spin_us / 1e6
        self._started = False
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start every worker and wait until each reports ready.

        Raises:
            ExpressionError: ``EXPR_ISOLATION_FAILED`` when a worker cannot start.
        """
        if self._started:
            return
        self._started = True
        if self.options.start_method == "forkserver":
            # The server imports the contract (jsonata, RE2) once; workers fork from it in
            # tens of milliseconds, already warm.
            self._context.set_forkserver_preload([_WORKER_MODULE])
        for _ in range(self.options.workers):
            self._idle.put(self._spawn())

    def close(self) -> None:
        """Stop every worker (idle ones now, busy ones when their evaluation returns)."""
        with self._lock:
            self._closed = True
            idle: list[_Worker] = []
            while True:
                try:
                    item = self._idle.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    idle.append(item)
            for _ in range(self.options.workers):
                self._idle.put(None)  # wakes callers waiting for a worker: they see closed
        for worker in idle:
            self._stop(worker)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pids(self) -> frozenset[int]:
        """Process ids of the live workers."""
        with self._lock:
            return frozenset(self._live)

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(
        self,
        source: str,
        data: Any,
        *,
        now: datetime,
        path: str | None = None,
        limits: ExpressionLimits | None = None,
    ) -> Any:
        """Evaluate in a worker; see :meth:`wfdomain.expressions.ExpressionEvaluator.evaluate`.

        Raises:
            ExpressionError: The contract's codes, ``EXPR_TIMEOUT`` when the worker was
                killed at the hard deadline, or ``EXPR_ISOLATION_FAILED`` when the pool is
                closed or a worker died or could not start.
        """
        compiled = compile_expression(source, path=path)
        document = evaluation_input(data, now, path=path, limits=limits or compiled.limits)
        request = encode_request(compiled.source, path, document, now, limits)
        timeout_ms = (limits or compiled.limits).timeout_ms
        deadline_s = (timeout_ms + self.options.grace_ms) / 1000
        worker: _Worker | None = self._checkout(path)
        try:
            assert worker is not None
            try:
                send_message(worker.conn.fileno(), request)
            except OSError:  # it died while idle; the request never ran, so retry once
                worker = self._usable(self._replace(worker), path)
                send_message(worker.conn.fileno(), request)
            if not self._wait_reply(worker, deadline_s):
                pid = worker.pid
                worker = self._replace(worker)
                raise ExpressionError(
                    f"evaluation took over {timeout_ms} ms; its worker process was killed",
                    code=ExpressionCode.TIMEOUT,
                    path=path,
                    details={"limit": timeout_ms, "killed_pid": pid},
                )
            try:
                raw = recv_message(worker.conn.fileno())
            except (EOFError, OSError):
                pid = worker.pid
                exitcode = self._reap(worker)
                worker = self._replace(worker)
                raise ExpressionError(
                    f"the worker process {pid} died without answering (exit code {exitcode})",
                    code=ExpressionCode.ISOLATION_FAILED,
                    path=path,
                    details={"exitcode": exitcode, "pid": pid},
                ) from None
            try:
                return decode_reply(raw)
            except ExpressionError as error:
                if error.code == ExpressionCode.MEMORY_LIMIT:
                    # The worker survived its MemoryError, but may keep a bloated heap.
                    worker = self._replace(worker)
                raise
        finally:
            self._checkin(worker)

    def _wait_reply(self, worker: _Worker, timeout_s: float) -> bool:
        """Whether the worker answered (or its pipe closed) within ``timeout_s``."""
        started = time.monotonic()
        if wait_readable(worker.poller, min(self._spin_s, timeout_s)):
            return True
        remaining_s = timeout_s - (time.monotonic() - started)
        # poll() blocks without holding the GIL; it takes milliseconds, rounded up.
        return bool(worker.poller.poll(max(0.0, remaining_s) * 1000))

    # -- workers --------------------------------------------------------------------------
    def _checkout(self, path: str | None) -> _Worker:
        if not self._started:
            raise ExpressionError(
                "the isolated expression pool is not started",
                code=ExpressionCode.ISOLATION_FAILED,
                path=path,
            )
        item = self._idle.get()
        if self._closed:
            self._idle.put(None)
            if item is not None:
                self._stop(item)
            raise ExpressionError(
                "the isolated expression pool is closed",
                code=ExpressionCode.ISOLATION_FAILED,
                path=path,
            )
        if item is None:  # a slot whose worker could not be restarted: try again now
            try:
                return self._spawn()
            except ExpressionError:
                self._idle.put(None)
                raise
        return item

    @staticmethod
    def _usable(worker: _Worker | None, path: str | None) -> _Worker:
        if worker is None:
            raise ExpressionError(
                "no expression worker could be started",
                code=ExpressionCode.ISOLATION_FAILED,
                path=path,
            )
        return worker

    def _checkin(self, worker: _Worker | None) -> None:
        if self._closed:
            if worker is not None:
                self._stop(worker)
            return
        self._idle.put(worker)

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        limit = self.options.memory_limit_mb * 1024 * 1024
        process = self._context.Process(  # type: ignore[attr-defined]
            target=serve,
            args=(child_end, limit, self.options.spin_us),
            name="wf-expression-worker",
            daemon=True,
        )
        try:
            process.start()
        except OSError as e:
            parent_end.close()
            raise ExpressionError(
                f"could not start an expression worker: {e}",
                code=ExpressionCode.ISOLATION_FAILED,
            ) from e
        finally:
            child_end.close()
        worker = _Worker(process, parent_end)
        ready = False
        with contextlib.suppress(EOFError, OSError):
            if parent_end.poll(self.options.start_timeout_s):
                ready = parent_end.recv_bytes() == READY
        if not ready:
            self._kill(worker)
            raise ExpressionError(
                f"an expression worker did not start within {self.options.start_timeout_s} s",
                code=ExpressionCode.ISOLATION_FAILED,
            )
        with self._lock:
            self._live[worker.pid] = worker
        return worker

    def _replace(self, worker: _Worker) -> _Worker | None:
        """Kill ``worker`` and start its replacement (None when that fails; retried later)."""
        self._kill(worker)
        if self._closed:
            return None
        try:
            return self._spawn()
        except ExpressionError:
            return None

    def _kill(self, worker: _Worker) -> None:
        # SIGKILL by PID: the worker may be stuck inside one native call that no signal
        # handler, timeout or exception could interrupt.
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)
        self._reap(worker)

    def _reap(self, worker: _Worker) -> int | None:
        worker.process.join(self.options.start_timeout_s)
        worker.conn.close()
        with self._lock:
            self._live.pop(worker.pid, None)
        return worker.process.exitcode

    def _stop(self, worker: _Worker) -> None:
        worker.conn.close()  # the worker reads EOF and returns
        worker.process.join(2.0)
        if worker.process.exitcode is None:
            self._kill(worker)
        with self._lock:
            self._live.pop(worker.pid, None)
