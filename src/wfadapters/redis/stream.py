"""The Redis stream: a Redis Stream with consumer groups, idle claims and dead letters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from redis import exceptions as redis_exc

from wfadapters.redis import _scripts
from wfadapters.redis._errors import translated
from wfadapters.redis.client import RedisConnection
from wfdomain.errors import ErrorCode, WorkflowEngineError
from wfdomain.ports import Clock, check_claim, check_positive
from wfdomain.records import Delivery, Message

__all__ = ["EntryState", "RedisStream", "check_claim_idle"]

EntryState = Literal["missing", "queued", "pending", "done"]
"""Where a published message is in Redis (see ``RedisStream.states``)."""



def check_claim_idle(claim_idle: timedelta, handler_timeout: timedelta) -> None:
    """Refuse a claim idle time that does not exceed the handler timeout.

    A message is claimed from its consumer once it has been pending ``claim_idle``; if a
    live handler may still be working on it then, two workers run it at once.

    Raises:
        WorkflowEngineError: code ``SETTINGS_INVALID``.
    """
    if claim_idle <= handler_timeout:
        raise WorkflowEngineError(
            f"claim idle time {claim_idle.total_seconds()}s must exceed the handler timeout "
            f"{handler_timeout.total_seconds()}s, or live work would be claimed",
            code=ErrorCode.SETTINGS_INVALID,
            details={"claim_idle_s": claim_idle.total_seconds(),
                     "handler_timeout_s": handler_timeout.total_seconds()},
        )


def _encode(message: Message) -> str:
    return json.dumps({"id": message.id, "kind": message.kind, "tenant": message.tenant,
                       "run_id": message.run_id, "body": message.body},
                      separators=(",", ":"))


def _decode(raw: str) -> Message:
    data = json.loads(raw)
    return Message(id=data["id"], kind=data["kind"], tenant=data["tenant"],
                   run_id=data["run_id"], body=data["body"])


def _delivery_id(tenant: str, entry_id: str) -> str:
    # Redis ids ("1700000000000-12") do not sort as strings; the padded form does. The
    # tenant names the stream the entry is in.
    ms, seq = entry_id.split("-")
    return f"{int(ms):015d}-{int(seq):010d}:{tenant}"


_ID_WIDTH = 26  # len("000001700000000-0000000012")


def _parse_delivery_id(delivery_id: str) -> tuple[str, str] | None:
    """Return (tenant, entry id) of a delivery id, or None when it is not one."""
    head, sep, tenant = delivery_id[:_ID_WIDTH], delivery_id[_ID_WIDTH:_ID_WIDTH + 1], \
        delivery_id[_ID_WIDTH + 1:]
    ms, dash, seq = head.partition("-")
    if not (sep == ":" and tenant and dash and ms.isdigit() and seq.isdigit()):
        return None
    return tenant, f"{int(ms)}-{int(seq)}"


def _fields(raw: Any) -> dict[str, str]:
    values = list(raw)
    return dict(zip(values[::2], values[1::2], strict=True))


class RedisStream:
    """A ``Stream`` on Redis Streams, with the semantics of ``InMemoryStream``.

    Keys, under the connection's prefix and per tenant: ``<prefix>:t:<tenant>:stream``
    holds the tenant's messages, ``...:ids`` maps message id to entry id (for the outbox
    relay), ``...:dead:<group>`` holds a group's dead letters; ``<prefix>:tenants`` lists
    the tenants. A group is a Redis consumer group on each tenant's stream, created at its
    first ``consume`` from the start of the stream. ``consume`` serves the tenants in
    turn, starting from a tenant that rotates with every call, so one tenant's backlog
    does not starve the others; within a tenant, oldest first. Delivery ids are the entry
    ids zero-padded plus the tenant (``000001700000000-0000000003:acme``) so they sort as
    strings within a tenant. Consume, claim and dead-lettering are Lua scripts, one
    atomic step each: a message given up on is acked and copied to the dead-letter
    stream together. The scripts walk the tenants' keys, so Redis must be standalone
    (or a single-shard deployment), not Redis Cluster.

    Idle time is measured on ``clock``: each delivery's time is set from it (``XCLAIM
    TIME``), and a claim converts ``min_idle`` into the server's idle time with the
    server-to-clock offset read in the same script. So the idle rule is the same for
    every claimer whatever its clock's skew from Redis.

    Per-run ordering is not the stream's job: a message applied out of order fails the
    event store's expected-version check and is decided again, never applied twice.

    Args:
        conn: The Redis connection and key prefix.
        clock: Source of delivery times.
        max_deliveries: Deliveries (first consume plus claims) before dead-lettering.
        handler_timeout: Longest a handler may take; ``claim_idle`` refuses a
            ``min_idle`` not above it (see ``check_claim_idle``).
    """

    def __init__(
        self, conn: RedisConnection, clock: Clock, *, max_deliveries: int = 5,
        handler_timeout: timedelta = timedelta(0),
    ) -> None:
        check_positive("max_deliveries", max_deliveries)
        self._conn = conn
        self._r = conn.client
        self._clock = clock
        self._max = max_deliveries
        self._handler_timeout = handler_timeout
        self._tenants = conn.key("tenants")
        self._publish = self._r.register_script(_scripts.PUBLISH)
        self._consume = self._r.register_script(_scripts.CONSUME)
        self._claim = self._r.register_script(_scripts.CLAIM)
        self._pending = self._r.register_script(_scripts.PENDING)
        self._states = self._r.register_script(_scripts.STATES)
        self._forget = self._r.register_script(_scripts.FORGET)

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    def _stream(self, tenant: str) -> str:
        return self._conn.key("t", tenant, "stream")

    def _ids(self, tenant: str) -> str:
        return self._conn.key("t", tenant, "ids")

    def _dead(self, tenant: str, group: str) -> str:
        return self._conn.key("t", tenant, "dead", group)

    def _publish_args(self, message: Message) -> dict[str, Any]:
        return {"keys": [self._stream(message.tenant), self._ids(message.tenant),
                         self._tenants],
                "args": [_encode(message), message.id, message.tenant]}

    async def publish(self, message: Message) -> str:
        async with translated(self._conn.address):
            entry = await self._publish(**self._publish_args(message))
        return _delivery_id(message.tenant, str(entry))

    async def publish_many(self, messages: Sequence[Message]) -> list[str]:
        """Publish several messages in one round trip (the relay's path); ids in order."""
        if not messages:
            return []
        async with (translated(self._conn.address),
                    self._r.pipeline(transaction=False) as pipe):
            for message in messages:
                await self._publish(**self._publish_args(message), client=pipe)
            entries = await pipe.execute()
        return [_delivery_id(m.tenant, str(e)) for m, e in zip(messages, entries, strict=True)]

    async def consume(self, group: str, consumer: str, *, count: int = 10) -> list[Delivery]:
        check_positive("count", count)
        async with translated(self._conn.address):
            entries = await self._consume(
                args=[self._conn.prefix, group, consumer, count, self._now_ms()])
        return [Delivery(delivery_id=_delivery_id(t, eid), message=_decode(_fields(f)["m"]),
                         delivery_count=1) for t, eid, f in entries]

    async def ack(self, group: str, delivery_id: str) -> bool:
        parsed = _parse_delivery_id(delivery_id)
        if parsed is None:
            return False
        tenant, entry = parsed
        try:
            async with translated(self._conn.address):
                return bool(await self._r.xack(self._stream(tenant), group, entry))
        except WorkflowEngineError as e:
            if isinstance(e.__cause__, redis_exc.ResponseError) and "NOGROUP" in str(e.__cause__):
                return False
            raise

    async def claim_idle(
        self, group: str, consumer: str, *, min_idle: timedelta, count: int = 10
    ) -> list[Delivery]:
        check_claim(min_idle, count)
        if self._handler_timeout and min_idle <= self._handler_timeout:
            check_claim_idle(min_idle, self._handler_timeout)
        async with translated(self._conn.address):
            claimed = await self._claim(
                args=[self._conn.prefix, group, consumer, count, self._now_ms(),
                      int(min_idle.total_seconds() * 1000), self._max],
            )
        return [Delivery(delivery_id=_delivery_id(t, eid), message=_decode(_fields(f)["m"]),
                         delivery_count=int(n)) for t, eid, f, n in claimed]

    async def dead_letters(self, group: str) -> list[Delivery]:
        async with translated(self._conn.address):
            members: Any = await self._r.smembers(self._tenants)
            tenants = sorted(str(t) for t in members)
            out = []
            for tenant in tenants:
                entries: Any = await self._r.xrange(self._dead(tenant, group))
                for _, fields in entries or []:
                    out.append(Delivery(
                        delivery_id=_delivery_id(tenant, str(fields["id"])),
                        message=_decode(str(fields["m"])), delivery_count=int(fields["n"])))
        return sorted(out, key=lambda d: d.delivery_id)

    async def pending_count(self, group: str) -> int:
        async with translated(self._conn.address):
            return int(await self._pending(args=[self._conn.prefix, group]))

    # -- for the outbox relay (not part of the Stream port) -------------------------------

    async def states(self, group: str, messages: Sequence[Message]) -> list[EntryState]:
        """Return where each message is in Redis for ``group``, in one atomic step."""
        if not messages:
            return []
        pairs = [x for m in messages for x in (m.tenant, m.id)]
        async with translated(self._conn.address):
            states = await self._states(args=[self._conn.prefix, group, *pairs])
        return [str(s) for s in states]  # type: ignore[misc]

    async def forget(self, messages: Sequence[Message]) -> None:
        """Delete handled messages (their entries and id index) from Redis."""
        if messages:
            pairs = [x for m in messages for x in (m.tenant, m.id)]
            async with translated(self._conn.address):
                await self._forget(args=[self._conn.prefix, *pairs])
