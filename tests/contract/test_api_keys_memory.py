from __future__ import annotations

import pytest

from tests.contract.api_key_contract import ApiKeyContract
from wfadapters.memory.api_keys import InMemoryApiKeyStore
from wfdomain.ports import ApiKeyStore


class TestInMemoryApiKeys(ApiKeyContract):
    @pytest.fixture
    async def keys(self) -> ApiKeyStore:
        return InMemoryApiKeyStore()
