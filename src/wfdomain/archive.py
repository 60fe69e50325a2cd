"""The portable run archive: one run as a versioned JSON document, for moving runs.

An archive holds what another engine needs to continue a run where it stopped: the
definition document (with its content hash), the whole history, the snapshots, and the
stored outcome of every action attempt the history scheduled (so an attempt that already
ran is not run again). ``build_archive`` writes one; ``parse_archive`` reads and checks
one. Both are pure: the runtime does the I/O (``Runtime.export_run`` / ``import_run``).

Format ``wfengine.run-archive`` version 1::

    {"format": "wfengine.run-archive", "version": 1, "exported_at": ISO-8601,
     "run": {"tenant", "run_id", "engine", "queue", "status",
             "definition": {"id", "version", "content_hash", "document"}},
     "history": [{"version", "type", "at", "data"}, ...],           # versions 1..n
     "snapshots": [{"version", "state"}, ...],                      # codec.encode_state
     "action_results": [{"result_key", "idempotency_key", "ok", "output", "error"}, ...]}

The ``run`` header repeats what the history says (checked on parsing) so tools can read
an archive without replaying it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from wfdomain import events as ev
from wfdomain import keys
from wfdomain.codec import CodecError, decode_envelope, decode_state, encode_state
from wfdomain.definition import Definition, parse_definition
from wfdomain.errors import ErrorCode, InputValidationError, WorkflowEngineError
from wfdomain.projection import run_status
from wfdomain.records import (
    TERMINAL_STATUSES,
    ActionResult,
    EventEnvelope,
    JSONValue,
    RunStatus,
    Snapshot,
    StoredDefinition,
)
from wfdomain.state import RunState, replay

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_VERSION",
    "RunArchive",
    "build_archive",
    "parse_archive",
    "result_keys",
]

ARCHIVE_FORMAT = "wfengine.run-archive"
ARCHIVE_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class RunArchive:
    """A parsed, checked archive. Records carry the archive's tenant and run id.

    Attributes:
        version: The archive format version it was read from.
        exported_at: When the source engine wrote it.
        tenant: The run's tenant on the source engine.
        run_id: The run's id (kept on import).
        engine: Where the run executed on the source.
        queue: Its task queue on the source.
        status: Its projected status at export.
        definition: The run's definition, parsed; its hash is the history's.
        history: The whole history, versions 1..n.
        snapshots: Snapshots, by ascending version; each equals the replayed state.
        action_results: Stored outcomes of attempts the history scheduled.
        finished: Whether the run had ended.
    """

    version: int
    exported_at: datetime
    tenant: str
    run_id: str
    engine: str
    queue: str
    status: RunStatus
    definition: Definition
    history: tuple[EventEnvelope, ...]
    snapshots: tuple[Snapshot, ...]
    action_results: tuple[ActionResult, ...]

    @property
    def finished(self) -> bool:
        """Whether the archived run had reached a terminal status."""
        return self.status in TERMINAL_STATUSES


# -- the wire shape ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _DefinitionRef(_Strict):
    id: str
    version: int
    content_hash: str
    document: dict[str, Any]


class _RunHeader(_Strict):
    tenant: str
    run_id: str
    definition: _DefinitionRef
    engine: str
    queue: str
    status: RunStatus


class _Event(_Strict):
    version: int
    type: str
    at: str
    data: dict[str, Any]


class _Snapshot(_Strict):
    version: int
    state: dict[str, Any]


class _Result(_Strict):
    result_key: str
    idempotency_key: str
    ok: bool
    output: Any = None
    error: dict[str, Any] | None = None


class _Archive(_Strict):
    format: Literal["wfengine.run-archive"]
    version: Literal[1]
    exported_at: str
    run: _RunHeader
    history: list[_Event]
    snapshots: list[_Snapshot]
    action_results: list[_Result]


# -- writing ----------------------------------------------------------------------------------


def result_keys(history: Iterable[EventEnvelope]) -> list[str]:
    """Return the ledger key of every action attempt the history scheduled, in order."""
    return [
        keys.result_key(e.data["idempotency_key"], e.data["attempt"])
        for e in history
        if e.type == "ActionScheduled"
    ]


def build_archive(
    *,
    tenant: str,
    definition: StoredDefinition,
    history: Sequence[EventEnvelope],
    snapshots: Sequence[Snapshot],
    action_results: Sequence[ActionResult],
    exported_at: datetime,
) -> dict[str, JSONValue]:
    """Return the JSON-ready archive of one run.

    The run header (run id, engine, queue, status) is derived from ``history``;
    ``tenant`` is the tenant the run is stored under. Snapshots beyond the history and
    results of attempts the history does not schedule are left out.
    """
    state = replay(decode_envelope(e) for e in history)
    scheduled = set(result_keys(history))
    return {
        "format": ARCHIVE_FORMAT,
        "version": ARCHIVE_VERSION,
        "exported_at": exported_at.isoformat(),
        "run": {
            "tenant": tenant,
            "run_id": state.run_id,
            "definition": {
                "id": definition.definition_id,
                "version": definition.version,
                "content_hash": definition.content_hash,
                "document": definition.document,
            },
            "engine": state.engine,
            "queue": state.queue,
            "status": run_status(state),
        },
        "history": [
            {"version": e.version, "type": e.type, "at": e.at.isoformat(), "data": e.data}
            for e in history
        ],
        "snapshots": [
            {"version": s.version, "state": s.state}
            for s in sorted(snapshots, key=lambda s: s.version)
            if s.version <= len(history)
        ],
        "action_results": [
            {"result_key": r.result_key, "idempotency_key": r.idempotency_key, "ok": r.ok,
             "output": r.output, "error": r.error}
            for r in action_results
            if r.result_key in scheduled
        ],
    }


# -- reading ----------------------------------------------------------------------------------


def _invalid(message: str, path: str | None = None, **details: object) -> InputValidationError:
    return InputValidationError(message, code=ErrorCode.ARCHIVE_INVALID, path=path,
                                details=details)


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _aware(value: str, path: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(f"{value!r} is not an ISO-8601 time", path) from None
    if at.tzinfo is None:
        raise _invalid(f"{value!r} has no time zone", path)
    return at


def _normal(value: Any) -> Any:
    """JSON-normalise a value so that tuples and lists compare equal."""
    return json.loads(json.dumps(value, sort_keys=True))


def parse_archive(data: Any) -> RunArchive:
    """Read and check an archive written by ``build_archive`` (possibly by another engine).

    Checks the shape, then that the history is consecutive from version 1, decodes, starts
    with the ``RunStarted`` of this run and definition, and replays to the header's tenant,
    engine, queue and status; that every snapshot decodes to the replayed state at its
    version (a snapshot of an older format, too); and that every action result belongs to
    an attempt the history scheduled.

    Raises:
        InputValidationError: code ``ARCHIVE_INVALID``, with the offending field as
            ``path``. An unknown ``format`` or ``version`` is refused before anything else,
            naming the supported version.
    """
    if not isinstance(data, dict):
        raise _invalid(f"an archive is a JSON object, not {type(data).__name__}")
    if data.get("format") != ARCHIVE_FORMAT:
        raise _invalid(f"not a run archive: format is {data.get('format')!r}, "
                       f"expected {ARCHIVE_FORMAT!r}", "format")
    if data.get("version") != ARCHIVE_VERSION or isinstance(data.get("version"), bool):
        raise _invalid(
            f"archive version {data.get('version')!r} is not supported; this engine reads "
            f"version {ARCHIVE_VERSION}", "version",
            supported_versions=[ARCHIVE_VERSION],
        )
    try:
        doc = _Archive.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise _invalid(f"{first['msg']} ({e.error_count()} problem(s))", _loc(first["loc"]),
                       errors=[{"path": _loc(x["loc"]), "message": x["msg"]}
                               for x in e.errors()]) from None
    header = doc.run
    definition = _definition(header.definition)
    history = _history(doc, header)
    _check_history(history, header, definition)
    return RunArchive(
        version=doc.version,
        exported_at=_aware(doc.exported_at, "exported_at"),
        tenant=header.tenant, run_id=header.run_id, engine=header.engine, queue=header.queue,
        status=header.status, definition=definition, history=history,
        snapshots=_snapshots(doc, history, header),
        action_results=_results(doc, history),
    )


def _definition(ref: _DefinitionRef) -> Definition:
    path = "run.definition.document"
    try:
        definition = parse_definition(ref.document)
    except WorkflowEngineError as e:
        raise _invalid(f"the definition does not load: {e.message}", path,
                       cause=e.to_dict()) from None
    if (definition.id, definition.version) != (ref.id, ref.version):
        raise _invalid(f"the document is {definition.id} v{definition.version}, the header "
                       f"says {ref.id} v{ref.version}", path)
    if definition.content_hash != ref.content_hash:
        raise _invalid(f"the document hashes to {definition.content_hash[:12]}, the header "
                       f"says {ref.content_hash[:12]}", "run.definition.content_hash")
    return definition


def _history(doc: _Archive, header: _RunHeader) -> tuple[EventEnvelope, ...]:
    if not doc.history:
        raise _invalid("the history is empty", "history")
    out: list[EventEnvelope] = []
    for i, e in enumerate(doc.history):
        if e.version != i + 1:
            raise _invalid(f"history versions must run 1.. consecutively; found {e.version} "
                           f"at place {i + 1}", f"history[{i}].version")
        out.append(EventEnvelope(tenant=header.tenant, run_id=header.run_id,
                                 version=e.version, type=e.type,
                                 at=_aware(e.at, f"history[{i}].at"), data=e.data))
    return tuple(out)


def _check_history(
    history: Sequence[EventEnvelope], header: _RunHeader, definition: Definition
) -> RunState:
    events: list[ev.WorkflowEvent] = []
    for i, e in enumerate(history):
        try:
            events.append(decode_envelope(e))
        except CodecError as err:
            raise _invalid(err.message, f"history[{i}]") from None
    started = events[0]
    if not isinstance(started, ev.RunStarted):
        raise _invalid(f"the history starts with {history[0].type}, not RunStarted",
                       "history[0].type")
    if any(isinstance(x, ev.RunStarted) for x in events[1:]):
        raise _invalid("the history holds a second RunStarted", "history")
    expected = (header.run_id, definition.id, definition.version, definition.content_hash)
    found = (started.run_id, started.definition_id, started.definition_version,
             started.definition_hash)
    if found != expected:
        raise _invalid(
            f"RunStarted names run {found[0]} of {found[1]} v{found[2]} hash {found[3][:12]}; "
            f"the header names run {expected[0]} of {expected[1]} v{expected[2]} hash "
            f"{expected[3][:12]}", "history[0].data",
        )
    try:
        state = replay(events)
    except Exception as e:  # untrusted input: a history that does not fold is corrupt
        raise _invalid(f"the history does not replay: {type(e).__name__}: {e}",
                       "history") from None
    replayed = (state.tenant, state.engine, state.queue, run_status(state))
    claimed = (header.tenant, header.engine, header.queue, header.status)
    if replayed != claimed:
        raise _invalid(f"the history replays to tenant/engine/queue/status {replayed}, the "
                       f"header says {claimed}", "run")
    return state


def _snapshots(
    doc: _Archive, history: Sequence[EventEnvelope], header: _RunHeader
) -> tuple[Snapshot, ...]:
    found: dict[int, tuple[int, dict[str, Any], RunState]] = {}
    for i, s in enumerate(doc.snapshots):
        path = f"snapshots[{i}]"
        if not 1 <= s.version <= len(history):
            raise _invalid(f"snapshot at version {s.version} lies outside the history "
                           f"1..{len(history)}", f"{path}.version")
        if s.version in found:
            raise _invalid(f"two snapshots at version {s.version}", f"{path}.version")
        try:
            decoded = decode_state(s.state)
        except (CodecError, KeyError, TypeError, ValueError) as e:
            raise _invalid(f"snapshot does not decode: {e}", f"{path}.state") from None
        found[s.version] = (i, s.state, decoded)
    state: RunState | None = None
    done = 0
    for version in sorted(found):
        i, _, decoded = found[version]
        state = replay((decode_envelope(e) for e in history[done:version]), state)
        done = version
        # Compared as decoded: what a runtime loading the snapshot would start from. An
        # older format (written by an older engine) encodes the same state differently.
        if _normal(encode_state(state)) != _normal(encode_state(decoded)):
            raise _invalid(f"snapshot at version {version} differs from the replayed state",
                           f"snapshots[{i}].state")
    return tuple(
        Snapshot(tenant=header.tenant, run_id=header.run_id, version=v, state=found[v][1])
        for v in sorted(found)
    )


def _results(doc: _Archive, history: Sequence[EventEnvelope]) -> tuple[ActionResult, ...]:
    scheduled = {
        keys.result_key(e.data["idempotency_key"], e.data["attempt"]): e.data["idempotency_key"]
        for e in history
        if e.type == "ActionScheduled"
    }
    seen: set[str] = set()
    out: list[ActionResult] = []
    for i, r in enumerate(doc.action_results):
        path = f"action_results[{i}]"
        if scheduled.get(r.result_key) != r.idempotency_key:
            raise _invalid(f"result {r.result_key!r} is not an attempt this history scheduled",
                           f"{path}.result_key")
        if r.result_key in seen:
            raise _invalid(f"two results for {r.result_key!r}", f"{path}.result_key")
        seen.add(r.result_key)
        out.append(ActionResult(result_key=r.result_key, idempotency_key=r.idempotency_key,
                                ok=r.ok, output=r.output, error=r.error))
    return tuple(out)
