"""The run archive format: building, parsing, and every way a corrupt archive is refused."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.property.strategies import Driver
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.archive import (
    ARCHIVE_FORMAT,
    ARCHIVE_VERSION,
    RunArchive,
    build_archive,
    parse_archive,
    result_keys,
)
from wfdomain.codec import decode_envelope, encode_state, to_envelope
from wfdomain.definition import parse_definition
from wfdomain.errors import ErrorCode, InputValidationError
from wfdomain.records import ActionResult, EventEnvelope, Snapshot, StoredDefinition
from wfdomain.state import replay

NOW = datetime(2026, 5, 1, tzinfo=UTC)
DOCUMENT = {"id": "pay", "version": 1, "steps": [
    {"type": "action", "id": "charge", "action": "charge", "input": {"n": "input.n"},
     "retry": {"max_attempts": 3, "initial_interval_s": 10}},
    {"type": "return", "output": "steps.charge"},
]}
DEFINITION = parse_definition(DOCUMENT)
STORED = StoredDefinition(tenant="t1", definition_id="pay", version=1,
                          content_hash=DEFINITION.content_hash,
                          document=DEFINITION.to_document())
KEY = "t1:r1:steps[0]"
FAILED = ActionResult(result_key=f"{KEY}#1", idempotency_key=KEY, ok=False,
                      error={"code": "ACTION_FAILED", "retryable": True, "message": "boom"})
SUCCEEDED = ActionResult(result_key=f"{KEY}#2", idempotency_key=KEY, ok=True, output={"ok": 1})


def history_waiting_on_retry() -> list[EventEnvelope]:
    """A run whose first attempt failed; it waits for the retry timer (attempt 2 ran)."""
    run = Driver.start(DEFINITION, {"n": 1})
    run.feed(cmd.Advance())
    run.feed(cmd.ReportOutcome(key="steps[0]", attempt=1, ok=False, error=FAILED.error))
    return [to_envelope("t1", "r1", i, e) for i, e in enumerate(run.history, start=1)]


def archive_of(
    history: list[EventEnvelope], *, snapshots: tuple[int, ...] = (2,),
    results: tuple[ActionResult, ...] = (FAILED,),
) -> dict[str, Any]:
    snaps = [
        Snapshot(tenant="t1", run_id="r1", version=v,
                 state=encode_state(replay(_decoded(history[:v]))))
        for v in snapshots
    ]
    return build_archive(tenant="t1", definition=STORED, history=history, snapshots=snaps,
                         action_results=list(results), exported_at=NOW)


def _decoded(history: list[EventEnvelope]) -> list[ev.WorkflowEvent]:
    return [decode_envelope(e) for e in history]


@pytest.fixture
def archive() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(archive_of(history_waiting_on_retry())))
    return data


def invalid(data: Any) -> InputValidationError:
    with pytest.raises(InputValidationError) as info:
        parse_archive(data)
    assert info.value.code == ErrorCode.ARCHIVE_INVALID
    return info.value


# -- building and reading -----------------------------------------------------------------


def test_archive_round_trips_through_json(archive: dict[str, Any]) -> None:
    history = history_waiting_on_retry()
    parsed = parse_archive(archive)
    assert isinstance(parsed, RunArchive)
    assert (parsed.version, parsed.exported_at, parsed.tenant, parsed.run_id) == (
        ARCHIVE_VERSION, NOW, "t1", "r1")
    assert (parsed.engine, parsed.queue, parsed.status, parsed.finished) == (
        "local", "default", "waiting", False)
    assert parsed.definition.content_hash == DEFINITION.content_hash
    assert parsed.history == tuple(history)
    assert [s.version for s in parsed.snapshots] == [2]
    assert parsed.action_results == (FAILED,)


def test_header_repeats_what_the_history_says(archive: dict[str, Any]) -> None:
    assert archive["format"] == ARCHIVE_FORMAT
    assert archive["run"] == {
        "tenant": "t1", "run_id": "r1", "engine": "local", "queue": "default",
        "status": "waiting",
        "definition": {"id": "pay", "version": 1, "content_hash": DEFINITION.content_hash,
                       "document": DEFINITION.to_document()},
    }


def test_result_keys_are_every_scheduled_attempt() -> None:
    assert result_keys(history_waiting_on_retry()) == [f"{KEY}#1"]


def test_build_leaves_out_foreign_results_and_snapshots_beyond_the_history() -> None:
    history = history_waiting_on_retry()
    other = ActionResult(result_key="t1:r2:steps[0]#1", idempotency_key="t1:r2:steps[0]",
                         ok=True)
    data = build_archive(
        tenant="t1", definition=STORED, history=history,
        snapshots=[Snapshot(tenant="t1", run_id="r1", version=99, state={})],
        action_results=[FAILED, SUCCEEDED, other], exported_at=NOW,
    )
    assert [r["result_key"] for r in data["action_results"]] == [f"{KEY}#1"]
    assert data["snapshots"] == []


def test_run_moved_rehomes_the_run_and_changes_nothing_else() -> None:
    history = _decoded(history_waiting_on_retry())
    before = replay(history)
    moved = ev.RunMoved(at=NOW + timedelta(hours=1), tenant="t2", engine="sqlite", queue="q")
    after = replay([moved], before)
    assert (after.tenant, after.engine, after.queue) == ("t2", "sqlite", "q")
    assert (after.version, after.updated_at) == (before.version + 1, moved.at)
    assert replace(after, tenant="t1", engine="local", queue="default",
                   version=before.version, updated_at=before.updated_at) == before


# -- refusing corrupt archives ------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return mutate


def _delete(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[int(last) if last.isdigit() else last]
    return mutate


CORRUPTIONS: dict[str, tuple[Mutation, str | None]] = {
    "wrong format": (_set("format", "zip"), "format"),
    "missing field": (_delete("exported_at"), "exported_at"),
    "unknown field": (_set("extra", 1), "extra"),
    "wrong type": (_set("run.run_id", 7), "run.run_id"),
    "unknown status": (_set("run.status", "paused"), "run.status"),
    "gap in the history": (_delete("history.1"), "history[1].version"),
    "empty history": (_set("history", []), "history"),
    "naive time": (_set("history.0.at", "2026-01-01T00:00:00"), "history[0].at"),
    "not a time": (_set("exported_at", "yesterday"), "exported_at"),
    "unknown event type": (_set("history.1.type", "StepExploded"), "history[1]"),
    "bad event fields": (_set("history.1.data", {"nope": 1}), "history[1]"),
    "other run in RunStarted": (_set("history.0.data.run_id", "r2"), "history[0].data"),
    "other definition hash": (_set("history.0.data.definition_hash", "0" * 64),
                              "history[0].data"),
    "header hash differs": (_set("run.definition.content_hash", "0" * 64),
                            "run.definition.content_hash"),
    "document differs": (_set("run.definition.document.steps.1.output", "'x'"),
                         "run.definition.content_hash"),
    "document does not load": (_set("run.definition.document.steps", []),
                               "run.definition.document"),
    "other definition version": (_set("run.definition.version", 2),
                                 "run.definition.document"),
    "header status differs": (_set("run.status", "completed"), "run"),
    "header queue differs": (_set("run.queue", "elsewhere"), "run"),
    "snapshot differs": (_set("snapshots.0.state.vars", {"forged": True}),
                         "snapshots[0].state"),
    "snapshot does not decode": (_set("snapshots.0.state", {"format": 9}),
                                 "snapshots[0].state"),
    "snapshot beyond history": (_set("snapshots.0.version", 50), "snapshots[0].version"),
    "result of another run": (_set("action_results.0.result_key", "t1:r2:steps[0]#1"),
                              "action_results[0].result_key"),
    "result with another idempotency key": (
        _set("action_results.0.idempotency_key", "t9:r1:steps[0]"),
        "action_results[0].result_key"),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupt_archive_is_archive_invalid(archive: dict[str, Any], name: str) -> None:
    mutate, path = CORRUPTIONS[name]
    mutate(archive)
    assert invalid(archive).path == path


def test_history_must_start_with_run_started(archive: dict[str, Any]) -> None:
    archive["history"] = archive["history"][1:]
    for i, event in enumerate(archive["history"], start=1):
        event["version"] = i
    assert invalid(archive).path == "history[0].type"


def test_history_with_a_second_run_started_is_invalid(archive: dict[str, Any]) -> None:
    archive["history"].append({**copy.deepcopy(archive["history"][0]),
                               "version": len(archive["history"]) + 1})
    assert invalid(archive).path == "history"


def test_history_that_does_not_replay_is_invalid(archive: dict[str, Any]) -> None:
    archive["history"].append({"version": len(archive["history"]) + 1, "type": "StepCompleted",
                               "at": NOW.isoformat(),
                               "data": {"key": "steps[7]", "output": None}})
    assert invalid(archive).path == "history"


def test_two_snapshots_at_one_version_are_invalid(archive: dict[str, Any]) -> None:
    archive["snapshots"].append(copy.deepcopy(archive["snapshots"][0]))
    assert invalid(archive).path == "snapshots[1].version"


def test_two_results_for_one_attempt_are_invalid(archive: dict[str, Any]) -> None:
    archive["action_results"].append(copy.deepcopy(archive["action_results"][0]))
    assert invalid(archive).path == "action_results[1].result_key"


@pytest.mark.parametrize("data", [None, [], "archive", 3])
def test_non_object_is_archive_invalid(data: Any) -> None:
    assert invalid(data).path is None


@pytest.mark.parametrize("version", [2, 0, "1", True, None])
def test_unsupported_version_names_the_supported_one(
    archive: dict[str, Any], version: Any
) -> None:
    archive["version"] = version
    error = invalid(archive)
    assert error.path == "version"
    assert "version 1" in error.message
    assert error.details["supported_versions"] == [1]


def test_validation_error_lists_every_problem(archive: dict[str, Any]) -> None:
    del archive["run"]["engine"]
    archive["history"][0]["version"] = "1"
    error = invalid(archive)
    problems = error.details["errors"]
    assert isinstance(problems, list)
    assert {p["path"] for p in problems} == {"run.engine", "history[0].version"}


# -- a snapshot of an older format ------------------------------------------------------------

FORMAT_2 = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
                       / "for_each_format2.json").read_text())


def archive_with_format_2_snapshot() -> dict[str, Any]:
    """A finished for_each run exported with the snapshot an older engine had taken of it."""
    definition = parse_definition(FORMAT_2["definition"])
    stored = StoredDefinition(tenant="acme", definition_id=definition.id,
                              version=definition.version, content_hash=definition.content_hash,
                              document=definition.to_document())
    history = [EventEnvelope(tenant="acme", run_id="run-1", version=i, type=e["type"],
                             at=datetime.fromisoformat(e["at"]), data=e["data"])
               for i, e in enumerate(FORMAT_2["history"], start=1)]
    snapshot = Snapshot(tenant="acme", run_id="run-1", version=FORMAT_2["snapshot"]["version"],
                        state=copy.deepcopy(FORMAT_2["snapshot"]["state"]))
    data: dict[str, Any] = json.loads(json.dumps(build_archive(
        tenant="acme", definition=stored, history=history, snapshots=[snapshot],
        action_results=[], exported_at=NOW)))
    return data


def test_a_snapshot_of_an_older_format_is_read_as_a_runtime_would_load_it() -> None:
    # Format 2 kept a for_each's finished iterations in the state; replay no longer does.
    data = archive_with_format_2_snapshot()
    parsed = parse_archive(data)
    assert parsed.snapshots[0].state == FORMAT_2["snapshot"]["state"]  # stored as it came
    assert parsed.snapshots[0].state["format"] == 2


def test_a_forged_snapshot_of_an_older_format_is_still_refused() -> None:
    data = archive_with_format_2_snapshot()
    done = next(b for b in data["snapshots"][0]["state"]["blocks"] if b["done"])
    done["last_output"] = {"tracking": "forged"}
    assert invalid(data).path == "snapshots[0].state"
