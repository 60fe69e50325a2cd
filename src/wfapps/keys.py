"""Creating API keys (random, shown once) and resolving a presented key to its tenant."""

from __future__ import annotations

import secrets
from datetime import datetime

from wfdomain.api_keys import KEY_PREFIX, ApiKeyRecord, hash_key, key_id_of, matches
from wfdomain.ports import ApiKeyStore

__all__ = ["authenticate", "create_api_key"]


async def create_api_key(store: ApiKeyStore, tenant: str, name: str,
                         now: datetime) -> tuple[ApiKeyRecord, str]:
    """Make and store a key for ``tenant``; return its record and the key (shown once)."""
    if not tenant:
        raise ValueError("tenant must not be empty")
    key_id = secrets.token_hex(8)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(key_id=key_id, tenant=tenant, key_hash=hash_key(key), name=name,
                          created_at=now)
    await store.add_key(record)
    return record, key


async def authenticate(store: ApiKeyStore, key: str) -> ApiKeyRecord | None:
    """Return the valid key record for ``key``, or None (unknown, malformed or revoked)."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    record = await store.get_key(key_id)
    return record if record is not None and matches(record, key) else None
