from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.api_key_contract import ApiKeyContract
from tests.contract.sql_fixtures import sqlite_database
from wfadapters.sql.api_keys import SqlApiKeyStore
from wfdomain.ports import ApiKeyStore


class TestSqliteApiKeys(ApiKeyContract):
    @pytest.fixture
    async def keys(self, tmp_path: Path) -> AsyncIterator[ApiKeyStore]:
        async with sqlite_database(tmp_path) as db:
            yield SqlApiKeyStore(db)
