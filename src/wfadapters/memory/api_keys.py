"""API keys held in memory (tests, embedding): the ``ApiKeyStore`` contract, no persistence."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from wfdomain.api_keys import ApiKeyRecord

__all__ = ["InMemoryApiKeyStore"]


class InMemoryApiKeyStore:
    """An ``ApiKeyStore`` in a dict, in insertion (creation) order."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}

    async def add_key(self, record: ApiKeyRecord) -> None:
        if record.key_id in self._keys:
            raise ValueError(f"API key {record.key_id} already exists")
        self._keys[record.key_id] = record

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        return self._keys.get(key_id)

    async def revoke_key(self, key_id: str, *, at: datetime) -> bool:
        record = self._keys.get(key_id)
        if record is None or not record.active:
            return False
        self._keys[key_id] = replace(record, revoked_at=at)
        return True

    async def list_keys(self, *, tenant: str | None = None) -> list[ApiKeyRecord]:
        return [r for r in self._keys.values() if tenant is None or r.tenant == tenant]
