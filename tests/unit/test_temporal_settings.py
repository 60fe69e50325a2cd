"""The temporal:// engine URL gives producer and worker the same target, namespace, queue."""

from __future__ import annotations

import pytest

from wfadapters.temporal import TemporalEngine
from wfapps.settings import Settings, SettingsError
from wfapps.temporal_worker import temporal_settings
from wfdomain.engine import Engine
from wfdomain.errors import ErrorCode
from wfdomain.runtime import Runtime


def test_url_gives_target_namespace_and_task_queue() -> None:
    settings = Settings.from_url("temporal://10.0.0.5:7000/billing?task_queue=invoices")
    temporal = temporal_settings(settings)
    assert (temporal.target, temporal.namespace, temporal.task_queue) == (
        "10.0.0.5:7000", "billing", "invoices")


def test_defaults_are_port_7233_namespace_default_queue_default() -> None:
    temporal = temporal_settings(Settings.from_url("temporal://temporal.internal"))
    assert (temporal.target, temporal.namespace, temporal.task_queue) == (
        "temporal.internal:7233", "default", "default")


def test_correlation_paths_and_limits_come_from_the_same_settings() -> None:
    settings = Settings.from_env({"WF_ENGINE_URL": "temporal://h:1/ns?task_queue=q",
                                  "WF_CORRELATION_PATHS": '{"paid": ["order.id"]}',
                                  "WF_EXPRESSION_TIMEOUT_MS": "250"})
    temporal = temporal_settings(settings)
    assert temporal.correlation_paths == {"paid": ("order.id",)}
    assert temporal.expression_limits is not None
    assert temporal.expression_limits.timeout_ms == 250


@pytest.mark.parametrize("url", ["sqlite:///wf.db", "temporal:///ns"])
def test_other_urls_are_settings_invalid(url: str) -> None:
    with pytest.raises(SettingsError) as info:
        temporal_settings(Settings.from_url(url))
    assert info.value.code == ErrorCode.SETTINGS_INVALID


def _both_are_engines(local: Runtime, temporal: TemporalEngine) -> list[Engine]:
    return [local, temporal]  # mypy proves both satisfy the Engine protocol


def test_runtime_and_temporal_engine_offer_the_engine_api() -> None:
    assert _both_are_engines.__annotations__["return"] == "list[Engine]"
    members = {n for n in dir(Engine) if not n.startswith("_")}
    assert members <= set(dir(Runtime))
    assert members <= set(dir(TemporalEngine))
