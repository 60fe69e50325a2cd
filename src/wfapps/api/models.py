"""Request bodies of the HTTP API (responses are the JSON views of ``wfapps.views``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CancelRequest", "DecisionRequest", "EventRequest", "ImportRequest",
           "MoveRequest", "ReplayRequest", "StartRunRequest"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRunRequest(_Body):
    """Start a run of a served definition; ``input`` is checked against its input schema."""

    definition_id: str = Field(min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1)
    input: Any = None
    run_id: str | None = Field(default=None, min_length=1, max_length=200)


class EventRequest(_Body):
    """An external event; routed by ``correlation_key`` or the configured payload paths."""

    name: str = Field(min_length=1, max_length=200)
    payload: Any = None
    correlation_key: str | None = Field(default=None, max_length=500)
    run_id: str | None = Field(default=None, max_length=200)


class CancelRequest(_Body):
    """Why the run is cancelled."""

    reason: str | None = Field(default=None, max_length=1000)


class ReplayRequest(_Body):
    """Replay a run: from the original, unredacted input unless ``input`` is given."""

    input: Any = None
    use_original_input: bool = True


class DecisionRequest(_Body):
    """A decision on a human task: an outcome plus data checked against the task's form."""

    outcome: str = Field(min_length=1, max_length=200)
    data: Any = None
    decided_by: str | None = Field(default=None, max_length=200)


class ImportRequest(_Body):
    """A run archive (from an export) to store and continue here, in the caller's tenant."""

    archive: dict[str, Any]
    resume: bool = True


class MoveRequest(_Body):
    """Move a run to one of the server's configured move targets, named here."""

    target: str = Field(min_length=1, max_length=200)
