"""The engine scenarios on a real Temporal dev server (``EngineScenarios``, unchanged)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from tests.contract.engine_contract import EngineScenarios
from tests.contract.engine_helpers import EngineFactory, RecordingActions
from tests.contract.temporal_fixtures import (
    DevServer,
    engine_with_worker,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
    temporal_settings,
)
from wfadapters.temporal import TemporalEngine
from wfdomain.actions import ActionRegistry
from wfdomain.engine import Engine
from wfdomain.runtime import RuntimeSettings

pytestmark = pytest.mark.temporal


class TestTemporalEngine(EngineScenarios):
    @pytest.fixture
    async def runtime_factory(
        self, temporal_server: DevServer, actions: RecordingActions  # noqa: F811
    ) -> AsyncIterator[EngineFactory]:
        base = temporal_settings(temporal_server)
        suite = actions.registry
        async with engine_with_worker(base, suite) as engine:

            def make(actions: ActionRegistry, settings: RuntimeSettings | None = None) -> Engine:
                assert actions is suite  # the worker runs the suite's actions
                if settings is None:
                    return engine
                # Another engine over the same queue and worker, with the scenario's options.
                paths = {k: tuple(v) for k, v in settings.correlation_paths.items()}
                return TemporalEngine(engine.client, actions,
                                      replace(base, correlation_paths=paths))

            yield make
