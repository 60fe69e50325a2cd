"""The Temporal engine: each run is a Temporal workflow executing the same pure interpreter.

``TemporalEngine`` (``engine.py``, with ``moves.py`` for the run archive and
``waiting.py`` for settling) is the application-facing engine; ``build_worker``
(``worker.py``) builds the worker that executes runs; ``workflows.py`` holds the workflow
code (the interpreter loop), ``activities.py`` the action activity, ``wire.py`` the names
and JSON shapes they share, ``replay.py`` the ``Replayer`` check. Exports are loaded lazily
so the workflow sandbox, which imports this package, never loads the client side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfadapters.temporal.engine import CancelNotConfirmedError, TemporalEngine, TemporalSettings
    from wfadapters.temporal.worker import build_worker

__all__ = ["CancelNotConfirmedError", "TemporalEngine", "TemporalSettings", "build_worker"]


def __getattr__(name: str) -> Any:
    if name in ("CancelNotConfirmedError", "TemporalEngine", "TemporalSettings"):
        from wfadapters.temporal import engine

        return getattr(engine, name)
    if name == "build_worker":
        from wfadapters.temporal import worker

        return worker.build_worker
    raise AttributeError(name)
