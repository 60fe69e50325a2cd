"""Time-ordered identifiers in the UUIDv7 layout (RFC 9562)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["UuidIds"]

_COUNTER_BITS = 12
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_RAND_B_BITS = 62


class UuidIds:
    """An ``IdGenerator`` of 32-character lowercase hex UUIDv7 strings that sort by creation.

    Layout: 48-bit Unix milliseconds, version 7, a 12-bit counter, variant ``10`` and 62
    random bits. Within one millisecond the counter increments (RFC 9562 section 6.2,
    method 1), so ids from one generator are strictly increasing as strings even when
    the wall clock stands still or steps back; ids from different generators order by
    millisecond and are unique through their 74 bits of randomness.

    Args:
        time_ns: Source of wall time in nanoseconds.
        random_bytes: Source of random bytes (``os.urandom`` signature).
    """

    def __init__(
        self,
        *,
        time_ns: Callable[[], int] = time.time_ns,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._time_ns = time_ns
        self._random_bytes = random_bytes
        self._last_ms = -1
        self._counter = 0
        # new_id is sync and may be called from worker threads (run_in_executor); the
        # (last_ms, counter) pair must advance atomically for ids to stay ordered.
        self._mutex = threading.Lock()

    def new_id(self) -> str:
        rand = int.from_bytes(self._random_bytes(10), "big")
        rand_b = rand & ((1 << _RAND_B_BITS) - 1)
        with self._mutex:
            ms = self._time_ns() // 1_000_000
            if ms > self._last_ms:
                # Seed the counter with 11 random bits: unpredictable, yet leaves at least
                # 2048 increments of headroom inside the millisecond.
                self._last_ms = ms
                self._counter = (rand >> 64) & (_COUNTER_MAX >> 1)
            elif self._counter < _COUNTER_MAX:
                self._counter += 1
            else:
                # Same (or an earlier) millisecond with the counter exhausted: borrow the next one.
                self._last_ms += 1
                self._counter = 0
            value = (
                (self._last_ms & ((1 << 48) - 1)) << 80
                | 0x7 << 76
                | self._counter << 64
                | 0b10 << 62
                | rand_b
            )
        return f"{value:032x}"
