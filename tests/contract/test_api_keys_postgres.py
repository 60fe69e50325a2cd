from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.api_key_contract import ApiKeyContract
from tests.contract.sql_fixtures import postgres_database
from wfadapters.sql.api_keys import SqlApiKeyStore
from wfdomain.ports import ApiKeyStore


@pytest.mark.postgres
class TestPostgresApiKeys(ApiKeyContract):
    @pytest.fixture
    async def keys(self, postgres_dsn: str) -> AsyncIterator[ApiKeyStore]:
        async with postgres_database(postgres_dsn) as db:
            yield SqlApiKeyStore(db)
