"""Contract of the ApiKeyStore port: keys stored by id with their hash, revoked, listed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.contract.helpers import T0
from wfdomain.api_keys import ApiKeyRecord, hash_key, matches
from wfdomain.ports import ApiKeyStore


def record(key_id: str, tenant: str = "acme", minutes: int = 0) -> ApiKeyRecord:
    return ApiKeyRecord(key_id=key_id, tenant=tenant, key_hash=hash_key(f"wf_{key_id}_s"),
                        name=f"key {key_id}", created_at=T0 + timedelta(minutes=minutes))


class ApiKeyContract:
    """Behaviour every ApiKeyStore adapter must show. Subclasses override ``keys``."""

    @pytest.fixture
    async def keys(self) -> AsyncIterator[ApiKeyStore]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    async def test_added_key_reads_back_equal(self, keys: ApiKeyStore) -> None:
        await keys.add_key(record("k1"))
        assert await keys.get_key("k1") == record("k1")

    async def test_unknown_key_reads_as_none(self, keys: ApiKeyStore) -> None:
        assert await keys.get_key("nope") is None

    async def test_stored_hash_matches_only_its_key(self, keys: ApiKeyStore) -> None:
        await keys.add_key(record("k1"))
        stored = await keys.get_key("k1")
        assert stored is not None
        assert matches(stored, "wf_k1_s")
        assert not matches(stored, "wf_k1_t")

    async def test_adding_a_taken_id_is_refused(self, keys: ApiKeyStore) -> None:
        await keys.add_key(record("k1"))
        with pytest.raises(ValueError, match="k1"):
            await keys.add_key(record("k1", tenant="other"))
        stored = await keys.get_key("k1")
        assert stored is not None
        assert stored.tenant == "acme"

    async def test_revoke_marks_the_key_once(self, keys: ApiKeyStore) -> None:
        await keys.add_key(record("k1"))
        at = T0 + timedelta(hours=1)
        assert await keys.revoke_key("k1", at=at) is True
        assert await keys.revoke_key("k1", at=at + timedelta(hours=1)) is False
        stored = await keys.get_key("k1")
        assert stored is not None
        assert stored.revoked_at == at
        assert not stored.active
        assert not matches(stored, "wf_k1_s")

    async def test_revoking_an_unknown_key_is_false(self, keys: ApiKeyStore) -> None:
        assert await keys.revoke_key("nope", at=T0) is False

    async def test_list_is_oldest_first_and_filters_by_tenant(self, keys: ApiKeyStore) -> None:
        await keys.add_key(record("k2", minutes=1))
        await keys.add_key(record("k1", tenant="other", minutes=2))
        await keys.add_key(record("k3", minutes=3))
        await keys.revoke_key("k3", at=T0 + timedelta(hours=1))
        assert [r.key_id for r in await keys.list_keys()] == ["k2", "k1", "k3"]
        assert [r.key_id for r in await keys.list_keys(tenant="acme")] == ["k2", "k3"]
        assert await keys.list_keys(tenant="none") == []
