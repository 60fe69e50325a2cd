"""Parsing and checking of the ``postgres+redis`` engine URL (no server needed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from wfapps.bootstrap import open_runtime
from wfapps.settings import Settings, SettingsError
from wfdomain.actions import ActionRegistry
from wfdomain.errors import WorkflowEngineError
from wfdomain.runtime import RuntimeSettings

URL = "postgres://u@127.0.0.1:1/db?redis=redis://127.0.0.1:1/0&redis_prefix=acme&queue=q"


def test_redis_parameter_selects_the_postgres_redis_engine() -> None:
    settings = Settings.from_url(URL)
    assert (settings.backend, settings.redis_url, settings.redis_prefix, settings.queue) == (
        "postgres+redis", "redis://127.0.0.1:1/0", "acme", "q")


def test_postgres_without_redis_stays_postgres() -> None:
    settings = Settings.from_url("postgres://u@h/db")
    assert (settings.backend, settings.redis_url) == ("postgres", None)


@pytest.mark.parametrize("url", ["sqlite:///wf.db?redis=redis://h:6379/0",
                                 "postgres://u@h/db?redis=http://h:6379/0"])
def test_redis_parameter_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_url(url)
    assert info.value.code == "SETTINGS_INVALID"


async def test_claim_idle_not_above_handler_timeout_is_refused_before_connecting() -> None:
    options = RuntimeSettings(claim_idle=timedelta(seconds=30), lock_ttl=timedelta(seconds=30))
    with pytest.raises(WorkflowEngineError) as info:
        async with open_runtime(Settings.from_url(URL), ActionRegistry(), options=options):
            pass
    assert info.value.code == "SETTINGS_INVALID"
    assert info.value.details["handler_timeout_s"] == 30.0
