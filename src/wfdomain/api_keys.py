"""Per-tenant API keys: what is stored (a hash, never the key) and how keys are matched.

A key reads ``wf_<key_id>_<secret>``. The store keeps ``key_id``, the tenant and the
SHA-256 of the whole key. A fast hash is enough here because the secret is 32 random
bytes made by the app (nobody can guess it by trying candidates), unlike a password.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

__all__ = ["KEY_PREFIX", "ApiKeyRecord", "hash_key", "key_id_of", "matches"]

KEY_PREFIX = "wf_"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyRecord:
    """A stored API key.

    Attributes:
        key_id: Public id of the key (shown in listings, used to revoke it).
        tenant: The tenant every request made with the key acts as.
        key_hash: Hex SHA-256 of the whole key.
        name: A label for people (who or what uses the key).
        created_at: When it was created.
        revoked_at: When it was revoked, or None while it is valid.
    """

    key_id: str
    tenant: str
    key_hash: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether requests may still use the key."""
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """Return the hex SHA-256 of a key, the only form in which keys are stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str | None:
    """Return the key id inside ``wf_<key_id>_<secret>``, or None for another shape."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX):].partition("_")
    return key_id if sep and key_id and secret else None


def matches(record: ApiKeyRecord, key: str) -> bool:
    """Whether ``key`` is the key of ``record`` and still valid (constant-time compare)."""
    return record.active and hmac.compare_digest(record.key_hash, hash_key(key))
