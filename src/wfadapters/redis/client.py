"""Opening Redis for the adapters: one client, a key prefix, error translation."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from redis.asyncio import Redis

__all__ = ["RedisConnection"]


@dataclass(frozen=True, slots=True)
class RedisConnection:
    """A redis-py asyncio client plus the key prefix every adapter writes under.

    Attributes:
        client: The client (``decode_responses=True``).
        prefix: Namespace of every key (``wf`` by default); two deployments sharing a
            Redis server must use two prefixes.
        address: ``host:port/db``, for error messages (no credentials).
    """

    client: Redis
    prefix: str
    address: str

    @classmethod
    def open(cls, url: str, *, prefix: str = "wf") -> RedisConnection:
        """Create the client (no I/O yet: it connects on first use).

        Raises:
            ValueError: ``prefix`` is empty or contains ``{``, ``}`` or whitespace.
        """
        if not prefix or any(c in prefix for c in "{} \t\n"):
            raise ValueError(f"redis key prefix must be non-empty, without braces or spaces: "
                             f"{prefix!r}")
        parts = urlsplit(url)
        address = f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"
        client = Redis.from_url(url, decode_responses=True)
        return cls(client=client, prefix=prefix, address=address)

    def key(self, *parts: str) -> str:
        """The key ``prefix:part1:part2...``."""
        return ":".join((self.prefix, *parts))

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()
