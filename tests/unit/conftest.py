"""Unit tests never touch a wf.db in the working directory: the default engine URL points
into each test's own temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_engine_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WF_ENGINE_URL", f"sqlite:///{tmp_path / 'wf.db'}")
