"""A run's timeline, rendered from its history for people: per step, or per event.

Values at the definition's secret paths are masked wherever they appear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from wfdomain.definition import Definition
from wfdomain.records import EventEnvelope
from wfdomain.redaction import mask, secret_values

__all__ = ["EventRow", "StepRow", "event_rows", "secrets_of", "step_rows"]


def _compact(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def secrets_of(history: list[EventEnvelope], definition: Definition) -> frozenset[str]:
    """The secret values of a run: those at its definition's secret paths, ever."""
    if not definition.secret_fields:
        return frozenset()
    found: set[str] = set()
    for e in history:
        if e.type == "RunStarted":
            found |= secret_values(e.data.get("input"), "input", definition.secret_fields)
        elif e.type == "StateSet":
            found |= secret_values(e.data["values"], "state", definition.secret_fields)
    return frozenset(found)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRow:
    """One step instance: when it ran, how long, how it ended."""

    key: str
    step_type: str
    step_id: str | None
    started_s: float
    duration_s: float | None
    status: str
    attempts: int
    detail: str


def step_rows(history: list[EventEnvelope], definition: Definition) -> list[StepRow]:
    """Summarise a history as one row per step instance, in start order."""
    if not history:
        return []
    secrets, start = secrets_of(history, definition), history[0].at
    rows: dict[str, StepRow] = {}
    for e in history:
        d, key = e.data, str(e.data.get("key", ""))
        offset = (e.at - start).total_seconds()
        if e.type == "StepStarted":
            rows[key] = StepRow(key=key, step_type=d["step_type"], step_id=d.get("step_id"),
                                started_s=offset, duration_s=None, status="running",
                                attempts=0, detail="")
            continue
        row = rows.get(key)
        if row is None:
            continue
        match e.type:
            case "ActionScheduled":
                rows[key] = replace(row, attempts=d["attempt"], status="running")
            case "ActionFailed":
                rows[key] = replace(row, detail=f"attempt {d['attempt']} failed: "
                                                f"{d['error'].get('code')}")
            case "TimerStarted" if d["purpose"] in ("sleep", "retry"):
                rows[key] = replace(row, status=f"waiting ({d['purpose']})")
            case "WaitStarted":
                rows[key] = replace(row, status="waiting (event)",
                                    detail=f"{d['event_name']} key={d['correlation_key']}")
            case "HumanTaskCreated":
                rows[key] = replace(row, status="waiting (person)",
                                    detail=f"{d['title']!r} for {d['assignee'] or 'anyone'}")
            case "BranchSelected":
                rows[key] = replace(row, detail=f"branch {d['branch']}")
            case "StepCompleted":
                rows[key] = replace(row, status="completed", duration_s=offset - row.started_s,
                                    detail=_compact(mask(d.get("output"), secrets)))
            case "StepFailed":
                err = d["error"]
                rows[key] = replace(row, status="failed", duration_s=offset - row.started_s,
                                    detail=f"{err.get('code')}: {err.get('message', '')}")
    return sorted(rows.values(), key=lambda r: r.started_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRow:
    """One history event."""

    version: int
    offset_s: float
    type: str
    key: str
    data: str


def event_rows(history: list[EventEnvelope], definition: Definition) -> list[EventRow]:
    """Return every event with its time relative to the start, secrets masked."""
    if not history:
        return []
    secrets, start = secrets_of(history, definition), history[0].at
    return [
        EventRow(version=e.version, offset_s=(e.at - start).total_seconds(), type=e.type,
                 key=str(e.data.get("key") or e.data.get("block") or ""),
                 data=_compact(mask({k: v for k, v in e.data.items() if k not in ("key", "at")},
                                    secrets), 120))
        for e in history
    ]
